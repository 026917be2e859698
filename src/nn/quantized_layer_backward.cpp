#include "quantized_layer_backward.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <algorithm>
#include <mutex>

#include "fractrain/quant/device_quantize.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Memory for Q(x) on CPU. At most one quantized input per thread is alive at a time (from quantization to the
// end of the layer's float op, forward or backward), so all layers share one buffer, grown to the largest
// input, rather than allocate and free an input-sized tensor twice per layer and step: the heap then sees the
// same allocations as in an unquantized step, instead of extra ones that it answers, depending on its layout,
// with fresh pages (page faults cost more than quantizing). Other devices have caching allocators.
at::Tensor transient_buffer_like(const at::Tensor& x) {
  if (!x.device().is_cpu()) return at::empty(x.sizes(), x.options());
  thread_local at::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < x.numel() || buffer.scalar_type() != x.scalar_type())
    buffer = at::empty({x.numel()}, x.options());
  return buffer.slice(0, 0, x.numel()).view(x.sizes());
}

class QuantizedLayerBackward : public Node {
 public:
  QuantizedLayerBackward(const at::Tensor& x, QuantizedLayerGraph graph)
      : x_(x, /*is_output=*/false),
        weight_(graph.quantized_weight, /*is_output=*/false),
        input_(std::move(graph.input)),
        gradient_(std::move(graph.gradient)),
        error_weight_(std::move(graph.error_weight)),
        gradients_(std::move(graph.gradients)) {}

  // Next edges: x, w, bias (in that order). Input: the gradient of y.
  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    at::Tensor g = std::move(grads[0]);
    grads.clear();  // `g` now holds the engine's only reference, if nobody else shares the gradient
    if (!g.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled())
      throw Error("quantized layers do not support double backward (backward with create_graph)");
    const std::array<bool, 3> needed{task_should_compute_output(0), task_should_compute_output(1),
                                     task_should_compute_output(2)};
    at::Tensor w = weight_.unpack();
    // Without dX the FP32 weight does for dW, which does not read the weight's values.
    if (error_weight_ && needed[0]) w = error_weight_->apply(w);
    std::array<at::Tensor, 3> result =
        simulated_layer_gradients(std::move(g), x_.unpack(), w, input_, gradient_, gradients_, needed);
    return {std::move(result[0]), std::move(result[1]), std::move(result[2])};
  }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    x_.reset_data();
    weight_.reset_data();
  }

  std::string name() const override { return "fractrain::QuantizedLayerBackward"; }

 private:
  SavedVariable x_, weight_;
  const InputQuantization input_;
  const std::optional<GradientQuantization> gradient_;
  const std::optional<ErrorWeightQuantization> error_weight_;
  const LayerGradients gradients_;
};

}  // namespace

std::array<at::Tensor, 3> simulated_layer_gradients(at::Tensor g, const at::Tensor& x, const at::Tensor& weight,
                                                    const InputQuantization& input,
                                                    const std::optional<GradientQuantization>& gradient,
                                                    const LayerGradients& gradients, std::array<bool, 3> needed) {
  if (gradient) g = quantize_gradient(std::move(g), *gradient);
  // Only the weight gradient reads x's values (the others its shape at most): no quantization for an error
  // backward alone (integer execution's fallback for an 8-bit gradient on CPUs without dot products).
  const at::Tensor x_q = needed[1] ? input.apply_transient(x) : x;
  return gradients(g, x_q, weight, needed);
}

bool InputQuantization::active() const {
  if (device_row_bits.defined()) return true;  // widths on the device: not read back to find out
  if (row_bits.empty()) return bits != 0;
  return std::any_of(row_bits.begin(), row_bits.end(), [](int b) { return b != 0; });
}

at::Tensor InputQuantization::apply_transient(const at::Tensor& x) const {
  if (!active()) return x;
  RECORD_USER_SCOPE("fractrain::quantize_input");
  at::Tensor out = transient_buffer_like(x);
  if (device_range.defined()) {
    device_quant::RowQuantization q = device_quant::RowQuantization::over(device_range);
    q.rows = device_row_bits.defined() ? device_row_bits.size(0) : 1;
    q.row_bits = device_row_bits;
    q.bits = bits;
    q.snap_zero_point = snap_zero_point;
    return device_quant::quantize_rows_out(x, q, out);
  }
  QuantizeOptions options;
  options.snap_zero_point = snap_zero_point;
  return row_bits.empty() ? fake_quantize_out(x, bits, range, options, out)
                          : fake_quantize_rows_out(x, row_bits, range, options, out);
}

at::Tensor ErrorWeightQuantization::apply(const at::Tensor& w) const {
  if (bits == 0) return w;
  RECORD_USER_SCOPE("fractrain::quantize_error_weight");
  QuantizeOptions options;
  options.snap_zero_point = snap_zero_point;
  if (groups == 1) return fake_quantize_per_input_channel(w, bits, options);
  // [O, I/g, ...] -> [O/g, g, I/g, ...] -> [O/g, I, ...]: dimension 1 then lists every input channel of the layer
  // once, and each of the O/g rows of dimension 0 holds one output channel of every group.
  const int64_t out_channels = w.size(0), group_inputs = w.size(1);
  if (out_channels % groups)
    throw Error("error-pass weight: " + std::to_string(out_channels) + " output channels do not split into " +
                std::to_string(groups) + " groups");
  std::vector<int64_t> grouped{groups, out_channels / groups};
  std::vector<int64_t> by_layer_input{out_channels / groups, groups * group_inputs};
  for (int64_t d = 1; d < w.dim(); ++d) grouped.push_back(w.size(d));
  for (int64_t d = 2; d < w.dim(); ++d) by_layer_input.push_back(w.size(d));
  const at::Tensor regrouped = w.reshape(grouped).transpose(0, 1).reshape(by_layer_input);
  std::vector<int64_t> back{out_channels / groups, groups};
  for (int64_t d = 1; d < w.dim(); ++d) back.push_back(w.size(d));
  return fake_quantize_per_input_channel(regrouped, bits, options).reshape(back).transpose(0, 1).reshape(w.sizes());
}

at::Tensor attach_quantized_layer_backward(at::Tensor y, const at::Tensor& x, const at::Tensor& w,
                                           const at::Tensor& bias, QuantizedLayerGraph graph) {
  auto node = std::shared_ptr<Node>(new QuantizedLayerBackward(x, std::move(graph)), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x, w, bias));
  torch::autograd::create_gradient_edge(y, std::move(node));
  return y;
}

}  // namespace fractrain
