#include "integer_layer_backward.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <algorithm>
#include <mutex>

#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/range_agreement.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

std::vector<int> sample_widths(const GradientQuantization& spec, int64_t batch) {
  return spec.row_bits.empty() ? std::vector<int>(static_cast<size_t>(batch), spec.bits) : spec.row_bits;
}

class IntegerLayerBackward : public Node {
 public:
  IntegerLayerBackward(const at::Tensor& x, const at::Tensor& w, IntegerLayerGraph graph)
      : x_(x, /*is_output=*/false), weight_(w, /*is_output=*/false), graph_(std::move(graph)) {}

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    at::Tensor g = std::move(grads[0]);
    grads.clear();
    if (!g.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled())
      throw Error("quantized layers do not support double backward (backward with create_graph)");
    const std::array<bool, 3> needed{task_should_compute_output(0), task_should_compute_output(1),
                                     task_should_compute_output(2)};
    std::string refusal = graph_.gradient ? integer_width_refusal(sample_widths(*graph_.gradient, g.size(0)), "gradient")
                                          : std::string("the gradient is not quantized");
    // The range is taken (and agreed across data-parallel ranks) once, whichever way this rank then goes.
    std::optional<GradientQuantization> spec = graph_.gradient;
    if (spec) spec->range = agreed_range(g, spec->range_agreement.get());
    std::optional<integer::FeatureCodes> codes;
    if (refusal.empty()) {
      try {
        codes = gradient_codes(g, *spec);
      } catch (const Error& e) {
        refusal = e.what();
      }
    }
    if (!codes) return fall_back(std::move(g), needed, refusal, spec);

    const IntegerShape& shape = graph_.shape;
    const at::Tensor w = weight_.unpack();
    std::array<at::Tensor, 3> result;
    // The gradient is the error backward's unsigned operand (the weight gradient's is x, whose width the forward
    // checked): where this CPU cannot add it exactly, that pass alone runs simulated, on the same quantization.
    const std::string error_refusal =
        shape.geometry.depthwise() ? std::string() : unsigned_width_refusal(codes->bits, "gradient");
    if (needed[1]) {
      result[1] = integer::conv_backward_weight(shape.geometry, graph_.input, *codes).view(w.sizes());
      graph_.log->ran_integer(LayerPass::WeightGradient);
    }
    if (needed[2]) result[2] = integer::bias_gradient(*codes);
    if (needed[0] && !error_refusal.empty()) {
      result[0] = std::move(fall_back(std::move(g), {true, false, false}, error_refusal, spec)[0]);
    } else if (needed[0]) {
      // Ranges per input channel of the layer (the error pass's quantization choice); a depthwise filter's input
      // channel is its output channel, so its ranges are the forward's (quantized_layer_backward.h).
      const int axis = shape.geometry.depthwise() ? 0 : 1;
      const integer::WeightCodes error_weight = integer::quantize_weight(w.detach(), graph_.weight_bits, axis);
      result[0] = integer::conv_backward_data(shape.geometry, *codes, error_weight, shape.layout).view(x_sizes_());
      graph_.log->ran_integer(LayerPass::ErrorBackward);
    }
    return {std::move(result[0]), std::move(result[1]), std::move(result[2])};
  }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    x_.reset_data();
    weight_.reset_data();
    graph_.input = integer::FeatureCodes{};
  }

  std::string name() const override { return "fractrain::IntegerLayerBackward"; }

 private:
  std::vector<int64_t> x_sizes_() { return x_.unpack().sizes().vec(); }

  integer::FeatureCodes gradient_codes(const at::Tensor& g, const GradientQuantization& spec) const {
    const at::Tensor gc = g.contiguous();
    integer::FeatureQuantization q;
    q.sample_bits = sample_widths(spec, g.size(0));
    q.range = *spec.range;
    q.noise = &spec.noise;
    const int64_t sample_elements = g.size(0) > 0 ? g.numel() / g.size(0) : 0;
    q.noise_first_index = static_cast<uint64_t>(spec.first_sample * sample_elements);
    q.signed_codes = true;
    return integer::quantize_features(gc, graph_.shape.layout, q);
  }

  // The simulated backward (quantized_layer_backward.cpp) on the same quantization: the error pass's weight per
  // input channel, snapped zero points.
  variable_list fall_back(at::Tensor g, std::array<bool, 3> needed, const std::string& reason,
                          const std::optional<GradientQuantization>& spec) {
    if (needed[0]) graph_.log->fell_back(LayerPass::ErrorBackward, reason);
    if (needed[1]) graph_.log->fell_back(LayerPass::WeightGradient, reason);
    at::Tensor w = weight_.unpack();
    // Grouped as the layer is: a depthwise filter's range per input channel is its own channel's.
    if (needed[0])
      w = ErrorWeightQuantization{graph_.weight_bits, graph_.shape.geometry.groups, /*snap_zero_point=*/true}.apply(w);
    std::array<at::Tensor, 3> r = simulated_layer_gradients(std::move(g), x_.unpack(), w,
                                                            graph_.simulated_input, spec, graph_.gradients,
                                                            needed);
    return {std::move(r[0]), std::move(r[1]), std::move(r[2])};
  }

  SavedVariable x_, weight_;
  IntegerLayerGraph graph_;
};

}  // namespace

std::string integer_width_refusal(const std::vector<int>& widths, const char* operand) {
  for (int b : widths)
    if (b < 1 || b > 8)
      return std::string("a ") + (b == 0 ? "full-precision" : std::to_string(b) + "-bit") + " " + operand +
             " (integer kernels take 1..8 bits)";
  return {};
}

at::Tensor attach_integer_layer_backward(at::Tensor y, const at::Tensor& x, const at::Tensor& w,
                                         const at::Tensor& bias, IntegerLayerGraph graph) {
  auto node = std::shared_ptr<Node>(new IntegerLayerBackward(x, w, std::move(graph)), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x, w, bias));
  torch::autograd::create_gradient_edge(y, std::move(node));
  return y;
}

}  // namespace fractrain
