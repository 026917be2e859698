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

}  // namespace fractrain
