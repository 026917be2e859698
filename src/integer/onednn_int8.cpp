#include "onednn_int8.h"

#ifdef FRACTRAIN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>
#endif

#include "fractrain/integer/integer_support.h"
#include "fractrain/util/error.h"
#include "plain_int8.h"

namespace fractrain::integer {
namespace {

// Whether the products run on plain_int8.h's loops: only while a test assumes integer support without the real
// one (integer_support.h).
bool on_plain_loops() { return integer_support().plain_loops; }

void plain_block(BlockProduct::Pass pass, BlockProduct::Source source, ConvGeometry g, const int8_t* w_oihw,
                 int64_t samples, const void* src, int32_t* dst) {
  g.batch = samples;
  if (pass == BlockProduct::Pass::Forward)
    plain::conv_forward_s32(g, static_cast<const uint8_t*>(src), w_oihw, dst);
  else if (source == BlockProduct::Source::Unsigned)
    plain::conv_error_s32(g, static_cast<const uint8_t*>(src), w_oihw, dst);
  else
    plain::conv_error_s32(g, static_cast<const int8_t*>(src), w_oihw, dst);
}

void check_source(BlockProduct::Pass pass, BlockProduct::Source source) {
  if (pass == BlockProduct::Pass::Forward && source != BlockProduct::Source::Unsigned)
    throw Error("integer forward product: the input codes are unsigned (uint8)");
}

}  // namespace

#ifndef FRACTRAIN_HAVE_ONEDNN

// Without oneDNN the plain loops are all there is, and integer execution runs only where a test assumes it.
namespace {
[[noreturn]] void no_onednn() {
  throw Error("integer execution: this build has no oneDNN (install libdnnl-dev and rebuild)");
}
}  // namespace

bool conv_backward_weight_s32(const ConvGeometry&, const uint8_t*, const int8_t*, int32_t*) {
  if (on_plain_loops()) return false;  // the caller takes another product
  no_onednn();
}
void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c) {
  if (!on_plain_loops()) no_onednn();
  plain::matmul_s32(m, n, k, a, lda, b, c);
}
void matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                   const int8_t* b, int32_t* c) {
  if (!on_plain_loops()) no_onednn();
  plain::matmul_u8_s32(m, n, k, a, a_row, a_column, b, c);
}
std::string pair_saturating_products_mismatch() { return "this build has no oneDNN"; }
void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst) {
  if (!on_plain_loops()) no_onednn();
  plain::reorder_bytes(dims, src_strides, src, dst_strides, dst);
}
struct BlockProduct::State {
  Pass pass;
  Source source;
  ConvGeometry geometry;
  const int8_t* weights;
};
BlockProduct::BlockProduct(Pass pass, const ConvGeometry& g, const int8_t* w_oihw, Source source)
    : state_(new State{pass, source, g, w_oihw}) {
  check_source(pass, source);
  if (!on_plain_loops()) no_onednn();
}
BlockProduct::~BlockProduct() = default;
void BlockProduct::run(int64_t samples, const void* src, int32_t* dst) const {
  if (samples > 0) plain_block(state_->pass, state_->source, state_->geometry, state_->weights, samples, src, dst);
}

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A primitive, the weights layout it wants, and the reorder from the caller's plain layout into it (weights
// change at every step, so the reorder runs every time; it is small next to the product).
struct WeightedPrimitive {
  dnnl::primitive primitive;
  memory::desc plain_weights, weights;
  memory::desc scratchpad;  // the caller provides it (scratchpad_mode::user): concurrent runs need their own
  dnnl::reorder weights_reorder;
  bool needs_reorder = false;
};

using ConvKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

ConvKey key_of(int kind, const ConvGeometry& g) {
  return {kind, g.batch, g.in_channels, g.out_channels, g.height, g.width, g.kernel, g.stride, g.padding};
}

memory::dims dims_of(std::initializer_list<int64_t> values) { return memory::dims(values.begin(), values.end()); }

// Primitives take their scratchpad from the caller, so that threads running one primitive at once never share it.
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// This thread's scratchpad, grown as needed (64-byte aligned, as oneDNN's own).
void* thread_scratchpad(size_t bytes) {
  struct Buffer {
    void* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (bytes > buffer.size) {
    std::free(buffer.data);
    buffer.size = (bytes + 63) / 64 * 64;
    buffer.data = std::aligned_alloc(64, buffer.size);
    if (!buffer.data) throw Error("integer execution: out of memory for a " + std::to_string(bytes) + "-byte scratchpad");
  }
  return buffer.data;
}

template <typename Primitive>
WeightedPrimitive finish(const typename Primitive::primitive_desc& pd, const memory::desc& plain_weights) {
  WeightedPrimitive p;
  p.plain_weights = plain_weights;
  p.weights = pd.weights_desc();
  p.needs_reorder = p.weights != plain_weights;
  p.scratchpad = pd.scratchpad_desc();
  if (p.needs_reorder) p.weights_reorder = dnnl::reorder(memory(plain_weights, cpu_engine()), memory(p.weights, cpu_engine()));
  p.primitive = Primitive(pd);
  return p;
}

// The products' operands as oneDNN sees them (NHWC codes, int32 sums).
memory::desc forward_src(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::u8, tag::nhwc);
}
memory::desc forward_dst(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}), dt::s32, tag::nhwc);
}
memory::desc error_src(const ConvGeometry& g, BlockProduct::Source source) {
  return memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}),
                      source == BlockProduct::Source::Unsigned ? dt::u8 : dt::s8, tag::nhwc);
}
memory::desc error_dst(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::s32, tag::nhwc);
}

WeightedPrimitive make_forward(const ConvGeometry& g) {
  const auto src = forward_src(g);
  const auto dst = forward_dst(g);
  const auto wdims = dims_of({g.out_channels, g.in_channels, g.kernel, g.kernel});
  const auto weights_any = memory::desc(wdims, dt::s8, tag::any);
  const memory::dims strides{g.stride, g.stride}, padding{g.padding, g.padding};
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                             src, weights_any, dst, strides, padding, padding);
  return finish<dnnl::convolution_forward>(
      dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(), cpu_engine()),
      memory::desc(wdims, dt::s8, tag::oihw));
}

// The error backward as oneDNN's int8 deconvolution forward (its backward passes are float only): the
// deconvolution's output channels are the layer's input channels, so its weights are the layer's OIHW weights
// read as IOHW.
WeightedPrimitive make_backward_data(const ConvGeometry& g, BlockProduct::Source source) {
  const auto src = error_src(g, source);
  const auto dst = error_dst(g);
  const auto wdims = dims_of({g.in_channels, g.out_channels, g.kernel, g.kernel});
  const auto weights_any = memory::desc(wdims, dt::s8, tag::any);
  const memory::dims strides{g.stride, g.stride}, padding{g.padding, g.padding};
  // The same paddings as the forward: oneDNN checks the shapes with the forward's rounding-down division, so a
  // row the stride skipped (k = 1, stride 2) is an output that no product reaches, i.e. 0, as it should be.
  const dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::deconvolution_direct, src, weights_any, dst, strides,
                                               padding, padding);
  return finish<dnnl::deconvolution_forward>(
      dnnl::deconvolution_forward::primitive_desc(desc, user_scratchpad(), cpu_engine()),
      memory::desc(wdims, dt::s8, tag::iohw));
}

// The swapped convolution of conv_backward_weight_s32. Padding on the right is what makes the output k x k;
// where that is negative (taps that never reach the last rows, 1x1 stride 2), the source is cropped instead.
struct SwappedShape {
  memory::desc src, weights_user, dst;
  memory::dims dilation, padding_l, padding_r;
};
SwappedShape swapped_shape(const ConvGeometry& g) {
  const int64_t N = g.batch, I = g.in_channels, O = g.out_channels, Ho = g.out_height(), Wo = g.out_width();
  int64_t pad_r_h = g.kernel + (Ho - 1) * g.stride - g.height - g.padding;
  int64_t pad_r_w = g.kernel + (Wo - 1) * g.stride - g.width - g.padding;
  const int64_t rows = g.height + std::min<int64_t>(0, pad_r_h), cols = g.width + std::min<int64_t>(0, pad_r_w);
  SwappedShape s;
  const int64_t ld = N;
  s.src = memory::desc(dims_of({I, N, rows, cols}), dt::u8, dims_of({g.height * g.width * ld, 1, g.width * ld, ld}));
  s.weights_user = memory::desc(dims_of({O, N, Ho, Wo}), dt::s8, dims_of({1, Ho * Wo * O, Wo * O, O}));
  s.dst = memory::desc(dims_of({I, O, g.kernel, g.kernel}), dt::s32, tag::nhwc);
  s.dilation = dims_of({g.stride - 1, g.stride - 1});
  s.padding_l = dims_of({g.padding, g.padding});
  s.padding_r = dims_of({std::max<int64_t>(0, pad_r_h), std::max<int64_t>(0, pad_r_w)});
  return s;
}

// Null primitive: oneDNN has only its reference implementation here.
std::optional<WeightedPrimitive> make_backward_weight(const ConvGeometry& g) {
  const SwappedShape s = swapped_shape(g);
  const memory::desc weights_any(s.weights_user.dims(), dt::s8, tag::any);
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                             s.src, weights_any, s.dst, dims_of({1, 1}), s.dilation, s.padding_l,
                                             s.padding_r);
  const dnnl::convolution_forward::primitive_desc pd(desc, user_scratchpad(), cpu_engine());
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return std::nullopt;
  return finish<dnnl::convolution_forward>(pd, s.weights_user);
}

struct Cache {
  std::mutex mutex;
  std::map<ConvKey, WeightedPrimitive> convs;
  std::map<ConvKey, std::optional<WeightedPrimitive>> weight_gradients;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>, dnnl::matmul> matmuls;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>, dnnl::reorder>
      reorders;
};

Cache& cache() {
  static Cache c;
  return c;
}

// DFQ runs a block on however many samples keep it, so batch sizes, and with them shapes, vary from step to step:
// the caches are bounded (and start over when full; oneDNN's own primitive cache still spares most of the JIT
// work of a recreated primitive). Entries are handed out by value (oneDNN objects are shared handles).
constexpr size_t kMaxCachedPrimitives = 512;

template <typename Map>
void make_room(Map& map) {
  if (map.size() >= kMaxCachedPrimitives) map.clear();
}

// Cache keys' first element: which primitive.
enum PrimitiveKind { kForward = 0, kErrorSigned = 1, kSwappedWeightGradient = 2, kErrorUnsigned = 3 };

WeightedPrimitive cached_conv(BlockProduct::Pass pass, BlockProduct::Source source, const ConvGeometry& g) {
  const bool forward = pass == BlockProduct::Pass::Forward;
  const int kind = forward ? kForward : source == BlockProduct::Source::Unsigned ? kErrorUnsigned : kErrorSigned;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const ConvKey key = key_of(kind, g);
  auto it = c.convs.find(key);
  if (it == c.convs.end()) {
    make_room(c.convs);
    it = c.convs.emplace(key, forward ? make_forward(g) : make_backward_data(g, source)).first;
  }
  return it->second;
}

// The plain weights at `weights` in `p`'s layout: the same memory, or a reorder of it queued on `stream`.
memory weights_in_layout(const WeightedPrimitive& p, const void* weights, dnnl::stream& stream) {
  memory plain(p.plain_weights, cpu_engine(), const_cast<void*>(weights));
  if (!p.needs_reorder) return plain;
  memory reordered(p.weights, cpu_engine());
  p.weights_reorder.execute(stream, plain, reordered);
  return reordered;
}

// Runs `p` on `stream` with this thread's scratchpad, and waits for it.
void execute(const WeightedPrimitive& p, dnnl::stream& stream, const memory& src, const memory& weights,
             const memory& dst) {
  memory scratchpad(p.scratchpad, cpu_engine(), thread_scratchpad(p.scratchpad.get_size()));
  p.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                               {DNNL_ARG_WEIGHTS, weights},
                               {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
}

// Runs `p` with src, plain weights and dst; reorders the weights into the primitive's layout first.
void run(const WeightedPrimitive& p, const memory::desc& src_desc, const void* src, const void* weights,
         const memory::desc& dst_desc, void* dst) {
  dnnl::stream stream(cpu_engine());
  execute(p, stream, memory(src_desc, cpu_engine(), const_cast<void*>(src)), weights_in_layout(p, weights, stream),
          memory(dst_desc, cpu_engine(), dst));
}

// A 1x1 forward convolution with a stride (or padding) as the 1x1 stride-1 convolution over the positions it reads.
// oneDNN's int8 1x1 kernels gather those positions into a buffer of their own in the scratchpad ("reduce to unit
// stride"); on the AVX2 kernels (oneDNN 2.6) that gave wrong sums for some samples of a small layer (2 samples,
// 8 -> 4 channels, 10x10, stride 2) in some processes and not in others, as if it depended on what the reused
// scratchpad held before (IntegerConv.OneDnnProductsEqualThePlainLoops caught it in about a third of its runs). So
// the gather is done here, per thread, and oneDNN sees no stride.
bool gathers_unit_stride(BlockProduct::Pass pass, const ConvGeometry& g) {
  return pass == BlockProduct::Pass::Forward && g.kernel == 1 && (g.stride > 1 || g.padding > 0);
}
ConvGeometry unit_stride(const ConvGeometry& g) {
  ConvGeometry u = g;
  u.height = g.out_height();
  u.width = g.out_width();
  u.stride = 1;
  u.padding = 0;
  return u;
}
// The codes (NHWC) at the positions a 1x1 convolution of `g` reads, zero where it reads the padding (which adds
// nothing to a sum: it is real 0, and the corrections count valid terms only).
const uint8_t* gather_unit_stride(const ConvGeometry& g, int64_t samples, const uint8_t* codes) {
  thread_local std::vector<uint8_t> buffer;
  const int64_t I = g.in_channels, Ho = g.out_height(), Wo = g.out_width();
  buffer.resize(static_cast<size_t>(samples * Ho * Wo * I));
  uint8_t* out = buffer.data();
  for (int64_t n = 0; n < samples; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow, out += I) {
        const int64_t ih = oh * g.stride - g.padding, iw = ow * g.stride - g.padding;
        if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width)
          std::memset(out, 0, static_cast<size_t>(I));
        else
          std::memcpy(out, codes + ((n * g.height + ih) * g.width + iw) * I, static_cast<size_t>(I));
      }
  return buffer.data();
}

}  // namespace

// Per block size: the primitive and the weights already in its layout (a smaller last block may get another
// primitive, and with it another layout).
struct BlockProduct::State {
  Pass pass;
  Source source;
  ConvGeometry geometry;  // the layer's
  ConvGeometry product;   // what oneDNN runs (unit_stride where gathers_unit_stride)
  const int8_t* weights;
  bool plain_loops;  // decided when the pass starts, so that a test's guard cannot change it midway
  struct Entry {
    WeightedPrimitive primitive;
    memory weights;
  };
  std::mutex mutex;
  std::map<int64_t, std::shared_ptr<const Entry>> by_samples;

  std::shared_ptr<const Entry> entry(int64_t samples) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = by_samples.find(samples);
    if (it != by_samples.end()) return it->second;
    ConvGeometry g = product;
    g.batch = samples;
    auto made = std::make_shared<Entry>();
    made->primitive = cached_conv(pass, source, g);
    dnnl::stream stream(cpu_engine());
    made->weights = weights_in_layout(made->primitive, weights, stream);
    stream.wait();
    return by_samples.emplace(samples, std::move(made)).first->second;
  }
};

BlockProduct::BlockProduct(Pass pass, const ConvGeometry& g, const int8_t* w_oihw, Source source)
    : state_(new State{pass, source, g, gathers_unit_stride(pass, g) ? unit_stride(g) : g, w_oihw, on_plain_loops(),
                       {}, {}}) {
  check_source(pass, source);
}

BlockProduct::~BlockProduct() = default;

void BlockProduct::run(int64_t samples, const void* src, int32_t* dst) const {
  if (samples == 0) return;
  if (state_->plain_loops)
    return plain_block(state_->pass, state_->source, state_->geometry, state_->weights, samples, src, dst);
  const std::shared_ptr<const State::Entry> e = state_->entry(samples);
  ConvGeometry g = state_->product;
  g.batch = samples;
  const bool forward = state_->pass == Pass::Forward;
  if (gathers_unit_stride(state_->pass, state_->geometry))
    src = gather_unit_stride(state_->geometry, samples, static_cast<const uint8_t*>(src));
  dnnl::stream stream(cpu_engine());
  execute(e->primitive, stream,
          memory(forward ? forward_src(g) : error_src(g, state_->source), cpu_engine(), const_cast<void*>(src)),
          e->weights, memory(forward ? forward_dst(g) : error_dst(g), cpu_engine(), dst));
}

bool conv_backward_weight_s32(const ConvGeometry& g, const uint8_t* x_ihwn, const int8_t* dy_nhwc, int32_t* dw_ihwo) {
  if (on_plain_loops()) return false;  // no loop of its own: the caller takes another product
  std::optional<WeightedPrimitive> p;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    const ConvKey key = key_of(kSwappedWeightGradient, g);
    auto it = c.weight_gradients.find(key);
    if (it == c.weight_gradients.end()) {
      make_room(c.weight_gradients);
      it = c.weight_gradients.emplace(key, make_backward_weight(g)).first;
    }
    p = it->second;
  }
  if (!p) return false;
  const SwappedShape s = swapped_shape(g);
  run(*p, s.src, x_ihwn, dy_nhwc, s.dst, dw_ihwo);
  return true;
}

namespace {
// c = a * b on a cached oneDNN matmul for these descriptors (`key` names them).
void run_matmul(const std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>& key, const memory::desc& a_desc,
                const void* a, const memory::desc& b_desc, const void* b, const memory::desc& c_desc, void* c) {
  dnnl::matmul primitive;
  {
    Cache& cc = cache();
    std::lock_guard<std::mutex> lock(cc.mutex);
    auto it = cc.matmuls.find(key);
    if (it == cc.matmuls.end()) {
      make_room(cc.matmuls);
      it = cc.matmuls
               .emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_desc, b_desc, c_desc),
                                                                        cpu_engine())))
               .first;
    }
    primitive = it->second;
  }
  dnnl::engine& engine = cpu_engine();
  dnnl::stream stream(engine);
  memory a_mem(a_desc, engine, const_cast<void*>(a)), b_mem(b_desc, engine, const_cast<void*>(b)),
      c_mem(c_desc, engine, c);
  primitive.execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  stream.wait();
}

// matmul_u8_s32 on oneDNN whatever integer_support() says (its first-use check calls this).
void onednn_matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                          const int8_t* b, int32_t* c) {
  run_matmul({1, m, n, k, a_row, a_column}, memory::desc(dims_of({m, k}), dt::u8, dims_of({a_row, a_column})), a,
             memory::desc(dims_of({k, n}), dt::s8, tag::ab), b, memory::desc(dims_of({m, n}), dt::s32, tag::ab), c);
}
}  // namespace

void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (on_plain_loops()) return plain::matmul_s32(m, n, k, a, lda, b, c);
  run_matmul({0, m, n, k, lda, 1}, memory::desc(dims_of({m, k}), dt::s8, dims_of({lda, 1})), a,
             memory::desc(dims_of({k, n}), dt::s8, tag::ab), b, memory::desc(dims_of({m, n}), dt::s32, tag::ab), c);
}

void matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                   const int8_t* b, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (on_plain_loops()) return plain::matmul_u8_s32(m, n, k, a, a_row, a_column, b, c);
  onednn_matmul_u8_s32(m, n, k, a, a_row, a_column, b, c);
}

void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst) {
  if (dims[0] * dims[1] * dims[2] == 0) return;
  if (on_plain_loops()) return plain::reorder_bytes(dims, src_strides, src, dst_strides, dst);
  const memory::dims d{dims[0], dims[1], dims[2]};
  const memory::desc src_desc(d, dt::u8, memory::dims{src_strides[0], src_strides[1], src_strides[2]});
  const memory::desc dst_desc(d, dt::u8, memory::dims{dst_strides[0], dst_strides[1], dst_strides[2]});
  dnnl::reorder primitive;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    const auto key = std::make_tuple(dims[0], dims[1], dims[2], src_strides[0], src_strides[1], src_strides[2],
                                     dst_strides[0], dst_strides[1], dst_strides[2]);
    auto it = c.reorders.find(key);
    if (it == c.reorders.end()) {
      make_room(c.reorders);
      it = c.reorders.emplace(key, dnnl::reorder(memory(src_desc, cpu_engine()), memory(dst_desc, cpu_engine()))).first;
    }
    primitive = it->second;
  }
  dnnl::engine& engine = cpu_engine();
  dnnl::stream stream(engine);
  memory src_mem(src_desc, engine, const_cast<void*>(src)), dst_mem(dst_desc, engine, dst);
  primitive.execute(stream, src_mem, dst_mem);
  stream.wait();
}

namespace {
// One layer shape of pair_saturating_products_mismatch().
std::string products_mismatch(const ConvGeometry& g) {
  const size_t in = static_cast<size_t>(g.batch * g.in_channels * g.height * g.width);
  const size_t out = static_cast<size_t>(g.batch * g.out_channels * g.out_height() * g.out_width());
  const size_t weights = static_cast<size_t>(g.out_channels * g.in_channels * g.kernel * g.kernel);
  uint32_t state = 12345;  // a fixed LCG: the check must not depend on (or disturb) anyone's random stream
  const auto next = [&state] { return static_cast<int>((state = state * 1664525u + 1013904223u) >> 24); };
  // Worst cases first (every pair at 2 x 127 x -128 and 2 x 127 x 127), then random codes.
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<uint8_t> x(in), dy(out);
    std::vector<int8_t> w(weights), dy_signed(out);
    for (uint8_t& v : x) v = trial < 2 ? 127 : static_cast<uint8_t>(next() % 128);
    for (uint8_t& v : dy) v = trial < 2 ? 127 : static_cast<uint8_t>(next() % 128);
    const auto signed_code = [&] { return static_cast<int8_t>(trial == 0 ? -128 : trial == 1 ? 127 : next() - 128); };
    for (int8_t& v : w) v = signed_code();
    for (int8_t& v : dy_signed) v = signed_code();
    const std::string which =
        std::string(trial == 0 ? " at codes 127 x -128" : trial == 1 ? " at codes 127 x 127" : " at random codes") +
        ", " + std::to_string(g.kernel) + "x" + std::to_string(g.kernel) + " stride " + std::to_string(g.stride);

    std::vector<int32_t> onednn(out), plain(out);
    run(make_forward(g), forward_src(g), x.data(), w.data(), forward_dst(g), onednn.data());
    plain::conv_forward_s32(g, x.data(), w.data(), plain.data());
    if (onednn != plain) return "convolution forward" + which;

    onednn.assign(in, 0);
    plain.assign(in, 0);
    const BlockProduct::Source unsigned_codes = BlockProduct::Source::Unsigned;
    run(make_backward_data(g, unsigned_codes), error_src(g, unsigned_codes), dy.data(), w.data(), error_dst(g),
        onednn.data());
    plain::conv_error_s32(g, dy.data(), w.data(), plain.data());
    if (onednn != plain) return "deconvolution (error backward)" + which;

    // The swapped weight gradient: x as [I][H][W][N], dy (signed) as its weights.
    if (const std::optional<WeightedPrimitive> swapped = make_backward_weight(g)) {
      const SwappedShape shape = swapped_shape(g);
      std::vector<uint8_t> x_ihwn(in);
      const int64_t Q = g.height * g.width, I = g.in_channels;
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t q = 0; q < Q; ++q)
          for (int64_t i = 0; i < I; ++i)
            x_ihwn[static_cast<size_t>((i * Q + q) * g.batch + n)] = x[static_cast<size_t>((n * Q + q) * I + i)];
      onednn.assign(weights, 0);
      run(*swapped, shape.src, x_ihwn.data(), dy_signed.data(), shape.dst, onednn.data());
      // The same sums from the patches' matmul on the loops: dw[i, tap, o] = sum over n, p of x * dy.
      std::vector<int32_t> expected(weights, 0);
      const int64_t O = g.out_channels, k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Wo; ++ow)
            for (int64_t t = 0; t < k * k; ++t) {
              const int64_t ih = oh * g.stride + t / k - g.padding, iw = ow * g.stride + t % k - g.padding;
              if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
              for (int64_t i = 0; i < I; ++i)
                for (int64_t o = 0; o < O; ++o)
                  expected[static_cast<size_t>((i * k * k + t) * O + o)] +=
                      int32_t{x[static_cast<size_t>(((n * g.height + ih) * g.width + iw) * I + i)]} *
                      dy_signed[static_cast<size_t>(((n * Ho + oh) * Wo + ow) * O + o)];
            }
      if (onednn != expected) return "swapped convolution (weight gradient)" + which;
    }

    // The patches' product: a transposed uint8 matrix (x read as [I*H*W] x [N]) times dy's codes read as [N] x [.].
    const int64_t m = g.in_channels * g.height * g.width, k = g.batch, n = g.out_channels;
    onednn.assign(static_cast<size_t>(m * n), 0);
    plain.assign(static_cast<size_t>(m * n), 0);
    onednn_matmul_u8_s32(m, n, k, x.data(), 1, m, dy_signed.data(), onednn.data());
    plain::matmul_u8_s32(m, n, k, x.data(), 1, m, dy_signed.data(), plain.data());
    if (onednn != plain) return "matmul of unsigned codes" + which;
  }
  return "";
}
}  // namespace

std::string pair_saturating_products_mismatch() {
  // A 3x3 layer, a strided one (the deconvolution's other kernel) and a 1x1 one (oneDNN's 1x1 kernels; strided 1x1
  // forwards are gathered into this shape by BlockProduct).
  for (const auto& [kernel, stride, padding] : {std::array<int64_t, 3>{3, 1, 1}, {3, 2, 1}, {1, 1, 0}}) {
    ConvGeometry g;
    g.batch = 4;
    g.in_channels = 16;
    g.out_channels = 16;
    g.height = g.width = 6;
    g.kernel = kernel;
    g.stride = stride;
    g.padding = padding;
    if (const std::string mismatch = products_mismatch(g); !mismatch.empty()) return mismatch;
  }
  return "";
}

#endif

}  // namespace fractrain::integer
