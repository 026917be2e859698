// The weight gradient of the integer passes (integer_conv.h): dW = Q(dY)^T * patches(Q(x)) as exact integer sums
// per group of samples that share their scales, on one of three products (WeightGradientProduct), then the
// zero-point corrections and the scales.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "conv_taps.h"
#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_conv.h"
#include "integer_depthwise.h"
#include "onednn_int8.h"

namespace fractrain::integer {

using namespace detail;  // conv_taps.h

namespace {

// Samples whose activation and gradient codes share scale and offset: one integer sum each in the weight
// gradient.
struct SampleGroup {
  std::vector<int64_t> samples;
  CodeScale x, dy;
  int x_shift = 0;
  int64_t x_magnitude = 0, dy_magnitude = 0;  // of the codes as int8 (x shifted by x_shift)
  int64_t x_unsigned_magnitude = 0;           // of x's stored uint8 codes
};

std::vector<SampleGroup> sample_groups(const FeatureCodes& x, const FeatureCodes& dy) {
  std::map<std::tuple<float, int32_t, int, float, int32_t, int>, size_t> index;
  std::vector<SampleGroup> groups;
  for (int64_t n = 0; n < x.batch(); ++n) {
    const auto key = std::make_tuple(x.samples[n].scale, x.samples[n].offset, x.bits[n], dy.samples[n].scale,
                                     dy.samples[n].offset, dy.bits[n]);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, groups.size()).first;
      SampleGroup group;
      group.x = x.samples[n];
      group.dy = dy.samples[n];
      group.x_shift = int8_shift(x.bits[n]);
      group.x_magnitude = code_magnitude(x.bits[n], true);
      group.x_unsigned_magnitude = code_magnitude(x.bits[n], false);
      group.dy_magnitude = code_magnitude(dy.bits[n], true);
      groups.push_back(group);
    }
    groups[it->second].samples.push_back(n);
  }
  return groups;
}

// total[e] = the sum over `samples` of codes[n * per_sample + e], in parallel over e. The grain counts additions, not
// elements: a ResNet-20 sample holds 4096-16384 codes, so a grain of elements alone left this pass on one thread.
template <typename Code>
void sum_over_samples(const std::vector<int64_t>& samples, const Code* codes, int64_t per_sample, int32_t* total) {
  const int64_t grain = std::max<int64_t>(256, 32768 / std::max<int64_t>(1, static_cast<int64_t>(samples.size())));
  at::parallel_for(0, per_sample, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n : samples) add_codes(codes + n * per_sample + begin, end - begin, total + begin);
  });
}

// One sample's input patches for the weight gradient, [P][taps * I] int8: its codes (NHWC) shifted by `flip`
// (t - 128 as int8 is t ^ 0x80; 0 leaves codes below 8 bits as they are), zeros (real 0) in the padding. Tap
// (kh, kw..kw+k) reads k consecutive input positions, i.e. k * I contiguous codes in NHWC: one run per kernel
// row, cut at the borders.
FRACTRAIN_INTEGER_CLONES
void sample_patches(const ConvGeometry& g, const uint8_t* codes, uint8_t flip, int8_t* patches) {
  const int64_t I = g.in_channels, K = taps_of(g) * I, row_bytes = g.kernel * I;
  for (int64_t oh = 0; oh < g.out_height(); ++oh)
    for (int64_t ow = 0; ow < g.out_width(); ++ow) {
      uint8_t* row = reinterpret_cast<uint8_t*>(patches + (oh * g.out_width() + ow) * K);
      const int64_t iw0 = ow * g.stride - g.padding;
      const int64_t kw_begin = std::max<int64_t>(0, -iw0), kw_end = std::min(g.kernel, g.width - iw0);
      for (int64_t kh = 0; kh < g.kernel; ++kh) {
        uint8_t* dst = row + kh * row_bytes;
        const int64_t ih = oh * g.stride - g.padding + kh;
        if (ih < 0 || ih >= g.height || kw_begin >= kw_end) {
          std::memset(dst, 0, static_cast<size_t>(row_bytes));
          continue;
        }
        std::memset(dst, 0, static_cast<size_t>(kw_begin * I));
        std::memset(dst + kw_end * I, 0, static_cast<size_t>((g.kernel - kw_end) * I));
        const uint8_t* src = codes + (ih * g.width + iw0 + kw_begin) * I;
        const int64_t len = (kw_end - kw_begin) * I;
        if (flip == 0) {
          std::memcpy(dst + kw_begin * I, src, static_cast<size_t>(len));
        } else {
          for (int64_t e = 0; e < len; ++e) dst[kw_begin * I + e] = src[e] ^ flip;
        }
      }
    }
}

}  // namespace

namespace {

// The weight gradient's integer products, per sample group: exact[o][tap][i] = the sum over the group's samples
// and output positions of dy's code times x's code (shifted by `x_shift`; 0 in the padding).
struct WeightProducts {
  std::vector<std::vector<int64_t>> exact;  // per group
  std::vector<int> x_shift;                 // per group
};

// The samples of the groups one after the other (rows of the products).
std::vector<int64_t> group_order(const std::vector<SampleGroup>& groups) {
  std::vector<int64_t> order;
  for (const SampleGroup& group : groups) order.insert(order.end(), group.samples.begin(), group.samples.end());
  return order;
}

bool is_identity(const std::vector<int64_t>& order) {
  for (size_t r = 0; r < order.size(); ++r)
    if (order[r] != static_cast<int64_t>(r)) return false;
  return true;
}

// `codes` ([N][per_sample] bytes) with its samples in `order`.
at::Tensor ordered_samples(const at::Tensor& codes, const std::vector<int64_t>& order, int64_t per_sample) {
  at::Tensor out = at::empty_like(codes);
  const auto* src = static_cast<const uint8_t*>(codes.data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  at::parallel_for(0, static_cast<int64_t>(order.size()), 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      std::memcpy(dst + r * per_sample, src + order[static_cast<size_t>(r)] * per_sample,
                  static_cast<size_t>(per_sample));
  });
  return out;
}

// The products on oneDNN's swapped convolution (onednn_int8.h), the unshifted uint8 codes read in place: no
// patches. Null where oneDNN has only its reference implementation for the shape, or where one sample's sums
// could overflow int32 (the convolution splits over samples, not positions).
std::optional<WeightProducts> swapped_products(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                                               const std::vector<SampleGroup>& groups) {
  RECORD_USER_SCOPE("fractrain::integer_weight_product");
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, P = out_positions(g), Q = in_positions(g),
                taps = taps_of(g), K = taps * I;
  for (const SampleGroup& group : groups)
    if (P > max_exact_terms(group.x_unsigned_magnitude, group.dy_magnitude)) return std::nullopt;
  const std::vector<int64_t> order = group_order(groups);
  const bool identity = is_identity(order);
  const at::Tensor x_nqi = identity ? x.codes : ordered_samples(x.codes, order, Q * I);
  const at::Tensor dy_ordered = identity ? dy.codes : ordered_samples(dy.codes, order, P * O);
  at::Tensor x_iqn = at::empty({I * Q * N}, at::kByte);

  WeightProducts out;
  at::Tensor partial = at::empty({I, taps, O}, at::kInt);
  const int32_t* c = partial.data_ptr<int32_t>();
  int64_t first = 0;
  for (const SampleGroup& group : groups) {
    const int64_t samples = static_cast<int64_t>(group.samples.size());
    std::vector<int64_t> exact(static_cast<size_t>(O * K), 0);
    // Equal pieces of samples whose int32 sums (at most P terms per sample) cannot overflow.
    const int64_t most = max_exact_terms(group.x_unsigned_magnitude, group.dy_magnitude) / std::max<int64_t>(1, P);
    const int64_t pieces = (samples + most - 1) / most, piece = (samples + pieces - 1) / pieces;
    for (int64_t r = 0; r < samples; r += piece) {
      ConvGeometry chunk = g;
      const int64_t len = chunk.batch = std::min(piece, samples - r);
      // The piece's codes [len][Q][I] -> [I][Q][len]: the convolution's batch is the layer's input channels,
      // and its channels (the piece's samples) are packed densely, as oneDNN's fast kernels need them.
      uint8_t* xs = x_iqn.data_ptr<uint8_t>();
      const int64_t dims[3] = {len, Q, I}, from[3] = {Q * I, I, 1}, to[3] = {1, len, Q * len};
      reorder_bytes(dims, from, x_nqi.data_ptr<uint8_t>() + (first + r) * Q * I, to, xs);
      const int8_t* ds = dy_ordered.data_ptr<int8_t>() + (first + r) * P * O;
      if (!conv_backward_weight_s32(chunk, xs, ds, partial.data_ptr<int32_t>())) return std::nullopt;
      for (int64_t i = 0; i < I; ++i)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t o = 0; o < O; ++o) exact[static_cast<size_t>(o * K + t * I + i)] += c[(i * taps + t) * O + o];
    }
    out.exact.push_back(std::move(exact));
    out.x_shift.push_back(0);
    first += samples;
  }
  return out;
}

// The products as one matrix product per group over im2col patches (the path for shapes without a fast swapped
// convolution). Below 8 bits, x's codes need no shift and the patches are the unsigned operand (which CPUs without
// 8-bit dot products add exactly up to 7 bits): the patches, transposed, times the gradient codes as they are
// stored. With 8-bit activations, the gradient codes channel-major times the patches shifted into int8.
WeightProducts patch_products(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                              const std::vector<SampleGroup>& groups) {
  const bool unsigned_patches = std::all_of(x.bits.begin(), x.bits.end(), [](int b) { return b < 8; });
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, P = out_positions(g), Q = in_positions(g),
                K = taps_of(g) * I;
  const std::vector<int64_t> order = group_order(groups);
  at::Tensor patches = at::empty({N * P, K}, at::kChar);
  int8_t* patch = patches.data_ptr<int8_t>();
  const uint8_t* xc = x.codes.data_ptr<uint8_t>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    RECORD_USER_SCOPE("fractrain::integer_patches");
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = order[static_cast<size_t>(r)];
      sample_patches(g, xc + n * Q * I, static_cast<uint8_t>(int8_shift(x.bits[n])), patch + r * P * K);
    }
  });
  at::Tensor gathered = unsigned_patches ? (is_identity(order) ? dy.codes : ordered_samples(dy.codes, order, P * O))
                                          : dy.channel_major;
  if (!gathered.defined()) {  // [N * P][O] -> [O][N * P]
    gathered = at::empty({O, N * P}, at::kChar);
    const int64_t dims[3] = {1, N * P, O}, from[3] = {N * P * O, O, 1}, to[3] = {N * P * O, 1, N * P};
    reorder_bytes(dims, from, dy.codes.data_ptr(), to, gathered.data_ptr());
  }
  if (!unsigned_patches && !is_identity(order)) {
    const at::Tensor major = gathered;
    gathered = at::empty_like(major);
    const int8_t* src = major.data_ptr<int8_t>();
    int8_t* dst = gathered.data_ptr<int8_t>();
    for (int64_t o = 0; o < O; ++o)
      for (int64_t r = 0; r < N; ++r)
        std::copy(src + o * N * P + order[static_cast<size_t>(r)] * P,
                  src + o * N * P + (order[static_cast<size_t>(r)] + 1) * P, dst + o * N * P + r * P);
  }
  WeightProducts out;
  at::Tensor partial = at::empty({O, K}, at::kInt);
  int64_t first_row = 0;
  for (const SampleGroup& group : groups) {
    const int64_t rows = static_cast<int64_t>(group.samples.size()) * P;
    std::vector<int64_t> exact(static_cast<size_t>(O * K), 0);
    // Equal chunks of rows whose int32 sums cannot overflow (equal: a remainder of a few rows would be a product
    // of its own, as slow as a full one at these shapes).
    const int64_t most = max_exact_terms(group.x_magnitude, group.dy_magnitude);
    const int64_t pieces = std::max<int64_t>(1, (rows + most - 1) / most);
    const int64_t chunk = (rows + pieces - 1) / pieces;
    for (int64_t r = 0; r < rows; r += chunk) {
      RECORD_USER_SCOPE("fractrain::integer_weight_product");
      const int64_t len = std::min(chunk, rows - r);
      const int32_t* c = partial.data_ptr<int32_t>();
      if (unsigned_patches) {  // [K][O]
        matmul_u8_s32(K, O, len, reinterpret_cast<const uint8_t*>(patch + (first_row + r) * K), 1, K,
                      gathered.data_ptr<int8_t>() + (first_row + r) * O, partial.data_ptr<int32_t>());
        for (int64_t o = 0; o < O; ++o)
          for (int64_t e = 0; e < K; ++e) exact[static_cast<size_t>(o * K + e)] += c[e * O + o];
      } else {  // [O][K]
        matmul_s32(O, K, len, gathered.data_ptr<int8_t>() + first_row + r, N * P, patch + (first_row + r) * K,
                   partial.data_ptr<int32_t>());
        for (int64_t e = 0; e < O * K; ++e) exact[static_cast<size_t>(e)] += c[e];
      }
    }
    out.exact.push_back(std::move(exact));
    out.x_shift.push_back(group.x_shift);
    first_row += rows;
  }
  return out;
}

// The products on fractrain's own kernel (direct_weight_gradient.h), the unshifted uint8 codes read in place. Null
// where one output row's sums could overflow int32, or where `isa` is not this CPU's.
std::optional<WeightProducts> direct_products(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                                              const std::vector<SampleGroup>& groups, DotProductIsa isa) {
  RECORD_USER_SCOPE("fractrain::integer_weight_product");
  const int64_t K = taps_of(g) * g.in_channels;
  WeightProducts out;
  for (const SampleGroup& group : groups) {
    std::vector<int64_t> exact(static_cast<size_t>(g.out_channels * K), 0);
    if (!direct_weight_products(g, x.codes.data_ptr<uint8_t>(),
                                x.planar.defined() ? x.planar.data_ptr<uint8_t>() : nullptr,
                                dy.codes.data_ptr<int8_t>(), group.samples,
                                max_exact_terms(group.x_unsigned_magnitude, group.dy_magnitude), isa, exact.data()))
      return std::nullopt;
    out.exact.push_back(std::move(exact));
    out.x_shift.push_back(0);
  }
  return out;
}

// The ways to form the products, in the order the trials run them.
enum class Product { Swapped, Direct, Patches };
constexpr Product kProducts[] = {Product::Swapped, Product::Direct, Product::Patches};

std::optional<WeightProducts> run_product(Product product, const ConvGeometry& g, const FeatureCodes& x,
                                          const FeatureCodes& dy, const std::vector<SampleGroup>& groups) {
  switch (product) {
    case Product::Swapped:
      return swapped_products(g, x, dy, groups);
    case Product::Direct:
      return direct_products(g, x, dy, groups, DotProductIsa::Avx512Vnni);
    case Product::Patches:
      break;
  }
  return patch_products(g, x, dy, groups);
}

// Which product is fastest for a geometry: none wins everywhere (the swapped convolution saves the patches, which
// dominate at few channels and large images; the matmul is faster at 32-64 channels on AMX; the own kernel needs
// AVX-512 VNNI), and the winner depends on the CPU. The first kTrials calls of a geometry run each available one
// (they form the same sums) and the best time decides from then on: one trial alone was seen to pick the slower one
// on a busy machine. The table is bounded (its keys round the batch up to a power of two).
class ProductChoice {
 public:
  static constexpr int kTrials = 3;
  static constexpr int kCount = 3;
  // Once the trials are done: the products by their best times, fastest first (those that never ran left out).
  std::vector<Product> decided(const ConvGeometry& g) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = trials_.find(key(g));
    if (it == trials_.end() || it->second.runs < kTrials) return {};
    std::vector<Product> ranked;
    for (int p = 0; p < kCount; ++p)
      if (it->second.seconds[p] < kExcluded) ranked.push_back(static_cast<Product>(p));
    std::sort(ranked.begin(), ranked.end(), [&](Product a, Product b) {
      return it->second.seconds[static_cast<int>(a)] < it->second.seconds[static_cast<int>(b)];
    });
    return ranked;
  }
  bool excluded(const ConvGeometry& g, Product p) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = trials_.find(key(g));
    return it != trials_.end() && it->second.excluded[static_cast<int>(p)];
  }
  // A trial's times, with kExcluded for a product that could not run (no fast kernel, not exact, not this CPU):
  // it is not tried again for the geometry.
  static constexpr double kExcluded = 1e300;
  void record(const ConvGeometry& g, const double (&seconds)[kCount]) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trials_.size() >= 512) trials_.clear();
    Trials& t = trials_[key(g)];
    for (int p = 0; p < kCount; ++p) {
      t.seconds[p] = std::min(t.seconds[p], seconds[p]);
      if (seconds[p] == kExcluded) t.excluded[p] = true;
    }
    ++t.runs;
  }

 private:
  struct Trials {
    int runs = 0;
    double seconds[kCount] = {kExcluded, kExcluded, kExcluded};  // best times
    bool excluded[kCount] = {false, false, false};
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  // The batch by its power of two: a DFQ backward split by sample (integer_layer_backward.cpp) has a different
  // batch almost every step, and batches of 100 and 128 pick the same product; exact sizes would run the trials
  // again and again (and fill the table, which then starts over).
  static Key key(const ConvGeometry& g) {
    int64_t batch = 1;
    while (batch < g.batch) batch *= 2;
    return {batch, g.in_channels, g.out_channels, g.height, g.width, g.kernel, g.stride, g.padding};
  }
  std::mutex mutex_;
  std::map<Key, Trials> trials_;
};

WeightProducts fastest_products(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                                const std::vector<SampleGroup>& groups) {
  static ProductChoice choice;
  // The fastest decided product, or, where it cannot run at this batch (the key's batch is rounded: the swapped
  // convolution's exactness depends on the batch), the next one; the trials are not run again (the patches, which
  // always run, are among them).
  const std::vector<Product> ranked = choice.decided(g);
  for (Product p : ranked)
    if (std::optional<WeightProducts> products = run_product(p, g, x, dy, groups)) return std::move(*products);
  using clock = std::chrono::steady_clock;
  double seconds[ProductChoice::kCount];
  std::optional<WeightProducts> first;
  for (Product p : kProducts) {
    double& time = seconds[static_cast<int>(p)];
    time = ProductChoice::kExcluded;
    if (choice.excluded(g, p) || (p == Product::Direct && !direct_kernel_usable())) continue;
    const auto start = clock::now();
    std::optional<WeightProducts> products = run_product(p, g, x, dy, groups);
    if (!products) continue;
    time = std::chrono::duration<double>(clock::now() - start).count();
    if (!first) first = std::move(products);
  }
  choice.record(g, seconds);
  return std::move(*first);  // the patches always run
}

}  // namespace

at::Tensor conv_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                                WeightGradientProduct product) {
  check_groups(g, "weight gradient");
  if (g.depthwise()) return depthwise_backward_weight(g, x, dy);
  RECORD_USER_SCOPE("fractrain::integer_conv_backward_weight");
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, P = out_positions(g), Q = in_positions(g),
                taps = taps_of(g), K = taps * I;
  check_features(x, N, I, Q, "weight gradient");
  check_features(dy, N, O, P, "weight gradient");
  // x's codes are every product's unsigned operand (at 8 bits the patches' int8 x int8 product needs 8-bit dot
  // products as well).
  check_unsigned_width(x.bits, "activation", "weight gradient");
  const std::vector<int64_t> map = tap_map(g);
  const std::vector<SampleGroup> groups = sample_groups(x, dy);
  std::optional<WeightProducts> products;
  if (product == WeightGradientProduct::Fastest) products = fastest_products(g, x, dy, groups);
  if (product == WeightGradientProduct::Direct)
    products = direct_products(g, x, dy, groups,
                               cpu_has_avx512_vnni() ? DotProductIsa::Avx512Vnni : DotProductIsa::Portable);
  if (!products) products = patch_products(g, x, dy, groups);

  std::vector<double> dw(static_cast<size_t>(O * K), 0.0);
  const uint8_t* xc = x.codes.data_ptr<uint8_t>();
  const int8_t* dyc = dy.codes.data_ptr<int8_t>();
  for (size_t k = 0; k < groups.size(); ++k) {
    const SampleGroup& group = groups[k];
    const std::vector<int64_t>& exact = products->exact[k];
    const int x_shift = products->x_shift[k];
    // Corrections: per tap, the group's input codes summed over the positions that tap reads (xs), the gradient
    // codes summed over the output positions where the tap is valid (gs), and how many such positions (count).
    RECORD_USER_SCOPE("fractrain::integer_weight_corrections");
    // int32 is exact here: at most 2^31 / 256 samples. A sum whose offset is zero is not needed (activations after
    // a ReLU have ox = 0): it is left at zero.
    const int64_t ox = group.x.offset + x_shift, og = group.dy.offset;
    std::vector<int32_t> xsum, dysum;
    if (og != 0) {
      xsum.assign(static_cast<size_t>(Q * I), 0);
      sum_over_samples(group.samples, xc, Q * I, xsum.data());
      const int32_t shift_total = static_cast<int32_t>(x_shift * static_cast<int64_t>(group.samples.size()));
      for (int32_t& v : xsum) v -= shift_total;
    }
    if (ox != 0) {
      dysum.assign(static_cast<size_t>(P * O), 0);
      sum_over_samples(group.samples, dyc, P * O, dysum.data());
    }
    std::vector<int64_t> xs(static_cast<size_t>(K), 0), gs(static_cast<size_t>(O * taps), 0), count(static_cast<size_t>(taps), 0);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t at = map[static_cast<size_t>(p * taps + t)];
        if (at < 0) continue;
        ++count[static_cast<size_t>(t)];
        if (og != 0)
          for (int64_t i = 0; i < I; ++i) xs[static_cast<size_t>(t * I + i)] += xsum[static_cast<size_t>(at * I + i)];
        if (ox != 0)
          for (int64_t o = 0; o < O; ++o) gs[static_cast<size_t>(o * taps + t)] += dysum[static_cast<size_t>(p * O + o)];
      }
    const int64_t samples = static_cast<int64_t>(group.samples.size());
    const double scale = static_cast<double>(group.x.scale) * static_cast<double>(group.dy.scale);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t i = 0; i < I; ++i) {
          const size_t e = static_cast<size_t>(o * K + t * I + i);
          const int64_t total = exact[e] + og * xs[static_cast<size_t>(t * I + i)] +
                                ox * gs[static_cast<size_t>(o * taps + t)] + samples * count[static_cast<size_t>(t)] * ox * og;
          dw[e] += static_cast<double>(total) * scale;
        }
  }
  // [O][tap][I] -> [O, I, k, k]
  at::Tensor out = at::empty({O, I, g.kernel, g.kernel}, at::kFloat);
  float* o_ptr = out.data_ptr<float>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t t = 0; t < taps; ++t)
        o_ptr[(o * I + i) * taps + t] = static_cast<float>(dw[static_cast<size_t>(o * K + t * I + i)]);
  return out;
}

}  // namespace fractrain::integer
