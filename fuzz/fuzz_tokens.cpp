// libFuzzer target: the token-file reader and the vocabulary must accept a text file or refuse it with
// fractrain::Error; never crash, hang or over-read. An accepted file is also counted, turned into a vocabulary
// (both cut-offs), encoded, written as a vocabulary and read back identical; the input is also tried as a saved
// vocabulary.
#include <cstdlib>
#include <string>

#include "fractrain/data/token_file.h"
#include "fractrain/data/vocabulary.h"
#include "fractrain/util/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fractrain::fuzz::MemoryFile file(data, size);
  try {
    const std::string text = fractrain::read_token_text(file.path());
    const auto counts = fractrain::count_tokens(text);
    for (int64_t min_count : {1, 2}) {
      const fractrain::Vocabulary v = fractrain::Vocabulary::from_counts(counts, min_count);
      const at::Tensor ids = fractrain::encode_tokens(text, v);
      if (ids.numel() > 0 && (ids.min().item<int32_t>() < 0 || ids.max().item<int32_t>() >= v.size())) std::abort();
      if (fractrain::Vocabulary::from_text(v.to_text(), "fuzz") != v) std::abort();
    }
  } catch (const fractrain::Error&) {
  }
  try {
    fractrain::Vocabulary::from_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const fractrain::Error&) {
  }
  return 0;
}
