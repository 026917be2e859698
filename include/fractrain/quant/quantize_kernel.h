#pragma once
// The fused CPU kernel behind fake_quantize*: one pass over a row-major float buffer, rows with their own
// range and bit width, optional stochastic rounding from a counter-based RNG. Internal to the quantizer.
#include <cstdint>

#include "fractrain/quant/quant_math.h"
#include "fractrain/random/philox.h"

namespace fractrain::kernel {

// s and the (optionally snapped) zero point of a row, computed as the reference does (quant_math.h).
using quant_math::RowQuantParams;
using quant_math::row_params;

// y[r, :] = quantize(x[r, :], params[r]) for `rows` rows of `row_len` floats. `noise` null = nearest rounding;
// otherwise element i draws noise->uniform(noise_first_index + i). Parallel over elements; results do not depend
// on the thread count.
void quantize_rows(const float* x, float* y, int64_t rows, int64_t row_len, const RowQuantParams* params,
                   const PhiloxStream* noise, uint64_t noise_first_index = 0);

// The smallest and largest of the n floats at x, as at::aminmax gives them (NaN for both when any is NaN;
// n == 0 gives 0, 0), in parallel and vectorised: tensor_range's kernel, 1.8-3x faster than at::aminmax in
// LibTorch 1.13 on 2 threads (0.25 against 0.44 ms for 128 x 16 x 32 x 32 floats). Minimum and maximum are exact,
// so the result does not depend on how the work is split.
struct MinMax {
  float lo = 0.0f, hi = 0.0f;
};
MinMax min_max(const float* x, int64_t n);
// The same on the calling thread, for short spans (a weight channel) and callers that parallelise themselves:
// min_max's parallel split costs microseconds a call.
MinMax serial_min_max(const float* x, int64_t n);

// The integer codes quantize_rows rounds to, for integer execution (src/integer): for the n elements of one row,
// out[i] = t_i - shift as a byte (t_i in [0, 2^b - 1]; a shift of 128 makes 8-bit codes fit int8), so that
// quantize_rows would give t_i * s + lo. Stochastic rounding when `noise` is not null: element i draws
// noise->uniform(noise_index + i), as in quantize_rows. Serial: callers parallelise over rows.
void quantize_span_to_codes(const float* x, int64_t n, const RowQuantParams& params, const PhiloxStream* noise,
                            uint64_t noise_index, int shift, uint8_t* out);

// Tests only: the 64 uniforms in [-0.5, 0.5) of noise tile `tile` (elements 64 * tile .. + 63 of the stream) from
// the AVX2 form, which stochastic rounding uses on CPUs with AVX2 but not AVX-512. Returns false, writing nothing,
// on CPUs without AVX2.
bool philox_tile_uniform_avx2_for_tests(const PhiloxStream& stream, uint64_t tile, float* out);

}  // namespace fractrain::kernel
