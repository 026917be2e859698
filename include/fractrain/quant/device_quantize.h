#pragma once
// Quantization whose parameters stay on the data's device (issue 15, docs/gpu.md): ranges computed into tensors,
// per-row widths as an int32 tensor, the noise stream as a tensor, all read by the kernels through pointers, so
// that nothing returns to the host inside a training step and a captured CUDA Graph sees new values on replay.
// The arithmetic is the fake quantizer's (fake_quantize.h), element for element: the same per-thread bodies
// (quant/kernel_threads.h) run as CUDA kernels, or over their whole grid on the CPU.
//
// Where it applies: CUDA tensors in a build with the kernels (FRACTRAIN_CUDA). CPU tensors take the fused CPU
// kernels with host-side parameters, which are faster there; `ScopedCpuEmulation` routes them through this path
// instead, so that the data flow a GPU run takes (ranges, widths and running statistics in tensors) is tested on
// any machine against the CPU path, bit for bit.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "fractrain/random/philox_block.h"

namespace fractrain::device_quant {

// True when quantizing `x` takes this path (see above).
bool applies(const at::Tensor& x);
// True when this build has the CUDA kernels.
bool has_cuda_kernels();

// While alive, CPU tensors take this path too (tests; one process-wide switch, not thread-local: the layers
// quantize on LibTorch's worker threads as well).
class ScopedCpuEmulation {
 public:
  ScopedCpuEmulation();
  ~ScopedCpuEmulation();
  ScopedCpuEmulation(const ScopedCpuEmulation&) = delete;
  ScopedCpuEmulation& operator=(const ScopedCpuEmulation&) = delete;

 private:
  bool previous_;
};

// [min, max] of x as a float tensor of 2 elements on x's device ([0, 0] for an empty x, as tensor_range).
at::Tensor range_of(const at::Tensor& x);

// [min, max] over the samples (dimension 0) of x whose flag in `runs` (float [N], 1 or 0) is 1, as range_of of
// those samples alone; [0, 0] when none runs (DFQ's masked execution, models/gated_block.h).
at::Tensor range_of_running(const at::Tensor& x, const at::Tensor& runs);
// How x, viewed as [rows, numel / rows], is quantized. Every tensor lives on x's device.
struct RowQuantization {
  // Row r's range is [lo[r * range_stride], hi[r * range_stride]]: range_stride 0 for one range (lo and hi then
  // hold one element each, e.g. views of range_of's two), 1 for one per row.
  at::Tensor lo, hi;
  int64_t range_stride = 0;
  int64_t rows = 1;
  // Row r's width: row_bits[r] (int32 [rows]) when defined, else `bits`; 0 = the row is copied unchanged.
  at::Tensor row_bits;
  int bits = 0;
  bool snap_zero_point = false;
  // Stochastic rounding: element i draws PhiloxStream{noise.key, stream}.word(noise_first_index + i), `stream`
  // being the int64 tensor noise_stream's one element, or with noise_step defined (int64 [1], the step number)
  // mix_stream(noise_layer, noise_step[0]), so that a replayed graph draws the noise of the step set there.
  bool stochastic = false;
  uint64_t noise_key = 0;
  at::Tensor noise_stream;
  at::Tensor noise_step;
  uint64_t noise_layer = 0;
  uint64_t noise_first_index = 0;

  // One range for the whole tensor: `range` is range_of's [lo, hi] (lo and hi become views of it).
  static RowQuantization over(const at::Tensor& range);
};

// One element tensor on `like`'s device holding the stream word of `noise` (for RowQuantization::noise_stream).
at::Tensor stream_tensor(const PhiloxStream& noise, const at::Tensor& like);
// An int32 tensor of the widths on `like`'s device (for RowQuantization::row_bits).
at::Tensor widths_tensor(const std::vector<int>& bits, const at::Tensor& like);

// Quantizes x into `out` (same shape, float, on x's device; may be x itself) and returns it.
at::Tensor& quantize_rows_out(const at::Tensor& x, const RowQuantization& q, at::Tensor& out);

// x over its own min/max range (one for the tensor), nearest rounding: fake_quantize(x, bits, tensor_range(x))
// without reading the range back.
at::Tensor quantize_over_own_range(const at::Tensor& x, int bits, bool snap_zero_point);

// A weight quantized with its own min/max range per output channel (dimension 0) or per input channel
// (dimension 1 of [O, I, ...]), nearest rounding: fake_quantize_per_channel and fake_quantize_per_input_channel
// on this path.
at::Tensor quantize_per_channel(const at::Tensor& w, int bits, bool snap_zero_point);
at::Tensor quantize_per_input_channel(const at::Tensor& w, int bits, bool snap_zero_point);

// DFQ's option gradient (nn/option_gradient.h): out[n, k] = sum_i g[n, i] * Q_k(x[n, i]) over each flattened
// sample, Q_k at width option_bits[k] (int32 [K] on x's device; 0: x itself) over `range` (range_of's), nearest
// rounding; float [N, K]. The option-gradient kernel, or its grid on the CPU (the same lanes and tree of double
// sums, so the same floats).
at::Tensor option_inner_products(const at::Tensor& x, const at::Tensor& g, const at::Tensor& option_bits,
                                 const at::Tensor& range, bool snap_zero_point);
// The layer's running activation range (one-element float tensors on the device) after a training batch whose
// range is `batch_range` (range_of's): quant_math::update_running_range on the device.
void update_running_range(at::Tensor& running_lo, at::Tensor& running_span, at::Tensor& seen,
                          const at::Tensor& batch_range, float momentum);
// The same, only where `update` (a bool tensor of one element) is true: the running range of a DFQ block that no
// sample ran is left as it was, as when the block is not run at all.
void update_running_range_where(at::Tensor& running_lo, at::Tensor& running_span, at::Tensor& seen,
                                const at::Tensor& batch_range, float momentum, const at::Tensor& update);
// The range an evaluation batch x is quantized over: the running range once a training batch was seen, x's own
// before (QuantizedLayer's rule), chosen on the device.
at::Tensor evaluation_range(const at::Tensor& running_lo, const at::Tensor& running_span, const at::Tensor& seen,
                            const at::Tensor& x);

}  // namespace fractrain::device_quant
