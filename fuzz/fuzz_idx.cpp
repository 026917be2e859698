// libFuzzer target: the IDX readers (raw or gzip) must accept a valid file or refuse it with fractrain::Error;
// never crash, hang, over-read or allocate what the header claims without the bytes to back it.
#include "fractrain/data/idx_reader.h"
#include "fractrain/util/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fractrain::fuzz::MemoryFile file(data, size);
  try {
    fractrain::read_idx_images(file.path());
  } catch (const fractrain::Error&) {
  }
  try {
    fractrain::read_idx_labels(file.path());
  } catch (const fractrain::Error&) {
  }
  return 0;
}
