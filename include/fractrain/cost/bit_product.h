#pragma once
// The three passes of a layer in training and the operand widths each multiplies (DESIGN.md 4.5, 4.7):
// forward Y = X W (act x weight), error backward dX = dY W (grad x weight), weight gradient dW = X dY
// (act x grad). A full-precision operand (0 bits) counts as 32 bits.
#include <array>
#include <cstdint>

#include "fractrain/precision/precision.h"

namespace fractrain {

enum class Pass { Forward = 0, ErrorBackward = 1, WeightGradient = 2 };
constexpr int kPassCount = 3;
constexpr std::array<Pass, kPassCount> kPasses = {Pass::Forward, Pass::ErrorBackward, Pass::WeightGradient};

// "fw", "eb", "gc": the paper's names of the passes.
inline const char* pass_name(Pass pass) {
  constexpr const char* names[kPassCount] = {"fw", "eb", "gc"};
  return names[static_cast<int>(pass)];
}

// FP32 is counted as a 32-bit operand.
constexpr int kFullPrecisionBits = 32;
inline int operand_bits(int bits) { return bits == 0 ? kFullPrecisionBits : bits; }

// The widths of the two operands a pass multiplies.
struct OperandBits {
  int a, b;
};

inline OperandBits pass_operands(const Precision& p, Pass pass) {
  switch (pass) {
    case Pass::Forward: return {operand_bits(p.act), operand_bits(p.weight)};
    case Pass::ErrorBackward: return {operand_bits(p.grad), operand_bits(p.weight)};
    case Pass::WeightGradient: return {operand_bits(p.act), operand_bits(p.grad)};
  }
  return {kFullPrecisionBits, kFullPrecisionBits};
}

// Bits x bits of one MAC of this pass; an FP32 MAC is 32 x 32 = 1024.
inline int64_t bit_product(const Precision& p, Pass pass) {
  const OperandBits o = pass_operands(p, pass);
  return int64_t{o.a} * o.b;
}

constexpr int64_t kFullPrecisionBitProduct = int64_t{kFullPrecisionBits} * kFullPrecisionBits;

// The bit products of one MAC's three passes over those of FP32 (3 x 32 x 32), e.g. (4*4 + 6*4 + 4*6) / 3072
// for 4-bit activations and weights with 6-bit gradients; 0 for skip.
inline double relative_training_cost(const Precision& p) {
  if (p.skip) return 0.0;
  double sum = 0;
  for (Pass pass : kPasses) sum += static_cast<double>(bit_product(p, pass));
  return sum / (kPassCount * static_cast<double>(kFullPrecisionBitProduct));
}

// A MAC of a-bit by b-bit operands on a Bit Fusion array: ceil(a/2) x ceil(b/2) 2-bit BitBrick operations
// (Sharma et al., ISCA 2018). 2x2 bits is 1 operation, 8x8 bits 16, 32x32 bits 256.
inline int64_t bitbrick_ops_per_mac(int a_bits, int b_bits) {
  const int64_t a = (operand_bits(a_bits) + 1) / 2, b = (operand_bits(b_bits) + 1) / 2;
  return a * b;
}

}  // namespace fractrain
