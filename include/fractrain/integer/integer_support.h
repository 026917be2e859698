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
  // The int8 products run on fractrain's plain exact loops instead of oneDNN (src/integer/plain_int8.h): only while
  // a test assumes integer support (below) on a machine without the real one. Exact, and far too slow to train on.
  bool plain_loops = false;
};

// Computed once per process.
const IntegerSupport& integer_support();

// Tests only: while one is alive, integer_support() reports integer execution as available whatever the CPU and
// build, so that every integer pass is tested on every machine. Where the real support is missing (no 8-bit dot
// products, on which oneDNN's int8 kernels are not exact, or no usable oneDNN), the int8 products run on plain
// exact loops (`plain_loops`); where it is there, on oneDNN as in a run.
class AssumeIntegerSupportForTests {
 public:
  enum class Products {
    AsTheMachineAllows,  // oneDNN where the real support is there, plain loops elsewhere
    PlainLoops,          // plain loops everywhere: the reference that tests hold oneDNN's products to
  };
  explicit AssumeIntegerSupportForTests(Products products = Products::AsTheMachineAllows);
  ~AssumeIntegerSupportForTests();
  AssumeIntegerSupportForTests(const AssumeIntegerSupportForTests&) = delete;
  AssumeIntegerSupportForTests& operator=(const AssumeIntegerSupportForTests&) = delete;

 private:
  Products products_;
};

}  // namespace fractrain
