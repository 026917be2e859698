#include "integer_matmul_backward.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <mutex>
#include <string>

#include "fractrain/quant/range_agreement.h"
#include "fractrain/util/error.h"
#include "integer_layer_backward.h"  // integer_width_refusal

namespace fractrain {
namespace {

using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

class IntegerMatmulBackward : public Node {
 public:
  IntegerMatmulBackward(const at::Tensor& a, const at::Tensor& b, IntegerMatmulGraph graph)
      : a_(a, /*is_output=*/false),
        b_(b, /*is_output=*/false),
        a_sizes_(a.sizes().vec()),
        b_sizes_(b.sizes().vec()),
        graph_(std::move(graph)) {}

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    at::Tensor g = std::move(grads[0]);
    grads.clear();
    if (!g.defined()) return {at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled())
      throw Error("attention matmuls do not support double backward (backward with create_graph)");
    const bool left = task_should_compute_output(0), right = task_should_compute_output(1);
    // The range is taken (and agreed across data-parallel ranks) once, whichever way this rank then goes.
    std::optional<GradientQuantization> spec = graph_.gradient;
    std::string refusal = spec ? integer_width_refusal({spec->bits}, "gradient") : "the gradient is not quantized";
    if (spec) spec->range = agreed_range(g, spec->range_agreement.get());
    std::optional<integer::MatrixCodes> codes;
    if (refusal.empty()) {
      const int64_t sample_elements = g.size(0) > 0 ? g.numel() / g.size(0) : 0;
      try {
        codes = integer::quantize_matrix(g.contiguous(), spec->bits, *spec->range, &spec->noise,
                                         static_cast<uint64_t>(spec->first_sample * sample_elements));
      } catch (const Error& e) {
        refusal = e.what();
      }
    }
    if (!codes) return fall_back(std::move(g), left, right, refusal, spec);
    at::Tensor da, db;
    if (left) {  // dA = G B^T: G [B, M, N] and B [B, K, N], both summed along N
      da = integer::dot_products(*codes, graph_.right).view(a_sizes_);
      graph_.log->ran_integer(LayerPass::ErrorBackward);
    }
    if (right) {  // dB = A^T G: A^T [B, K, M] and G^T [B, N, M], both summed along M
      db = integer::dot_products(integer::transposed(graph_.left), integer::transposed(*codes)).view(b_sizes_);
      graph_.log->ran_integer(LayerPass::WeightGradient);
    }
    return {std::move(da), std::move(db)};
  }

  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    a_.reset_data();
    b_.reset_data();
    graph_.left = integer::MatrixCodes{};
    graph_.right = integer::MatrixCodes{};
  }

  std::string name() const override { return "fractrain::IntegerMatmulBackward"; }

 private:
  // What the simulated QMatmul computes: the gradient fake-quantized (or not), times the operands fake-quantized on
  // the forward's ranges with snapped zero points (integer execution's quantization).
  variable_list fall_back(at::Tensor g, bool left, bool right, const std::string& reason,
                          const std::optional<GradientQuantization>& spec) {
    if (left) graph_.log->fell_back(LayerPass::ErrorBackward, reason);
    if (right) graph_.log->fell_back(LayerPass::WeightGradient, reason);
    const at::Tensor gq = spec ? quantize_gradient(std::move(g), *spec) : g;
    QuantizeOptions snapped;
    snapped.snap_zero_point = true;
    at::Tensor da, db;
    if (left)
      da = at::matmul(gq, fake_quantize(b_.unpack().detach().contiguous(), graph_.right.bits, graph_.right_range,
                                        snapped).transpose(-2, -1));
    if (right)
      db = at::matmul(fake_quantize(a_.unpack().detach().contiguous(), graph_.left.bits, graph_.left_range, snapped)
                          .transpose(-2, -1),
                      gq);
    return {std::move(da), std::move(db)};
  }

  SavedVariable a_, b_;
  std::vector<int64_t> a_sizes_, b_sizes_;
  IntegerMatmulGraph graph_;
  std::mutex mutex_;
};

}  // namespace

at::Tensor attach_integer_matmul_backward(at::Tensor y, const at::Tensor& a, const at::Tensor& b,
                                          IntegerMatmulGraph graph) {
  auto node = std::shared_ptr<Node>(new IntegerMatmulBackward(a, b, std::move(graph)), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(a, b));
  torch::autograd::create_gradient_edge(y, std::move(node));
  return y;
}

}  // namespace fractrain
