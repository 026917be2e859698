#include "fractrain/quant/straight_through.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>

#include <vector>

#include "fractrain/quant/device_quantize.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using torch::autograd::Node;
using torch::autograd::variable_list;

// Both backward nodes are plain autograd Nodes rather than torch::autograd::Function: they keep no saved
// state, need no context, and, for the gradient quantizer, receive the incoming gradient by value. Function
// copies the gradients before calling backward, which would hide whether the engine handed over the only
// reference (what makes quantizing the gradient in place safe).

// Backward of straight_through: the gradient passes unchanged to x (straight-through estimator).
class StraightThroughBackward : public Node {
 public:
  variable_list apply(variable_list&& grads) override { return std::move(grads); }
  std::string name() const override { return "fractrain::StraightThroughBackward"; }
};

// True when nothing but `g` can observe its memory: no other handle to the tensor (the engine moved its only
// reference to us; a gradient shared with another consumer, e.g. both inputs of an add, or held by a hook or
// by the caller of backward(), has more), no other tensor on its storage (views), and no graph built on it
// (create_graph). Overwriting such a gradient is invisible to everyone else.
bool exclusively_owned(const at::Tensor& g) {
  return g.use_count() == 1 && g.storage().use_count() == 1 && !g.requires_grad() &&
         !at::GradMode::is_enabled();
}

// Backward of quantize_gradient_in_backward.
class GradientQuantizeBackward : public Node {
 public:
  explicit GradientQuantizeBackward(GradientQuantization spec) : spec_(std::move(spec)) {}

  variable_list apply(variable_list&& grads) override {
    at::Tensor g = std::move(grads[0]);
    grads.clear();  // so that `g` holds the engine's only reference
    if (!g.defined()) return {at::Tensor()};
    return {quantize_gradient(std::move(g), spec_)};
  }

  std::string name() const override { return "fractrain::GradientQuantizeBackward"; }

 private:
  const GradientQuantization spec_;
};

// Makes `out` the differentiable result of `node` applied to `input` (the node's single input and output).
at::Tensor connect(at::Tensor out, const at::Tensor& input, std::shared_ptr<Node> node) {
  node->set_next_edges(torch::autograd::collect_next_edges(input));
  torch::autograd::create_gradient_edge(out, std::move(node));
  return out;
}

bool records_graph(const at::Tensor& x) { return x.requires_grad() && at::GradMode::is_enabled(); }

// quantize_gradient on the device path: the range measured on the device, unless the caller took it or the ranks
// agree on it (a collective between hosts, so it is on the host already), the widths and the noise stream read by
// the kernel from device tensors.
at::Tensor quantize_gradient_on_device(const at::Tensor& g, const GradientQuantization& spec,
                                       uint64_t noise_first_index, at::Tensor& out) {
  at::Tensor range;
  if (spec.running_samples.defined()) {
    if (spec.range || spec.range_agreement)
      throw Error("gradient quantization: a range over the running samples cannot be agreed between ranks or given");
    range = device_quant::range_of_running(g, spec.running_samples);
  } else if (spec.range || spec.range_agreement) {
    const QuantRange host = spec.range ? *spec.range : agreed_range(g, spec.range_agreement.get());
    range = at::tensor(std::vector<float>{host.lo, host.hi}, at::TensorOptions().dtype(at::kFloat)).to(g.device());
  } else {
    range = device_quant::range_of(g);
  }
  device_quant::RowQuantization q = device_quant::RowQuantization::over(range);
  if (spec.device_row_bits.defined()) {
    q.rows = spec.device_row_bits.size(0);
    q.row_bits = spec.device_row_bits;
  } else if (!spec.row_bits.empty()) {
    q.rows = static_cast<int64_t>(spec.row_bits.size());
    q.row_bits = device_quant::widths_tensor(spec.row_bits, g);
  }
  q.bits = spec.bits;
  q.snap_zero_point = spec.snap_zero_point;
  q.stochastic = true;
  q.noise_key = spec.noise.key;
  if (spec.noise_step.defined()) {
    q.noise_step = spec.noise_step;
    q.noise_layer = spec.noise_layer;
  } else {
    q.noise_stream = device_quant::stream_tensor(spec.noise, g);
  }
  q.noise_first_index = noise_first_index;
  return device_quant::quantize_rows_out(g, q, out);
}

}  // namespace

at::Tensor quantize_gradient(at::Tensor g, const GradientQuantization& spec) {
  QuantizeOptions options;
  options.rounding = Rounding::Stochastic;
  options.noise = spec.noise;
  options.snap_zero_point = spec.snap_zero_point;
  const int64_t sample_elements = g.dim() > 0 && g.size(0) > 0 ? g.numel() / g.size(0) : 0;
  options.noise_first_index = static_cast<uint64_t>(spec.first_sample * sample_elements);
  at::Tensor out = exclusively_owned(g) && g.is_contiguous() ? g : at::empty(g.sizes(), g.options());
  if (device_quant::applies(g) || spec.device_row_bits.defined())
    return quantize_gradient_on_device(g, spec, options.noise_first_index, out);
  const QuantRange range = spec.range ? *spec.range : agreed_range(g, spec.range_agreement.get());
  if (spec.row_bits.empty())
    fake_quantize_out(g, spec.bits, range, options, out);
  else
    fake_quantize_rows_out(g, spec.row_bits, range, options, out);
  return out;
}

at::Tensor straight_through(const at::Tensor& x, const at::Tensor& quantized) {
  if (!records_graph(x)) return quantized;
  // The history goes on a fresh alias, never on the caller's tensor object (which may be x itself, or a
  // buffer the caller keeps).
  return connect(quantized.detach(), x,
                 std::shared_ptr<Node>(new StraightThroughBackward(), torch::autograd::deleteNode));
}

at::Tensor quantize_gradient_in_backward(const at::Tensor& y, const GradientQuantization& spec) {
  if (!records_graph(y)) return y;
  return connect(y.detach(), y,
                 std::shared_ptr<Node>(new GradientQuantizeBackward(spec), torch::autograd::deleteNode));
}

}  // namespace fractrain
