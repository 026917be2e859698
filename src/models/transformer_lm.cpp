#include "fractrain/models/transformer_lm.h"

#include <torch/torch.h>

#include <cmath>

#include "fractrain/nn/qlinear.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// Dropout that only acts in training.
at::Tensor drop(const at::Tensor& x, double p, bool training) {
  return (training && p > 0) ? torch::dropout(x, p, /*train=*/true) : x;
}

std::shared_ptr<QLinear> xavier_linear(int64_t in, int64_t out) {
  auto l = std::make_shared<QLinear>(in, out);
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(l->weight());
  l->bias().zero_();
  return l;
}

// Sinusoidal positions (Vaswani et al. 2017): even features sin(pos / 10000^(i/d)), odd ones cos of the same.
at::Tensor sinusoidal_positions(int64_t length, int64_t width, const at::TensorOptions& options) {
  const at::Tensor position = torch::arange(length, options).unsqueeze(1);
  const at::Tensor i = torch::arange(0, width, 2, options);
  const at::Tensor angle = position * torch::exp(i * (-std::log(10000.0) / static_cast<double>(width)));
  at::Tensor table = torch::zeros({length, width}, options);
  table.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 2)}, torch::sin(angle));
  const int64_t odd = width / 2;
  table.index_put_({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None, 2)},
                   torch::cos(angle.narrow(1, 0, odd)));
  return table;
}

}  // namespace

class CausalSelfAttention : public torch::nn::Module {
 public:
  CausalSelfAttention(int64_t width, int64_t heads, double dropout)
      : heads_(heads), head_dim_(width / heads), dropout_(dropout) {
    // Registered in execution order: quantized_layers() lists layers in this order.
    q_ = register_module("q", xavier_linear(width, width));
    k_ = register_module("k", xavier_linear(width, width));
    v_ = register_module("v", xavier_linear(width, width));
    scores_ = register_module("scores", std::make_shared<QMatmul>());
    context_ = register_module("context", std::make_shared<QMatmul>());
    out_ = register_module("out", xavier_linear(width, width));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& causal_mask, const PrecisionPlan& plan) {
    const int64_t b = x.size(0), t = x.size(1);
    auto split_heads = [&](const at::Tensor& y) { return y.view({b, t, heads_, head_dim_}).transpose(1, 2); };
    const at::Tensor q = split_heads(q_->forward(x, plan)) / std::sqrt(static_cast<double>(head_dim_));
    const at::Tensor k = split_heads(k_->forward(x, plan));
    const at::Tensor v = split_heads(v_->forward(x, plan));
    // The scores of future positions are computed (and counted) in full, then masked, as every dense kernel does.
    at::Tensor scores = scores_->forward(q, k.transpose(-2, -1), plan).masked_fill(causal_mask, -INFINITY);
    const at::Tensor probabilities = drop(torch::softmax(scores, -1), dropout_, is_training());
    const at::Tensor context = context_->forward(probabilities, v, plan);  // [B, H, T, head_dim]
    return out_->forward(context.transpose(1, 2).reshape({b, t, heads_ * head_dim_}), plan);
  }

 private:
  int64_t heads_, head_dim_;
  double dropout_;
  std::shared_ptr<QLinear> q_, k_, v_, out_;
  std::shared_ptr<QMatmul> scores_, context_;
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const TransformerLmOptions& o) : dropout_(o.dropout), pre_norm_(o.pre_norm) {
    norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width})));
    attention_ = register_module("attn", std::make_shared<CausalSelfAttention>(o.width, o.heads, o.dropout));
    norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width})));
    fc1_ = register_module("fc1", xavier_linear(o.width, o.ffn_width));
    fc2_ = register_module("fc2", xavier_linear(o.ffn_width, o.width));
  }

  at::Tensor forward(at::Tensor x, const at::Tensor& causal_mask, const PrecisionPlan& plan) {
    const bool training = is_training();
    auto attention = [&](const at::Tensor& h) { return drop(attention_->forward(h, causal_mask, plan), dropout_, training); };
    auto feed_forward = [&](const at::Tensor& h) {
      const at::Tensor hidden = drop(torch::relu(fc1_->forward(h, plan)), dropout_, training);
      return drop(fc2_->forward(hidden, plan), dropout_, training);
    };
    if (pre_norm_) {
      x = x + attention(norm1_->forward(x));
      return x + feed_forward(norm2_->forward(x));
    }
    x = norm1_->forward(x + attention(x));
    return norm2_->forward(x + feed_forward(x));
  }

 private:
  double dropout_;
  bool pre_norm_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  std::shared_ptr<CausalSelfAttention> attention_;
  std::shared_ptr<QLinear> fc1_, fc2_;
};

TransformerLm::TransformerLm(const ModelInputSpec& input, const TransformerLmOptions& options)
    : QuantizedModel("transformer-lm"), options_(options), vocabulary_(input.num_classes) {
  const auto& o = options;
  if (o.layers < 1 || o.width < 1 || o.heads < 1 || o.ffn_width < 1)
    throw Error("transformer-lm: model.layers, model.width, model.heads and model.ffn_width must be >= 1");
  if (o.width % o.heads != 0)
    throw Error("transformer-lm: model.width = " + std::to_string(o.width) + " is not divisible by model.heads = " +
                std::to_string(o.heads) + "; every head takes width / heads features");
  if (!(o.dropout >= 0 && o.dropout < 1))
    throw Error("transformer-lm: model.dropout = " + std::to_string(o.dropout) + " must be in [0, 1)");
  if (input.sequence_length < 1 || input.num_classes < 2)
    throw Error("transformer-lm reads token sequences: use a token dataset (data.dataset = wikitext103 or wordnet-lm), "
                "not images");
  // A ModuleList names the layers layers.0, layers.1, ... (module names themselves may not contain dots).
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < o.layers; ++i) {
    layers_.push_back(std::make_shared<DecoderLayer>(o));
    list->push_back(layers_.back());
  }
  register_module("layers", list);
  if (o.pre_norm)
    final_norm_ = torch::nn::AnyModule(
        register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.width}))));
  auto head = std::make_shared<QLinear>(o.width, vocabulary_, /*bias=*/false);
  {
    // N(0, width^-1/2), so that embeddings x sqrt(width) start at unit scale (Vaswani et al.; fairseq).
    torch::NoGradGuard no_grad;
    head->weight().normal_(0.0, 1.0 / std::sqrt(static_cast<double>(o.width)));
  }
  lm_head_ = register_module("lm_head", head);
  if (!o.tie_embeddings)
    embedding_ = register_parameter(
        "embedding", torch::randn({vocabulary_, o.width}) / std::sqrt(static_cast<double>(o.width)));
  finalize_layers("", "lm_head");
}

at::Tensor TransformerLm::embedding_table() const {
  return options_.tie_embeddings ? lm_head_->weight_tensor() : embedding_;
}

at::Tensor TransformerLm::forward(const at::Tensor& tokens, const PrecisionPlan& plan) {
  if (tokens.dim() != 2 || tokens.scalar_type() != torch::kLong)
    throw Error("transformer-lm: expected int64 token ids [batch, sequence], got a " + std::to_string(tokens.dim()) +
                "-D " + std::string(c10::toString(tokens.scalar_type())) + " tensor");
  const int64_t t = tokens.size(1);
  if (t < 1) throw Error("transformer-lm: empty sequence");
  if (is_training() && options_.dropout > 0) {
    // The masks of this step: a pure function of (seed, step), whatever ran before (resume, evaluation).
    auto generator = at::globalContext().defaultGenerator(tokens.device());
    std::lock_guard<std::mutex> lock(generator.mutex());
    const uint64_t seed = quantized_layers().front()->quantizer_settings().noise_seed;
    generator.set_current_seed(mix_stream(seed ^ 0xD409u, plan.noise_step));
  }
  const at::Tensor table = embedding_table();
  const auto float_options = table.options().requires_grad(false);
  at::Tensor x = torch::embedding(table, tokens) * std::sqrt(static_cast<double>(options_.width)) +
                 sinusoidal_positions(t, options_.width, float_options);
  x = drop(x, options_.dropout, is_training());
  const at::Tensor causal_mask =
      torch::ones({t, t}, float_options.dtype(torch::kBool)).triu(1);  // true above the diagonal: the future
  for (auto& layer : layers_) x = layer->forward(x, causal_mask, plan);
  if (!final_norm_.is_empty()) x = final_norm_.forward(x);
  return lm_head_->forward(x, plan);
}

}  // namespace fractrain
