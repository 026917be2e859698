#pragma once
// Whether integer execution (precision.execution = integer) can run on this machine and build.
#include <string>

namespace fractrain {

struct IntegerSupport {
  bool available = false;
  // The instruction set oneDNN's int8 kernels use here (e.g. "avx512_core_amx"), or why integer execution
  // cannot run: no oneDNN in this build, or a CPU without 8-bit dot products (VNNI or AMX), on which oneDNN's
  // int8 kernels saturate 16-bit pair sums and so are not exact.
  std::string detail;
};

// Computed once per process.
const IntegerSupport& integer_support();

// Tests only: while one is alive, integer_support() reports integer execution as available whatever the CPU, so
// that the layers' plumbing of passes that use no oneDNN product (depthwise convolutions,
// src/integer/integer_depthwise.h) is tested on every machine. Dense passes would run oneDNN's int8 kernels, which
// are not exact without 8-bit dot products: their tests require the real support.
class AssumeIntegerSupportForTests {
 public:
  AssumeIntegerSupportForTests();
  ~AssumeIntegerSupportForTests();
  AssumeIntegerSupportForTests(const AssumeIntegerSupportForTests&) = delete;
  AssumeIntegerSupportForTests& operator=(const AssumeIntegerSupportForTests&) = delete;
};

}  // namespace fractrain
