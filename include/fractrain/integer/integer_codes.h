#pragma once
// Quantized tensors as integer codes for integer execution (precision.execution = integer): the same
// quantization as the fake quantizer with snapped zero points (DESIGN.md 4.1; the codes are the integers it
// rounds to), kept as bytes in the layouts oneDNN's int8 primitives read, with the affine map back to values.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "fractrain/quant/fake_quantize.h"

namespace fractrain::integer {

// value = scale * (code + offset) for the stored byte `code` (int8 or uint8). `offset` is the snapped zero point
// -round(lo / s) negated, plus the shift that moved 8-bit codes into int8.
struct CodeScale {
  float scale = 1.0f;
  int32_t offset = 0;
};

// Activations are [N, C, positions...] (a convolution's input or output gradient) or [N, positions..., C] (a
// linear layer's, positions = tokens); codes are stored channels last either way.
enum class FeatureLayout { ChannelsFirst, ChannelsLast };

struct FeatureCodes {
  at::Tensor codes;           // [N, positions, C]: uint8 codes t, or int8 t - shift (signed_codes)
  at::Tensor position_sums;   // int32 [N, positions]: the sum over C of the stored codes
  at::Tensor channel_major;   // int8 [C, N * positions] copy of the stored codes, when asked for
  at::Tensor planar;          // [N, C, positions] copy of the stored codes, when asked for
  std::vector<CodeScale> samples;
  std::vector<int> bits;      // per sample
  int64_t channels = 0, positions = 0;
  int64_t batch() const { return static_cast<int64_t>(samples.size()); }
};

struct FeatureQuantization {
  std::vector<int> sample_bits;  // 1..8 for each sample
  QuantRange range;              // one range for the tensor (zero point snapped to the grid of each width)
  // Stochastic rounding (gradients): element i of the tensor, in its own layout, draws
  // noise->uniform(noise_first_index + i), as fake_quantize does. Null: nearest.
  const PhiloxStream* noise = nullptr;
  uint64_t noise_first_index = 0;
  // When not empty: the codes are those of x's samples with these indices only (in this order), each drawing the
  // noise it draws in the whole of x; sample_bits then has one width per entry.
  std::vector<int64_t> samples;
  bool signed_codes = false;   // int8 storage (8-bit codes shifted by -128) instead of uint8
  bool channel_major = false;  // also fill FeatureCodes::channel_major (signed codes only)
  bool planar = false;         // also fill FeatureCodes::planar (ChannelsFirst only: the codes as they are made)
};

// x: a contiguous float CPU tensor in `layout`.
FeatureCodes quantize_features(const at::Tensor& x, FeatureLayout layout, const FeatureQuantization& q);
// The codes of the given samples only (indices into codes' batch, in the order given), copies included.
FeatureCodes select_samples(const FeatureCodes& codes, const std::vector<int64_t>& samples);
// The values the codes stand for, as float in `layout` with x's sizes.
at::Tensor dequantize_features(const FeatureCodes& codes, FeatureLayout layout, at::IntArrayRef sizes);

// A weight [O, I, ...] quantized with one range per output channel (axis 0: the forward and the paper's) or per
// input channel (axis 1: the error backward's, nn/execution_mode.h), deterministic rounding, snapped zero points,
// int8 codes in the weight's own layout (8-bit codes shifted by -128).
struct WeightCodes {
  at::Tensor codes;
  std::vector<CodeScale> channels;  // along `axis`
  int axis = 0;
  int bits = 0;
};
WeightCodes quantize_weight(const at::Tensor& w, int bits, int axis);
at::Tensor dequantize_weight(const WeightCodes& w);

// The byte shift that puts b-bit codes into int8: 128 for 8 bits (codes 0..255), 0 below (codes fit as they are).
inline int int8_shift(int bits) { return bits == 8 ? 128 : 0; }
// The largest magnitude a stored code of that width can have.
inline int64_t code_magnitude(int bits, bool signed_codes) {
  return signed_codes && bits == 8 ? 128 : (int64_t{1} << bits) - 1;
}

}  // namespace fractrain::integer
