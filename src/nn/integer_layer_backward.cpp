#include "integer_layer_backward.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <algorithm>
#include <mutex>

#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/range_agreement.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Whether a width has codes the integer kernels take (1..8 bits).
bool has_integer_codes(int bits) { return integer_width_refusal({bits}, "").empty(); }

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
    if (!codes) {
      // DFQ's widths per sample: the samples whose gradient has 1..8-bit codes still run on integers.
      if (spec && !spec->row_bits.empty() && spec->range)
        if (std::optional<variable_list> split = split_by_width(g, needed, *spec, refusal)) return std::move(*split);
      return fall_back(std::move(g), needed, refusal, spec);
    }

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
      result[0] = integer::conv_backward_data(shape.geometry, *codes, error_weight_codes(w), shape.layout).view(x_sizes_());
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

  // The error pass's weight: ranges per input channel of the layer (the error pass's quantization choice); a
  // depthwise filter's input channel is its output channel, so its ranges are the forward's
  // (quantized_layer_backward.h). As codes for the integer pass, as fake-quantized values for the simulated one.
  integer::WeightCodes error_weight_codes(const at::Tensor& w) const {
    return integer::quantize_weight(w.detach(), graph_.weight_bits, graph_.shape.geometry.depthwise() ? 0 : 1);
  }
  at::Tensor simulated_error_weight(const at::Tensor& w) const {
    return ErrorWeightQuantization{graph_.weight_bits, graph_.shape.geometry.groups, /*snap_zero_point=*/true}.apply(w);
  }

  // The gradient's codes, of all samples or of `samples` only (each with the noise it draws in the whole batch).
  integer::FeatureCodes gradient_codes(const at::Tensor& g, const GradientQuantization& spec,
                                       const std::vector<int64_t>& samples = {}) const {
    const at::Tensor gc = g.contiguous();
    integer::FeatureQuantization q;
    const std::vector<int> widths = sample_widths(spec, g.size(0));
    if (samples.empty()) {
      q.sample_bits = widths;
    } else {
      for (int64_t n : samples) q.sample_bits.push_back(widths[static_cast<size_t>(n)]);
      q.samples = samples;
    }
    q.range = *spec.range;
    q.noise = &spec.noise;
    const int64_t sample_elements = g.size(0) > 0 ? g.numel() / g.size(0) : 0;
    q.noise_first_index = static_cast<uint64_t>(spec.first_sample * sample_elements);
    q.signed_codes = true;
    return integer::quantize_features(gc, graph_.shape.layout, q);
  }

  // The backward with the batch split by gradient width: samples with 1..8-bit widths on integer kernels, the
  // others (12-bit gradients, full precision) on the simulated path, each on the very quantization the whole
  // batch would get (the same range, each sample's own noise); dX joins the two by sample, dW and db add them.
  // Null (nothing done) where no sample takes integers, where more than a quarter of the batch is wide (see below),
  // or where the integer part would itself fall back (its codes refused, or, on CPUs without 8-bit dot products,
  // an 8-bit narrow gradient: apply() would run that error pass simulated; here the whole backward then is).
  std::optional<variable_list> split_by_width(const at::Tensor& g, std::array<bool, 3> needed,
                                              const GradientQuantization& spec, const std::string& reason) {
    if (samples_split_off(spec.row_bits) == 0 || static_cast<int64_t>(spec.row_bits.size()) != g.size(0))
      return std::nullopt;
    std::vector<int64_t> narrow, wide;
    for (size_t n = 0; n < spec.row_bits.size(); ++n)
      (has_integer_codes(spec.row_bits[n]) ? narrow : wide).push_back(static_cast<int64_t>(n));
    const IntegerShape& shape = graph_.shape;
    const at::Tensor gc = g.contiguous();
    const at::Tensor narrow_index = at::tensor(narrow, at::kLong), wide_index = at::tensor(wide, at::kLong);
    std::optional<integer::FeatureCodes> codes;
    try {
      codes = gradient_codes(gc, spec, narrow);
    } catch (const Error&) {
      return std::nullopt;
    }
    if (!shape.geometry.depthwise() && !unsigned_width_refusal(codes->bits, "gradient").empty()) return std::nullopt;

    // The wide samples' gradient, quantized a run of consecutive samples at a time: each run continues the batch's
    // noise stream at its first sample, as quantize_gradient over the whole batch would.
    std::vector<at::Tensor> runs;
    for (size_t i = 0; i < wide.size();) {
      size_t j = i + 1;
      while (j < wide.size() && wide[j] == wide[j - 1] + 1) ++j;
      GradientQuantization run = spec;
      run.row_bits.assign(spec.row_bits.begin() + wide[i], spec.row_bits.begin() + wide[j - 1] + 1);
      run.first_sample = spec.first_sample + wide[i];
      runs.push_back(quantize_gradient(gc.slice(0, wide[i], wide[j - 1] + 1), run));
      i = j;
    }
    InputQuantization wide_input = graph_.simulated_input;
    if (!wide_input.row_bits.empty()) {
      std::vector<int> bits;
      for (int64_t n : wide) bits.push_back(wide_input.row_bits[static_cast<size_t>(n)]);
      wide_input.row_bits = bits;
    }
    const at::Tensor x = x_.unpack(), w = weight_.unpack();
    const std::array<at::Tensor, 3> simulated =
        simulated_layer_gradients(at::cat(runs), x.index_select(0, wide_index), needed[0] ? simulated_error_weight(w) : w,
                                  wide_input, std::nullopt, graph_.gradients, needed);

    integer::ConvGeometry geometry = shape.geometry;
    geometry.batch = static_cast<int64_t>(narrow.size());
    std::array<at::Tensor, 3> result;
    if (needed[1]) {
      const at::Tensor dw = integer::conv_backward_weight(geometry, integer::select_samples(graph_.input, narrow), *codes);
      result[1] = dw.view(w.sizes()) + simulated[1];
      graph_.log->ran_split(LayerPass::WeightGradient, static_cast<int64_t>(wide.size()), g.size(0), reason);
    }
    if (needed[2]) result[2] = integer::bias_gradient(*codes) + simulated[2];
    if (needed[0]) {
      std::vector<int64_t> narrow_sizes = x.sizes().vec();
      narrow_sizes[0] = static_cast<int64_t>(narrow.size());
      const at::Tensor dx_narrow =
          integer::conv_backward_data(geometry, *codes, error_weight_codes(w), shape.layout).view(narrow_sizes);
      at::Tensor dx = at::empty(x.sizes(), dx_narrow.options());
      dx.index_copy_(0, narrow_index, dx_narrow);
      dx.index_copy_(0, wide_index, simulated[0].to(dx.scalar_type()));
      result[0] = std::move(dx);
      graph_.log->ran_split(LayerPass::ErrorBackward, static_cast<int64_t>(wide.size()), g.size(0), reason);
    }
    return variable_list{std::move(result[0]), std::move(result[1]), std::move(result[2])};
  }

  // The simulated backward (quantized_layer_backward.cpp) on the same quantization: the error pass's weight per
  // input channel, snapped zero points.
  variable_list fall_back(at::Tensor g, std::array<bool, 3> needed, const std::string& reason,
                          const std::optional<GradientQuantization>& spec) {
    if (needed[0]) graph_.log->fell_back(LayerPass::ErrorBackward, reason);
    if (needed[1]) graph_.log->fell_back(LayerPass::WeightGradient, reason);
    at::Tensor w = weight_.unpack();
    // Grouped as the layer is: a depthwise filter's range per input channel is its own channel's.
    if (needed[0]) w = simulated_error_weight(w);
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

int64_t samples_split_off(const std::vector<int>& gradient_widths) {
  const auto wide = static_cast<int64_t>(
      std::count_if(gradient_widths.begin(), gradient_widths.end(), [](int b) { return !has_integer_codes(b); }));
  // Measured on a 16-channel 32 x 32 layer, batch 128 (docs/integer.md): 8 wide samples take the backward from
  // 10.1 ms (all simulated) to 7.8, 32 to 8.9, and 64 make it slower (10.7): the copies that join the two parts
  // cost about as much as the integer passes save on the rest. Beyond a quarter of the batch, all simulated.
  return wide > 0 && 4 * wide <= static_cast<int64_t>(gradient_widths.size()) ? wide : 0;
}

at::Tensor attach_integer_layer_backward(at::Tensor y, const at::Tensor& x, const at::Tensor& w,
                                         const at::Tensor& bias, IntegerLayerGraph graph) {
  auto node = std::shared_ptr<Node>(new IntegerLayerBackward(x, w, std::move(graph)), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x, w, bias));
  torch::autograd::create_gradient_edge(y, std::move(node));
  return y;
}

}  // namespace fractrain
