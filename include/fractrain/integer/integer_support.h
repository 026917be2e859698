#pragma once
// Whether integer execution (precision.execution = integer) can run on this machine and build.
#include <string>
#include <vector>

namespace fractrain {

struct IntegerSupport {
  bool available = false;
  // The instruction set oneDNN's int8 kernels use here (e.g. "avx512_core_amx"), or why integer execution
  // cannot run: no oneDNN in this build, or a CPU whose int8 products oneDNN does not add exactly.
  std::string detail;
  // The int8 products run on fractrain's plain exact loops instead of oneDNN (src/integer/plain_int8.h): only while
  // a test assumes integer support (below) at widths this machine's oneDNN does not add exactly. Exact, and far too
  // slow to train on.
  bool plain_loops = false;
  // The widest unsigned codes (the products' u8 operand: activations, and the error backward's gradients) whose
  // products are exact here. 8 on CPUs with 8-bit dot products (AVX-512 VNNI, AVX-VNNI, AMX), which add four u8 x s8
  // products straight into int32. 7 on CPUs without them (AVX2, AVX-512 without VNNI): oneDNN's kernels there add
  // u8 x s8 products in pairs into saturating int16 first, and a pair of 7-bit codes against int8 codes stays
  // inside int16 (2 x 127 x 128 = 32,512 <= 32,767) where 8-bit codes do not (2 x 255 x 128 = 65,280). A pass with
  // wider unsigned codes runs simulated there (unsigned_width_refusal).
  int max_unsigned_bits = 8;
};

// Why a product on oneDNN's int8 kernels cannot take these widths (per sample) of its unsigned operand on this CPU
// (wider than max_unsigned_bits), or "" when it can. The layers fall back on it; the passes throw it.
std::string unsigned_width_refusal(const std::vector<int>& widths, const char* operand);

// Computed once per process.
const IntegerSupport& integer_support();

// Tests only: while one is alive, integer_support() reports integer execution as available whatever the CPU and
// build, so that every integer pass is tested on every machine, at every width up to 8 bits. Where oneDNN does not
// add 8-bit products exactly (a CPU without 8-bit dot products, or no usable oneDNN), the int8 products run on plain
// exact loops (`plain_loops`); where it does, on oneDNN as in a run.
class AssumeIntegerSupportForTests {
 public:
  enum class Products {
    AsTheMachineAllows,  // oneDNN where it adds 8-bit products exactly, plain loops elsewhere
    PlainLoops,          // plain loops everywhere: the reference that tests hold oneDNN's products to
    PlainLoopsUpTo7Bits, // plain loops, reported as a CPU whose products are exact up to 7-bit unsigned codes
                         // (max_unsigned_bits = 7): the layers' choices on such CPUs, tested on every CPU
  };
  explicit AssumeIntegerSupportForTests(Products products = Products::AsTheMachineAllows);
  ~AssumeIntegerSupportForTests();
  AssumeIntegerSupportForTests(const AssumeIntegerSupportForTests&) = delete;
  AssumeIntegerSupportForTests& operator=(const AssumeIntegerSupportForTests&) = delete;

 private:
  Products products_;
};

}  // namespace fractrain
