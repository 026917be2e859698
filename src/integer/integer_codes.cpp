#include "fractrain/integer/integer_codes.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "conv_taps.h"
#include "fractrain/quant/quantize_kernel.h"
#include "fractrain/util/error.h"
#include "onednn_int8.h"

namespace fractrain::integer {
namespace {

// The fake quantizer's parameters with a snapped zero point, and the affine map of the stored bytes.
struct RowCodes {
  kernel::RowQuantParams params;
  CodeScale scale;
  int shift = 0;
};

RowCodes row_codes(int bits, float lo, float hi, bool signed_codes) {
  if (bits < 1 || bits > 8) throw Error("integer codes: bit width " + std::to_string(bits) + " is not in 1..8");
  RowCodes r;
  r.params = kernel::row_params(bits, lo, hi, /*snap_zero_point=*/true);
  r.shift = signed_codes ? int8_shift(bits) : 0;
  // row_params snaps lo to nearbyint(lo / s) * s: that integer is the zero point.
  const double zero = std::nearbyint(static_cast<double>(lo / r.params.scale));
  if (std::abs(zero) > double{1 << 24})
    throw Error("integer codes: the range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "] puts the zero point out of integer reach (a range of width ~0 far from 0)");
  r.scale = {r.params.scale, static_cast<int32_t>(zero) + r.shift};
  return r;
}

template <typename Code>
void sum_positions(const Code* codes, int64_t positions, int64_t channels, int32_t* sums) {
  for (int64_t p = 0; p < positions; ++p) {
    int32_t s = 0;
    const Code* row = codes + p * channels;
    for (int64_t c = 0; c < channels; ++c) s += row[c];
    sums[p] = s;
  }
}

// One sample's planar codes [C][S] (bytes) summed over channels per position: signed or unsigned bytes.
void sum_planes(const uint8_t* plane, int64_t C, int64_t S, bool signed_codes, int32_t* sums) {
  std::fill(sums, sums + S, 0);
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* row = plane + c * S;
    if (signed_codes)
      detail::add_codes(reinterpret_cast<const int8_t*>(row), S, sums);
    else
      detail::add_codes(row, S, sums);
  }
}

// [C][S] bytes -> [S][C] for positions [p0, p1) of channels [c0, c1): the plain loop, and the remainders of the
// tiled form below.
void transpose_plane_part(const uint8_t* plane, int64_t C, int64_t S, int64_t p0, int64_t p1, int64_t c0, int64_t c1,
                          uint8_t* out) {
  for (int64_t c = c0; c < c1; ++c) {
    const uint8_t* row = plane + c * S;
    for (int64_t p = p0; p < p1; ++p) out[p * C + c] = row[p];
  }
}

#if defined(__SSE2__)
// The 16 x 16 bytes of 16 rows (`src_stride` apart) transposed into 16 rows `dst_stride` apart. Interleaving row
// j with row j + 8 byte by byte (unpacklo/hi_epi8) sends the element at bits (row r3r2r1r0, column c3c2c1c0) to
// (row r2r1r0c3, column c2c1c0r3): the 8-bit index rotated left by one. Four rounds rotate it by four, which
// swaps row and column. SSE2 is part of x86-64, so this needs no CPU check.
inline void transpose_16x16_bytes(const uint8_t* src, int64_t src_stride, uint8_t* dst, int64_t dst_stride) {
  __m128i a[16], b[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j * src_stride));
  for (int round = 0; round < 4; ++round) {
    __m128i* from = round % 2 == 0 ? a : b;
    __m128i* to = round % 2 == 0 ? b : a;
    for (int j = 0; j < 8; ++j) {
      to[2 * j] = _mm_unpacklo_epi8(from[j], from[j + 8]);
      to[2 * j + 1] = _mm_unpackhi_epi8(from[j], from[j + 8]);
    }
  }
  for (int j = 0; j < 16; ++j) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * dst_stride), a[j]);
}
#endif

// [C][S] bytes -> [S][C]: tiles of 16 channels x 16 positions transposed in registers (a byte at a time, the strided
// stores cost more than quantizing); the channels and positions beyond whole tiles by the plain loop.
void transpose_plane(const uint8_t* plane, int64_t C, int64_t S, uint8_t* out) {
#if defined(__SSE2__)
  const int64_t whole_channels = C / 16 * 16, whole_positions = S / 16 * 16;
  for (int64_t p0 = 0; p0 < whole_positions; p0 += 16)
    for (int64_t c0 = 0; c0 < whole_channels; c0 += 16)
      transpose_16x16_bytes(plane + c0 * S + p0, S, out + p0 * C + c0, C);
  transpose_plane_part(plane, C, S, 0, whole_positions, whole_channels, C, out);
  transpose_plane_part(plane, C, S, whole_positions, S, 0, C, out);
#else
  transpose_plane_part(plane, C, S, 0, S, 0, C, out);
#endif
}

}  // namespace

namespace detail {
FRACTRAIN_INTEGER_CLONES
void add_codes(const uint8_t* codes, int64_t n, int32_t* total) {
  for (int64_t i = 0; i < n; ++i) total[i] += codes[i];
}
FRACTRAIN_INTEGER_CLONES
void add_codes(const int8_t* codes, int64_t n, int32_t* total) {
  for (int64_t i = 0; i < n; ++i) total[i] += codes[i];
}
}  // namespace detail

FeatureCodes quantize_features(const at::Tensor& x, FeatureLayout layout, const FeatureQuantization& q) {
  RECORD_USER_SCOPE("fractrain::integer_quantize_features");
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || !x.is_contiguous() || x.dim() < 2)
    throw Error("integer codes: expected a contiguous float CPU tensor with a batch dimension, got " + x.toString() +
                " " + c10::str(x.sizes()));
  for (int64_t n : q.samples)
    if (n < 0 || n >= x.size(0))
      throw Error("integer codes: sample " + std::to_string(n) + " of a batch of " + std::to_string(x.size(0)));
  const int64_t batch = q.samples.empty() ? x.size(0) : static_cast<int64_t>(q.samples.size());
  if (static_cast<int64_t>(q.sample_bits.size()) != batch)
    throw Error("integer codes: " + std::to_string(q.sample_bits.size()) + " bit widths for " +
                std::to_string(batch) + " samples");
  if (q.channel_major && !q.signed_codes) throw Error("integer codes: the channel-major copy is int8 only");
  if (q.planar && layout != FeatureLayout::ChannelsFirst)
    throw Error("integer codes: the planar copy is made for channels-first features only");
  FeatureCodes out;
  out.channels = layout == FeatureLayout::ChannelsFirst ? x.size(1) : x.size(-1);
  out.positions = x.size(0) == 0 ? 0 : x.numel() / (x.size(0) * out.channels);
  out.bits = q.sample_bits;
  const int64_t C = out.channels, S = out.positions, per_sample = C * S;
  std::vector<RowCodes> rows;
  rows.reserve(batch);
  for (int b : q.sample_bits) rows.push_back(row_codes(b, q.range.lo, q.range.hi, q.signed_codes));
  for (const RowCodes& r : rows) out.samples.push_back(r.scale);

  const auto byte_type = q.signed_codes ? at::kChar : at::kByte;
  out.codes = at::empty({batch, S, C}, x.options().dtype(byte_type));
  out.position_sums = at::empty({batch, S}, x.options().dtype(at::kInt));
  if (q.channel_major) out.channel_major = at::empty({C, batch * S}, x.options().dtype(at::kChar));
  if (q.planar) out.planar = at::empty({batch, C, S}, x.options().dtype(byte_type));
  const float* src = x.data_ptr<float>();
  uint8_t* codes = static_cast<uint8_t*>(out.codes.data_ptr());
  int8_t* major = q.channel_major ? out.channel_major.data_ptr<int8_t>() : nullptr;
  int32_t* sums = out.position_sums.data_ptr<int32_t>();
  // Which of x's samples sample n of the codes is, and the noise index of its first element.
  auto source = [&](int64_t n) { return q.samples.empty() ? n : q.samples[static_cast<size_t>(n)]; };
  auto sample_noise = [&](int64_t n) { return q.noise_first_index + static_cast<uint64_t>(source(n) * per_sample); };

  if (layout == FeatureLayout::ChannelsLast) {
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const RowCodes& r = rows[n];
        uint8_t* sample = codes + n * per_sample;
        kernel::quantize_span_to_codes(src + source(n) * per_sample, per_sample, r.params, q.noise, sample_noise(n),
                                       r.shift, sample);
        if (q.signed_codes)
          sum_positions(reinterpret_cast<const int8_t*>(sample), S, C, sums + n * S);
        else
          sum_positions(sample, S, C, sums + n * S);
      }
    });
    if (major) {  // [N, S, C] -> [C][N, S]
      const int64_t dims[3] = {C, batch, S}, from[3] = {1, S * C, C}, to[3] = {batch * S, S, 1};
      reorder_bytes(dims, from, codes, to, major);
    }
    return out;
  }
  // Channels first, one sample at a time on each thread: its codes in x's own order (each element's noise index
  // is its flat index in x) into the thread's [C][S] buffer, which stays in cache for the sums over channels and
  // the transposition into [S][C] (and the channel-major copy, whose rows are the buffer's). Whole-batch passes
  // in between went to memory and back three times.
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> plane(static_cast<size_t>(per_sample));
    for (int64_t n = begin; n < end; ++n) {
      const RowCodes& r = rows[n];
      for (int64_t c = 0; c < C; ++c) {
        kernel::quantize_span_to_codes(src + (source(n) * C + c) * S, S, r.params, q.noise,
                                       sample_noise(n) + static_cast<uint64_t>(c * S), r.shift, plane.data() + c * S);
      }
      sum_planes(plane.data(), C, S, q.signed_codes, sums + n * S);
      transpose_plane(plane.data(), C, S, codes + n * per_sample);
      if (major)
        for (int64_t c = 0; c < C; ++c)
          std::memcpy(major + c * batch * S + n * S, plane.data() + c * S, static_cast<size_t>(S));
      if (q.planar)
        std::memcpy(static_cast<uint8_t*>(out.planar.data_ptr()) + n * per_sample, plane.data(),
                    static_cast<size_t>(per_sample));
    }
  });
  return out;
}

FeatureCodes select_samples(const FeatureCodes& codes, const std::vector<int64_t>& samples) {
  for (int64_t n : samples)
    if (n < 0 || n >= codes.batch())
      throw Error("integer codes: sample " + std::to_string(n) + " of a batch of " + std::to_string(codes.batch()));
  const at::Tensor index = at::tensor(samples, at::kLong);
  FeatureCodes out;
  out.channels = codes.channels;
  out.positions = codes.positions;
  out.codes = codes.codes.index_select(0, index);
  out.position_sums = codes.position_sums.index_select(0, index);
  if (codes.planar.defined()) out.planar = codes.planar.index_select(0, index);
  if (codes.channel_major.defined())  // [C, N * S]: columns of whole samples
    out.channel_major = codes.channel_major.view({codes.channels, codes.batch(), codes.positions})
                            .index_select(1, index)
                            .reshape({codes.channels, static_cast<int64_t>(samples.size()) * codes.positions});
  for (int64_t n : samples) {
    out.samples.push_back(codes.samples[static_cast<size_t>(n)]);
    out.bits.push_back(codes.bits[static_cast<size_t>(n)]);
  }
  return out;
}

at::Tensor dequantize_features(const FeatureCodes& codes, FeatureLayout layout, at::IntArrayRef sizes) {
  const int64_t batch = codes.batch();
  at::Tensor stored = codes.codes.to(at::kFloat);  // [N, S, C]
  std::vector<float> scale, offset;
  for (const CodeScale& s : codes.samples) {
    scale.push_back(s.scale);
    offset.push_back(static_cast<float>(s.offset));
  }
  const at::Tensor s = at::tensor(scale).view({batch, 1, 1}), o = at::tensor(offset).view({batch, 1, 1});
  at::Tensor values = (stored + o) * s;
  if (layout == FeatureLayout::ChannelsFirst) values = values.permute({0, 2, 1});
  return values.contiguous().view(sizes);
}

WeightCodes quantize_weight(const at::Tensor& w, int bits, int axis) {
  RECORD_USER_SCOPE("fractrain::integer_quantize_weight");
  if (axis != 0 && axis != 1) throw Error("integer codes: weight ranges are per output (0) or input (1) channel");
  if (!w.device().is_cpu() || w.scalar_type() != at::kFloat || w.dim() < 2)
    throw Error("integer codes: expected a float CPU weight [O, I, ...], got " + w.toString());
  const at::Tensor weight = w.contiguous();
  const int64_t O = weight.size(0), I = weight.size(1), taps = weight.numel() / (O * I);
  // Rows of one channel each, contiguous (for 1x1 kernels the input channels' reshape is a transposed view).
  const at::Tensor by_channel =
      (axis == 0 ? weight.reshape({O, -1}) : weight.transpose(0, 1).reshape({I, -1})).contiguous();
  // Each channel's range from a plain pass over its few hundred or thousand values (at::aminmax's reduction costs
  // tens of microseconds a call at these sizes); the same exact extremes, a NaN giving a NaN range as there.
  const int64_t channel_len = by_channel.size(1);
  const float* by_channel_values = by_channel.data_ptr<float>();
  std::vector<RowCodes> channels;
  for (int64_t c = 0; c < by_channel.size(0); ++c) {
    const kernel::MinMax range = kernel::serial_min_max(by_channel_values + c * channel_len, channel_len);
    channels.push_back(row_codes(bits, range.lo, range.hi, /*signed_codes=*/true));
  }
  WeightCodes out;
  out.axis = axis;
  out.bits = bits;
  for (const RowCodes& r : channels) out.channels.push_back(r.scale);
  out.codes = at::empty(weight.sizes(), weight.options().dtype(at::kChar));
  const float* src = weight.data_ptr<float>();
  uint8_t* dst = reinterpret_cast<uint8_t*>(out.codes.data_ptr<int8_t>());
  at::parallel_for(0, O, 1, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      if (axis == 0) {
        const RowCodes& r = channels[o];
        kernel::quantize_span_to_codes(src + o * I * taps, I * taps, r.params, nullptr, 0, r.shift,
                                       dst + o * I * taps);
      } else {
        for (int64_t i = 0; i < I; ++i) {
          const RowCodes& r = channels[i];
          const int64_t at = (o * I + i) * taps;
          kernel::quantize_span_to_codes(src + at, taps, r.params, nullptr, 0, r.shift, dst + at);
        }
      }
    }
  });
  return out;
}

at::Tensor dequantize_weight(const WeightCodes& w) {
  std::vector<float> scale, offset;
  for (const CodeScale& s : w.channels) {
    scale.push_back(s.scale);
    offset.push_back(static_cast<float>(s.offset));
  }
  std::vector<int64_t> shape(static_cast<size_t>(w.codes.dim()), 1);
  shape[static_cast<size_t>(w.axis)] = static_cast<int64_t>(w.channels.size());
  return (w.codes.to(at::kFloat) + at::tensor(offset).view(shape)) * at::tensor(scale).view(shape);
}

}  // namespace fractrain::integer
