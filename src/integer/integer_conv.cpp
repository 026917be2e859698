#include "fractrain/integer/integer_conv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <vector>

#include "conv_taps.h"
#include "fractrain/integer/corrected_planes.h"
#include "fractrain/util/error.h"
#include "integer_depthwise.h"
#include "onednn_int8.h"

namespace fractrain::integer {

using namespace detail;  // conv_taps.h

namespace {

void check_weight(const WeightCodes& w, const ConvGeometry& g, int axis, const char* what) {
  if (g.kernel > kMaxIntegerKernel)
    throw Error(std::string("integer ") + what + ": kernels up to " + std::to_string(kMaxIntegerKernel) + "x" +
                std::to_string(kMaxIntegerKernel) + " (tap patterns are 64-bit masks), got " + std::to_string(g.kernel));
  if (w.axis != axis || w.codes.size(0) != g.out_channels || w.codes.size(1) != g.in_channels ||
      w.codes.numel() != g.out_channels * g.in_channels * taps_of(g))
    throw Error(std::string("integer ") + what + ": weight codes " + c10::str(w.codes.sizes()) + " (ranges per " +
                (w.axis == 0 ? "output" : "input") + " channel) do not fit the layer");
}

int max_bits(const std::vector<int>& bits) { return bits.empty() ? 1 : *std::max_element(bits.begin(), bits.end()); }

void check_exact(int64_t terms, int64_t magnitude_a, int64_t magnitude_b, const char* what) {
  if (terms > max_exact_terms(magnitude_a, magnitude_b))
    throw Error(std::string("integer ") + what + ": " + std::to_string(terms) +
                " terms per sum could overflow int32 at these widths");
}

// Per output channel (forward) or input channel (error backward) and tap: the sum of the weight codes over the
// other channel axis.
std::vector<int64_t> weight_tap_sums(const WeightCodes& w, const ConvGeometry& g, int axis) {
  const int64_t O = g.out_channels, I = g.in_channels, taps = taps_of(g);
  const int64_t channels = axis == 0 ? O : I;
  std::vector<int64_t> sums(static_cast<size_t>(channels * taps), 0);
  const int8_t* codes = w.codes.data_ptr<int8_t>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t t = 0; t < taps; ++t)
        sums[static_cast<size_t>((axis == 0 ? o : i) * taps + t)] += codes[(o * I + i) * taps + t];
  return sums;
}

// Positions grouped by which taps contribute to them (all of them inside, fewer at the borders): the
// corrections that depend only on the weights are computed once per pattern, not once per position.
struct TapPatterns {
  std::vector<int32_t> of_position;
  std::vector<std::vector<int64_t>> taps;  // the contributing taps of each pattern
};

// masks[position]: one bit per contributing tap (kernels up to 8 x 8).
TapPatterns tap_patterns(const std::vector<uint64_t>& masks) {
  TapPatterns out;
  std::map<uint64_t, int32_t> index;
  for (uint64_t mask : masks) {
    auto it = index.find(mask);
    if (it == index.end()) {
      it = index.emplace(mask, static_cast<int32_t>(out.taps.size())).first;
      std::vector<int64_t> taps;
      for (int64_t t = 0; t < 64; ++t)
        if (mask >> t & 1) taps.push_back(t);
      out.taps.push_back(taps);
    }
    out.of_position.push_back(it->second);
  }
  return out;
}

// Writes value(n, position, channel) into the float result in the caller's layout.
at::Tensor new_result(int64_t batch, int64_t channels, int64_t positions, FeatureLayout layout) {
  return layout == FeatureLayout::ChannelsFirst ? at::empty({batch, channels, positions}, at::kFloat)
                                                : at::empty({batch, positions, channels}, at::kFloat);
}


__extension__ using int128 = __int128;  // GCC's and Clang's 128-bit integer (__extension__: no -Wpedantic warning)

// One sample's result from its integer sums (acc, [P][C]): value(p, c) = float(acc + oc[c] * box[p] +
// on * M[p][c] + on * oc[c] * K[p]) * scale[c] + bias[c], every factor an integer. The sum is formed in `Sum`:
// double where wide_sums_exact says every term and partial sum stays below 2^52 (integers there are exact in
// double), 128-bit integers otherwise (ranges far from zero: offsets near 2^24 on both sides); either way the exact
// integer, rounded once to float. Writes [P][C].
template <typename Sum>
void corrected_rows_in(const int32_t* acc, const int64_t* box, const int32_t* pattern, const double* M,
                       const double* K, double on, const double* oc, const float* scale, const float* bias, int64_t P,
                       int64_t C, float* out) {
  const Sum offset_n = static_cast<Sum>(on);
  for (int64_t p = 0; p < P; ++p) {
    const Sum bx = static_cast<Sum>(box[p]), kk = offset_n * static_cast<Sum>(K[pattern[p]]);
    const int32_t* a = acc + p * C;
    const double* m = M + pattern[p] * C;
    float* o = out + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const Sum offset_c = static_cast<Sum>(oc[c]);
      const Sum exact = static_cast<Sum>(a[c]) + offset_c * bx + offset_n * static_cast<Sum>(m[c]) + offset_c * kk;
      o[c] = static_cast<float>(exact) * scale[c] + bias[c];
    }
  }
}

FRACTRAIN_INTEGER_CLONES
void corrected_rows_double(const int32_t* acc, const int64_t* box, const int32_t* pattern, const double* M,
                           const double* K, double on, const double* oc, const float* scale, const float* bias,
                           int64_t P, int64_t C, float* out) {
  corrected_rows_in<double>(acc, box, pattern, M, K, on, oc, scale, bias, P, C, out);
}

// Whether the double sums of corrected_rows are exact: each term and partial sum is at most the int32 sum plus
// corrected_terms_below's bound, which must stay below 2^52.
bool wide_sums_exact(int64_t terms, int64_t max_offset_a, int64_t max_offset_b) {
  return corrected_terms_below(terms, max_offset_a, max_offset_b, (int64_t{1} << 52) - (int64_t{1} << 31));
}

void corrected_rows(const int32_t* acc, const int64_t* box, const int32_t* pattern, const double* M, const double* K,
                    double on, const double* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                    float* out, bool exact_in_double) {
  if (exact_in_double)
    corrected_rows_double(acc, box, pattern, M, K, on, oc, scale, bias, P, C, out);
  else
    corrected_rows_in<int128>(acc, box, pattern, M, K, on, oc, scale, bias, P, C, out);
}

// Per-channel offsets (as double for corrected_rows, as int32 for corrected_planes), and scale * the sample's
// scale.
struct ChannelTerms {
  std::vector<double> offset;
  std::vector<int32_t> offset32;
  std::vector<float> scale, bias;
  ChannelTerms(const std::vector<CodeScale>& channels, float sample_scale, const float* b) {
    for (size_t c = 0; c < channels.size(); ++c) {
      offset.push_back(static_cast<double>(channels[c].offset));
      offset32.push_back(channels[c].offset);
      scale.push_back(sample_scale * channels[c].scale);
      bias.push_back(b ? b[c] : 0.0f);
    }
  }
};

// int64 -> int32 modulo 2^32 (corrected_planes' arithmetic; GCC defines the conversion as wrapping).
int32_t wrapped(int64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v))); }

// The sum of `s` (one value per input position) over each output position's receptive field, padding
// excluded: along the rows first (row_sums[ih][ow]), then down the columns. Separable, so 2k rather than k^2
// additions per position.
void box_sums(const ConvGeometry& g, const int32_t* s, int64_t* row_sums, int64_t* box) {
  const int64_t Wo = g.out_width();
  for (int64_t ih = 0; ih < g.height; ++ih)
    for (int64_t ow = 0; ow < Wo; ++ow) {
      const int64_t iw0 = ow * g.stride - g.padding;
      const int64_t begin = std::max<int64_t>(0, iw0), end = std::min(g.width, iw0 + g.kernel);
      int64_t total = 0;
      for (int64_t iw = begin; iw < end; ++iw) total += s[ih * g.width + iw];
      row_sums[ih * Wo + ow] = total;
    }
  for (int64_t oh = 0; oh < g.out_height(); ++oh) {
    const int64_t ih0 = oh * g.stride - g.padding;
    const int64_t begin = std::max<int64_t>(0, ih0), end = std::min(g.height, ih0 + g.kernel);
    int64_t* out = box + oh * Wo;
    std::fill(out, out + Wo, 0);
    for (int64_t ih = begin; ih < end; ++ih)
      for (int64_t ow = 0; ow < Wo; ++ow) out[ow] += row_sums[ih * Wo + ow];
  }
}

// The error backward's box sums: for each input position, the sum of `s` (one value per output position) over the
// output positions whose receptive field holds it, i.e. over the (output position, tap) pairs that reach it. The
// same separable walk as box_sums, transposed: along the rows (row_sums[oh][iw]), then down the columns. Which output
// row or column an input index meets through each tap depends on the geometry alone: tabled once per pass, so that
// the walk for each sample is additions only (the division by the stride cost more than the sums).
class TransposedBoxSums {
 public:
  explicit TransposedBoxSums(const ConvGeometry& g)
      : g_(g), columns_(reach(g, g.width, g.out_width())), rows_(reach(g, g.height, g.out_height())) {}

  // s: [Ho][Wo]; row_sums: [Ho][W] scratch; box: [H][W].
  void operator()(const int32_t* s, int64_t* row_sums, int64_t* box) const {
    const int64_t Ho = g_.out_height(), Wo = g_.out_width(), W = g_.width, k = g_.kernel;
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t iw = 0; iw < W; ++iw) {
        int64_t total = 0;
        for (int64_t kw = 0; kw < k; ++kw) {
          const int64_t ow = columns_[static_cast<size_t>(iw * k + kw)];
          if (ow >= 0) total += s[oh * Wo + ow];
        }
        row_sums[oh * W + iw] = total;
      }
    for (int64_t ih = 0; ih < g_.height; ++ih) {
      int64_t* out = box + ih * W;
      std::fill(out, out + W, 0);
      for (int64_t kh = 0; kh < k; ++kh) {
        const int64_t oh = rows_[static_cast<size_t>(ih * k + kh)];
        if (oh < 0) continue;
        for (int64_t iw = 0; iw < W; ++iw) out[iw] += row_sums[oh * W + iw];
      }
    }
  }

 private:
  // [in][tap]: the output index that input index `in` meets through `tap`, or -1.
  static std::vector<int64_t> reach(const ConvGeometry& g, int64_t inputs, int64_t outputs) {
    std::vector<int64_t> out(static_cast<size_t>(inputs * g.kernel), -1);
    for (int64_t in = 0; in < inputs; ++in)
      for (int64_t tap = 0; tap < g.kernel; ++tap) {
        const int64_t t = in + g.padding - tap;
        if (t >= 0 && t % g.stride == 0 && t / g.stride < outputs) out[static_cast<size_t>(in * g.kernel + tap)] = t / g.stride;
      }
    return out;
  }
  ConvGeometry g_;
  std::vector<int64_t> columns_, rows_;
};

// The int32 sums a thread's block of samples may hold: small enough to stay in a core's L2 cache (1-2 MB on the
// machines measured) next to the codes and the values being written.
constexpr int64_t kBlockSumBytes = 256 * 1024;

// The corrections of one pass: per tap pattern, the weights' tap sums over its taps per channel (M,
// [pattern][C]) and how many terms (K: taps x `per_tap`); apply() turns each sample's integer sums into values.
class CorrectionTables {
 public:
  CorrectionTables(TapPatterns patterns, const std::vector<int64_t>& wsum, int64_t C, int64_t taps, int64_t per_tap)
      : patterns_(std::move(patterns)), C_(C) {
    const size_t n = patterns_.taps.size();
    M_.assign(n * static_cast<size_t>(C), 0.0);
    K_.assign(n, 0.0);
    for (size_t k = 0; k < n; ++k) {
      K_[k] = static_cast<double>(per_tap * static_cast<int64_t>(patterns_.taps[k].size()));
      for (int64_t c = 0; c < C; ++c) {
        int64_t sum = 0;
        for (int64_t t : patterns_.taps[k]) sum += wsum[static_cast<size_t>(c * taps + t)];
        M_[k * static_cast<size_t>(C) + static_cast<size_t>(c)] = static_cast<double>(sum);
      }
    }
  }

  // Runs `product` (the pass's integer sums, int32 [samples, positions, C], from the codes at `codes`,
  // `code_bytes` per sample) and turns each sample's sums into values: `box(n, scratch, box)` fills sample n's sums
  // of its codes over each position's terms. Writes `out` ([N, C, positions] or [N, positions, C]).
  //
  // Each thread runs the product on blocks of its own samples and corrects a block while its sums are still in
  // that core's cache: a whole batch's sums (8 MB for 128 x 16 x 32 x 32) would go to memory and back. With fewer
  // samples than two per thread, one product over the batch on oneDNN's threads, then corrections in parallel.
  template <typename Box>
  void apply(const BlockProduct& product, const void* codes, int64_t code_bytes, const std::vector<CodeScale>& samples,
             const std::vector<CodeScale>& channels, const at::Tensor& bias, FeatureLayout layout, at::Tensor& out,
             const char* product_scope, const char* correction_scope, const Box& box) const {
    const int64_t N = static_cast<int64_t>(samples.size()), P = static_cast<int64_t>(patterns_.of_position.size());
    const int64_t per_sample = P * C_;
    const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
    float* o = out.data_ptr<float>();
    const auto* code_bytes_at = static_cast<const uint8_t*>(codes);
    const bool channels_first = layout == FeatureLayout::ChannelsFirst;
    // corrected_planes' [C][P] weight terms, kept modulo 2^32, and whether a sample's corrected sums fit int32 (then
    // that residue is exact): true unless a range lies far from zero (a large offset).
    std::vector<int32_t> weight_terms;
    int64_t max_channel_offset = 0;
    for (const CodeScale& c : channels) max_channel_offset = std::max<int64_t>(max_channel_offset, std::abs(c.offset));
    const int64_t max_terms = K_.empty() ? 0 : static_cast<int64_t>(*std::max_element(K_.begin(), K_.end()));
    if (channels_first) {
      weight_terms.resize(static_cast<size_t>(per_sample));
      for (int64_t c = 0; c < C_; ++c)
        for (int64_t p = 0; p < P; ++p) {
          const size_t k = static_cast<size_t>(patterns_.of_position[static_cast<size_t>(p)]);
          weight_terms[static_cast<size_t>(c * P + p)] =
              wrapped(static_cast<int64_t>(M_[k * static_cast<size_t>(C_) + static_cast<size_t>(c)]) +
                      static_cast<int64_t>(channels[c].offset) * static_cast<int64_t>(K_[k]));
        }
    }
    // One sample's values from its sums `a`; `sums`, `box32`, `rows` and `scratch` are the calling thread's buffers.
    auto correct = [&](int64_t n, const int32_t* a, std::vector<int64_t>& sums, std::vector<int32_t>& box32,
                       std::vector<float>& rows, std::vector<int64_t>& scratch) {
      RECORD_USER_SCOPE(correction_scope);
      box(n, scratch, sums.data());
      const ChannelTerms terms(channels, samples[n].scale, b);
      const double on = static_cast<double>(samples[n].offset);
      float* values = o + n * per_sample;
      if (channels_first && corrections_fit_int32(max_terms, samples[n].offset, max_channel_offset)) {
        for (int64_t p = 0; p < P; ++p) box32[static_cast<size_t>(p)] = wrapped(sums[static_cast<size_t>(p)]);
        corrected_planes(a, box32.data(), weight_terms.data(), samples[n].offset, terms.offset32.data(),
                         terms.scale.data(), terms.bias.data(), P, C_, values);
        return;
      }
      // Channels last, or sums beyond int32: corrected_rows (exact at any offsets), into [P][C], transposed after.
      float* rows_out = values;
      if (channels_first) {
        rows.resize(static_cast<size_t>(per_sample));
        rows_out = rows.data();
      }
      corrected_rows(a, sums.data(), patterns_.of_position.data(), M_.data(), K_.data(), on, terms.offset.data(),
                     terms.scale.data(), terms.bias.data(), P, C_, rows_out,
                     wide_sums_exact(max_terms, samples[n].offset, max_channel_offset));
      if (channels_first)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t c = 0; c < C_; ++c) values[c * P + p] = rows_out[p * C_ + c];
    };
    const int64_t threads = at::get_num_threads();
    if (N < 2 * threads) {
      at::Tensor acc = at::empty({N * per_sample}, at::kInt);
      {
        RECORD_USER_SCOPE(product_scope);
        product.run(N, codes, acc.data_ptr<int32_t>());
      }
      const int32_t* a = acc.data_ptr<int32_t>();
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        std::vector<int64_t> sums(static_cast<size_t>(P)), scratch;
        std::vector<int32_t> box32(static_cast<size_t>(P));
        std::vector<float> rows;
        for (int64_t n = begin; n < end; ++n) correct(n, a + n * per_sample, sums, box32, rows, scratch);
      });
      return;
    }
    const int64_t block = std::max<int64_t>(1, kBlockSumBytes / (per_sample * static_cast<int64_t>(sizeof(int32_t))));
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> acc(static_cast<size_t>(std::min(block, end - begin) * per_sample));
      std::vector<int64_t> sums(static_cast<size_t>(P)), scratch;
      std::vector<int32_t> box32(static_cast<size_t>(P));
      std::vector<float> rows;
      for (int64_t first = begin; first < end; first += block) {
        const int64_t len = std::min(block, end - first);
        {
          RECORD_USER_SCOPE(product_scope);
          product.run(len, code_bytes_at + first * code_bytes, acc.data());
        }
        for (int64_t n = first; n < first + len; ++n)
          correct(n, acc.data() + (n - first) * per_sample, sums, box32, rows, scratch);
      }
    });
  }

 private:
  TapPatterns patterns_;
  int64_t C_;
  std::vector<double> M_, K_;
};

}  // namespace

int64_t max_exact_terms(int64_t magnitude_a, int64_t magnitude_b) {
  return std::numeric_limits<int32_t>::max() / std::max<int64_t>(1, magnitude_a * magnitude_b);
}

at::Tensor conv_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w, const at::Tensor& bias,
                        FeatureLayout layout) {
  check_groups(g, "forward");
  if (g.depthwise()) return depthwise_forward(g, x, w, bias, layout);
  RECORD_USER_SCOPE("fractrain::integer_conv_forward");
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, P = out_positions(g), taps = taps_of(g);
  check_features(x, N, I, in_positions(g), "forward");
  check_weight(w, g, 0, "forward");
  check_exact(I * taps, code_magnitude(max_bits(x.bits), false), code_magnitude(w.bits, true), "forward");
  check_unsigned_width(x.bits, "activation", "forward");
  const BlockProduct product(BlockProduct::Pass::Forward, g, w.codes.data_ptr<int8_t>());

  // The valid terms of each output position: the weights' tap sums (M, [P][O]), their count (K), and per
  // sample the box sum of the input codes (box).
  const std::vector<int64_t> map = tap_map(g), wsum = weight_tap_sums(w, g, 0);
  std::vector<uint64_t> masks(static_cast<size_t>(P), 0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t t = 0; t < taps; ++t)
      if (map[static_cast<size_t>(p * taps + t)] >= 0) masks[static_cast<size_t>(p)] |= uint64_t{1} << t;
  const int32_t* sums = x.position_sums.data_ptr<int32_t>();
  at::Tensor y = new_result(N, O, P, layout);
  CorrectionTables tables(tap_patterns(masks), wsum, O, taps, I);
  tables.apply(product, x.codes.data_ptr<uint8_t>(), in_positions(g) * I, x.samples, w.channels, bias, layout, y,
               "fractrain::integer_conv_forward_product", "fractrain::integer_forward_corrections",
               [&](int64_t n, std::vector<int64_t>& scratch, int64_t* box) {
                 scratch.resize(static_cast<size_t>(g.height * g.out_width()));
                 box_sums(g, sums + n * in_positions(g), scratch.data(), box);
               });
  return y;
}

at::Tensor conv_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                              FeatureLayout layout) {
  check_groups(g, "error backward");
  if (g.depthwise()) return depthwise_backward_data(g, dy, w, layout);
  RECORD_USER_SCOPE("fractrain::integer_conv_backward_data");
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, P = out_positions(g), Q = in_positions(g),
                taps = taps_of(g);
  check_features(dy, N, O, P, "error backward");
  check_weight(w, g, 1, "error backward");
  check_exact(O * taps, code_magnitude(max_bits(dy.bits), true), code_magnitude(w.bits, true), "error backward");
  // Below 8 bits the gradient's codes are stored unshifted, so none is negative: read as uint8, which CPUs without
  // 8-bit dot products add exactly (integer_support.h); 8-bit codes are shifted into int8 and need such products.
  const bool unsigned_codes = max_bits(dy.bits) < 8;
  if (!unsigned_codes) check_unsigned_width(dy.bits, "gradient", "error backward");
  const BlockProduct product(BlockProduct::Pass::ErrorBackward, g, w.codes.data_ptr<int8_t>(),
                             unsigned_codes ? BlockProduct::Source::Unsigned : BlockProduct::Source::Signed);

  // Which (output position, tap) pairs reach each input position: their weight sums (M, [Q][I]), count (K)
  // and, per sample, the sum of the gradient codes there (box).
  const std::vector<int64_t> map = tap_map(g), wsum = weight_tap_sums(w, g, 1);
  std::vector<uint64_t> masks(static_cast<size_t>(Q), 0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t q = map[static_cast<size_t>(p * taps + t)];
      if (q >= 0) masks[static_cast<size_t>(q)] |= uint64_t{1} << t;  // at most one p reaches q through t
    }
  const int32_t* sums = dy.position_sums.data_ptr<int32_t>();
  at::Tensor dx = new_result(N, I, Q, layout);
  CorrectionTables tables(tap_patterns(masks), wsum, I, taps, O);
  const TransposedBoxSums transposed_box_sums(g);
  tables.apply(product, dy.codes.data_ptr<int8_t>(), P * O, dy.samples, w.channels, at::Tensor(), layout, dx,
               "fractrain::integer_conv_backward_data_product", "fractrain::integer_error_corrections",
               [&](int64_t n, std::vector<int64_t>& scratch, int64_t* box) {
                 scratch.resize(static_cast<size_t>(g.out_height() * g.width));
                 transposed_box_sums(sums + n * P, scratch.data(), box);
               });
  return dx;
}


at::Tensor bias_gradient(const FeatureCodes& dy) {
  const int64_t N = dy.batch(), P = dy.positions, O = dy.channels;
  std::vector<double> db(static_cast<size_t>(O), 0.0);
  const int8_t* codes = dy.codes.data_ptr<int8_t>();
  std::vector<int64_t> sums(static_cast<size_t>(O));
  for (int64_t n = 0; n < N; ++n) {
    std::fill(sums.begin(), sums.end(), 0);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t o = 0; o < O; ++o) sums[static_cast<size_t>(o)] += codes[(n * P + p) * O + o];
    for (int64_t o = 0; o < O; ++o)
      db[static_cast<size_t>(o)] += static_cast<double>(sums[static_cast<size_t>(o)] + P * dy.samples[n].offset) *
                                    static_cast<double>(dy.samples[n].scale);
  }
  at::Tensor out = at::empty({O}, at::kFloat);
  for (int64_t o = 0; o < O; ++o) out.data_ptr<float>()[o] = static_cast<float>(db[static_cast<size_t>(o)]);
  return out;
}

}  // namespace fractrain::integer
