#include "onednn_int8.h"

#ifdef FRACTRAIN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
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

void plain_block(BlockProduct::Pass pass, ConvGeometry g, const int8_t* w_oihw, int64_t samples, const void* src,
                 int32_t* dst) {
  g.batch = samples;
  if (pass == BlockProduct::Pass::Forward)
    plain::conv_forward_s32(g, static_cast<const uint8_t*>(src), w_oihw, dst);
  else
    plain::conv_error_s32(g, static_cast<const int8_t*>(src), w_oihw, dst);
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
void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst) {
  if (!on_plain_loops()) no_onednn();
  plain::reorder_bytes(dims, src_strides, src, dst_strides, dst);
}
struct BlockProduct::State {
  Pass pass;
  ConvGeometry geometry;
  const int8_t* weights;
};
BlockProduct::BlockProduct(Pass pass, const ConvGeometry& g, const int8_t* w_oihw)
    : state_(new State{pass, g, w_oihw}) {
  if (!on_plain_loops()) no_onednn();
}
BlockProduct::~BlockProduct() = default;
void BlockProduct::run(int64_t samples, const void* src, int32_t* dst) const {
  if (samples > 0) plain_block(state_->pass, state_->geometry, state_->weights, samples, src, dst);
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

WeightedPrimitive make_forward(const ConvGeometry& g) {
  const auto src = memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::u8, tag::nhwc);
  const auto dst = memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}), dt::s32, tag::nhwc);
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
WeightedPrimitive make_backward_data(const ConvGeometry& g) {
  const auto src = memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}), dt::s8, tag::nhwc);
  const auto dst = memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::s32, tag::nhwc);
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
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, dnnl::matmul> matmuls;
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

WeightedPrimitive cached_conv(int kind, const ConvGeometry& g) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const ConvKey key = key_of(kind, g);
  auto it = c.convs.find(key);
  if (it == c.convs.end()) {
    make_room(c.convs);
    it = c.convs.emplace(key, kind == 0 ? make_forward(g) : make_backward_data(g)).first;
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

memory::desc forward_src(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::u8, tag::nhwc);
}
memory::desc forward_dst(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}), dt::s32, tag::nhwc);
}
memory::desc error_src(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.out_channels, g.out_height(), g.out_width()}), dt::s8, tag::nhwc);
}
memory::desc error_dst(const ConvGeometry& g) {
  return memory::desc(dims_of({g.batch, g.in_channels, g.height, g.width}), dt::s32, tag::nhwc);
}

}  // namespace

// Per block size: the primitive and the weights already in its layout (a smaller last block may get another
// primitive, and with it another layout).
struct BlockProduct::State {
  Pass pass;
  ConvGeometry geometry;
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
    ConvGeometry g = geometry;
    g.batch = samples;
    auto made = std::make_shared<Entry>();
    made->primitive = cached_conv(pass == Pass::Forward ? 0 : 1, g);
    dnnl::stream stream(cpu_engine());
    made->weights = weights_in_layout(made->primitive, weights, stream);
    stream.wait();
    return by_samples.emplace(samples, std::move(made)).first->second;
  }
};

BlockProduct::BlockProduct(Pass pass, const ConvGeometry& g, const int8_t* w_oihw)
    : state_(new State{pass, g, w_oihw, on_plain_loops(), {}, {}}) {}

BlockProduct::~BlockProduct() = default;

void BlockProduct::run(int64_t samples, const void* src, int32_t* dst) const {
  if (samples == 0) return;
  if (state_->plain_loops) return plain_block(state_->pass, state_->geometry, state_->weights, samples, src, dst);
  const std::shared_ptr<const State::Entry> e = state_->entry(samples);
  ConvGeometry g = state_->geometry;
  g.batch = samples;
  const bool forward = state_->pass == Pass::Forward;
  dnnl::stream stream(cpu_engine());
  execute(e->primitive, stream, memory(forward ? forward_src(g) : error_src(g), cpu_engine(), const_cast<void*>(src)),
          e->weights, memory(forward ? forward_dst(g) : error_dst(g), cpu_engine(), dst));
}

bool conv_backward_weight_s32(const ConvGeometry& g, const uint8_t* x_ihwn, const int8_t* dy_nhwc, int32_t* dw_ihwo) {
  if (on_plain_loops()) return false;  // no loop of its own: the caller takes another product
  std::optional<WeightedPrimitive> p;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    const ConvKey key = key_of(2, g);
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

void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c) {
  if (m == 0 || n == 0) return;
  if (on_plain_loops()) return plain::matmul_s32(m, n, k, a, lda, b, c);
  const memory::desc a_desc(dims_of({m, k}), dt::s8, dims_of({lda, 1}));
  const memory::desc b_desc(dims_of({k, n}), dt::s8, tag::ab);
  const memory::desc c_desc(dims_of({m, n}), dt::s32, tag::ab);
  dnnl::matmul primitive;
  {
    Cache& cc = cache();
    std::lock_guard<std::mutex> lock(cc.mutex);
    const auto key = std::make_tuple(m, n, k, lda);
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
  memory a_mem(a_desc, engine, const_cast<int8_t*>(a)), b_mem(b_desc, engine, const_cast<int8_t*>(b)),
      c_mem(c_desc, engine, c);
  primitive.execute(stream, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  stream.wait();
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

#endif

}  // namespace fractrain::integer
