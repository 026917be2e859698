#pragma once
// The bodies of the CUDA quantization kernels (src/cuda/quantize_kernels.cu) as per-thread functions: thread t of
// a grid of *_threads() threads. A __global__ wrapper only computes t and calls the function; a CPU test runs it
// for every t of the grid and compares the result with the CPU kernels (quantize_kernel.h), bit for bit for the
// element-wise ones. Everything is plain pointers and numbers (no LibTorch): nvcc compiles this file.
//
// Element-wise kernels run one thread per Philox block: block `tile * 16 + b` gives the stochastic-rounding
// noise of elements `tile * 64 + 16 w + b`, w = 0..3 (PhiloxStream::word's word-major tiles), so a thread draws
// one block and quantizes its four elements, and 16 neighbouring threads write 16 contiguous floats per word.
// Ranges, bit widths and the noise stream are read from memory, not passed as values, so that ranges computed
// on the device (at::aminmax into a buffer) never return to the host and a captured CUDA Graph sees new values
// on every replay.
#include <cstdint>

#include "fractrain/quant/quant_math.h"

namespace fractrain::quant_math {

// Rows of `row_len` contiguous floats, each quantized with its own range and width: a tensor with one range
// (activations, gradients; range_stride 0), a weight per output channel (range_stride 1, one row per channel),
// a DFQ batch with a width per sample (row_bits).
struct QuantizeRowsArgs {
  const float* x = nullptr;
  float* y = nullptr;  // may be x
  int64_t rows = 0;
  int64_t row_len = 0;
  // Row r's range is [lo[r * range_stride], hi[r * range_stride]].
  const float* lo = nullptr;
  const float* hi = nullptr;
  int64_t range_stride = 0;
  // Row r's width is row_bits[r] when row_bits is given, else `bits`; 0 = full precision (the row is copied).
  const int32_t* row_bits = nullptr;
  int32_t bits = 0;
  bool snap_zero_point = false;
  // Stochastic rounding: element i draws PhiloxStream{noise_key, stream}.word(noise_first_index + i), where
  // stream = *noise_stream, or with noise_step given mix_stream(noise_layer, *noise_step): the layer's stream of
  // the step held in one device counter, which the trainer sets before each replay of a captured CUDA Graph.
  bool stochastic = false;
  uint64_t noise_key = 0;
  const uint64_t* noise_stream = nullptr;
  const uint64_t* noise_step = nullptr;
  uint64_t noise_layer = 0;
  uint64_t noise_first_index = 0;
};

FRACTRAIN_HD uint64_t noise_stream_of(const QuantizeRowsArgs& a) {
  return a.noise_step ? mix_stream(a.noise_layer, *a.noise_step) : *a.noise_stream;
}

// The Philox tiles of 64 noise indices that [noise_first_index, noise_first_index + rows * row_len) touches.
FRACTRAIN_HD int64_t first_tile(const QuantizeRowsArgs& a) { return static_cast<int64_t>(a.noise_first_index >> 6); }
FRACTRAIN_HD int64_t quantize_rows_threads(const QuantizeRowsArgs& a) {
  const int64_t total = a.rows * a.row_len;
  if (total <= 0) return 0;
  const auto last_tile = static_cast<int64_t>((a.noise_first_index + static_cast<uint64_t>(total) - 1) >> 6);
  return (last_tile - first_tile(a) + 1) * 16;
}

FRACTRAIN_HD void quantize_rows_thread(const QuantizeRowsArgs& a, int64_t thread) {
  const int64_t total = a.rows * a.row_len;
  const auto block = static_cast<uint64_t>(first_tile(a) * 16 + thread);
  const uint64_t tile = block >> 4;
  const auto lane = static_cast<unsigned>(block & 15);
  Philox4x32 words{};
  if (a.stochastic) words = PhiloxStream{a.noise_key, noise_stream_of(a)}.block(block);
  for (unsigned w = 0; w < 4; ++w) {
    const uint64_t noise_index = tile * 64 + 16 * w + lane;
    if (noise_index < a.noise_first_index) continue;
    const auto i = static_cast<int64_t>(noise_index - a.noise_first_index);
    if (i >= total) continue;
    const int64_t row = i / a.row_len;
    const int bits = a.row_bits ? a.row_bits[row] : a.bits;
    if (bits <= 0) {
      a.y[i] = a.x[i];
      continue;
    }
    const int64_t r = row * a.range_stride;
    const RowQuantParams p = row_params(bits, a.lo[r], a.hi[r], a.snap_zero_point);
    a.y[i] = a.stochastic ? quantize_stochastic(a.x[i], p.lo, p.scale, p.levels, centered_uniform(words.v[w]))
                          : quantize_nearest(a.x[i], p.lo, p.scale, p.levels);
  }
}

// DFQ's option gradient (nn/option_gradient.h): out[r, k] = sum_i g[r, i] * Q_k(x[r, i]) for every sample r and
// option k, Q_k the nearest-rounding quantizer at option k's activation width over the one range [*lo, *hi].
// A (row, option) pair is reduced by `lanes` threads: lane l sums the elements l, l + lanes, ... in double, in a
// fixed order; the kernel then adds the lanes' partial sums in a fixed tree. The CPU kernel sums in another order
// (float spans), so the two agree within rounding, not bit for bit.
// The lanes per (row, option) pair, a power of two; the CPU's run of the kernel's grid uses the same lanes and
// tree, and so gives the same floats.
constexpr int kOptionGradientLanes = 256;

struct OptionGradientArgs {
  const float* x = nullptr;
  const float* g = nullptr;
  float* out = nullptr;  // [rows, options]
  int64_t rows = 0;
  int64_t row_len = 0;
  const int32_t* option_bits = nullptr;  // [options]; 0 = full precision (a plain inner product)
  int64_t options = 0;
  const float* lo = nullptr;
  const float* hi = nullptr;
  bool snap_zero_point = false;
};

FRACTRAIN_HD double option_gradient_partial(const OptionGradientArgs& a, int64_t row, int64_t option, int64_t lane,
                                            int64_t lanes) {
  const int bits = a.option_bits[option];
  const RowQuantParams p = row_params(bits, *a.lo, *a.hi, a.snap_zero_point);
  const float* x = a.x + row * a.row_len;
  const float* g = a.g + row * a.row_len;
  double sum = 0.0;
  for (int64_t i = lane; i < a.row_len; i += lanes) {
    const float q = bits <= 0 ? x[i] : quantize_nearest(x[i], p.lo, p.scale, p.levels);
    sum += static_cast<double>(g[i]) * static_cast<double>(q);
  }
  return sum;
}

// The running activation range after a training batch whose range the device computed (one thread).
struct RunningRangeArgs {
  float* running_lo = nullptr;
  float* running_span = nullptr;
  float* seen = nullptr;
  const float* batch_lo = nullptr;
  const float* batch_hi = nullptr;
  float momentum = 0.0f;
};

FRACTRAIN_HD void running_range_thread(const RunningRangeArgs& a) {
  update_running_range(a.running_lo, a.running_span, a.seen, *a.batch_lo, *a.batch_hi, a.momentum);
}

}  // namespace fractrain::quant_math
