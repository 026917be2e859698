#pragma once
// A causal decoder-only Transformer language model (the paper's Transformer-base on WikiText-103; DESIGN.md 4.9):
// token embedding x sqrt(width) + sinusoidal positions, dropout, N layers of multi-head causal self-attention and
// a ReLU feed-forward block (each a residual branch, LayerNorm before it (pre-norm) or after the sum (post-norm)),
// a final LayerNorm (pre-norm), and a projection to the vocabulary, by default tied to the embedding.
//
// Quantized (QLinear / QMatmul, so FW-n/BW-m and PFQ apply through the PrecisionPlan): the Q, K, V and output
// projections, the scores Q K^T and the context A V matmuls, and both feed-forward linears. FP32: the embedding
// lookup and positions, softmax, LayerNorm, dropout, residual sums, and the output projection ("lm_head", the
// classifier: quantized only with precision.quantize_classifier). There is no stem: the first quantized layer
// reads embeddings, not data, and its error backward runs (the embedding is trained).
//
// Input int64 [B, T] token ids; output logits [B, T, vocabulary]. Dropout masks are drawn from a generator seeded
// by (run seed, step), so a resumed run draws the masks an uninterrupted one does.
#include <torch/nn/modules/container/any.h>

#include <memory>

#include "fractrain/models/quantized_model.h"

namespace fractrain {

struct TransformerLmOptions {
  int64_t layers = 6;
  int64_t width = 512;
  int64_t heads = 8;
  int64_t ffn_width = 2048;
  double dropout = 0.1;  // on embeddings, attention probabilities, the FFN's hidden units, and each residual branch
  bool tie_embeddings = true;
  bool pre_norm = true;
};

class DecoderLayer;

class TransformerLm : public QuantizedModel {
 public:
  // Throws fractrain::Error for sizes < 1, width not divisible by heads, a dropout outside [0, 1), or an input spec
  // that is not a token input (sequence_length > 0, num_classes >= 2 words).
  TransformerLm(const ModelInputSpec& input, const TransformerLmOptions& options);

  at::Tensor forward(const at::Tensor& tokens, const PrecisionPlan& plan) override;
  const TransformerLmOptions& options() const { return options_; }

 private:
  at::Tensor embedding_table() const;

  TransformerLmOptions options_;
  int64_t vocabulary_;
  at::Tensor embedding_;  // undefined when tied (the lm_head weight is the table)
  std::vector<std::shared_ptr<DecoderLayer>> layers_;
  torch::nn::AnyModule final_norm_;  // pre-norm only
  std::shared_ptr<QuantizedLayer> lm_head_;
};

}  // namespace fractrain
