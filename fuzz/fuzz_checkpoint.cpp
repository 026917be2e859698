// libFuzzer target: the checkpoint container (magic, version, lengths, meta JSON, CRC-32) is verified before
// anything in it is trusted; a damaged file is refused with fractrain::Error naming it.
#include "fractrain/train/checkpoint_file.h"
#include "fractrain/util/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fractrain::fuzz::MemoryFile file(data, size);
  try {
    fractrain::read_checkpoint_meta(file.path());
  } catch (const fractrain::Error&) {
  }
  return 0;
}
