// libFuzzer target: the CIFAR-10/100 binary readers accept whole records with labels in range or refuse the file
// with fractrain::Error.
#include "fractrain/data/cifar_reader.h"
#include "fractrain/util/error.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fractrain::fuzz::MemoryFile file(data, size);
  for (auto variant : {fractrain::CifarVariant::Cifar10, fractrain::CifarVariant::Cifar100}) {
    try {
      fractrain::read_cifar_files({file.path()}, variant);
    } catch (const fractrain::Error&) {
    }
  }
  return 0;
}
