// The Transformer language model: causality, MACs against a hand count (attention matmuls included), what is
// quantized, that it learns at FW-8/BW-8, and its refusals.
#include <torch/torch.h>

#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "test_support.h"

namespace fractrain {
namespace {

using test_support::error_of;

ModelInputSpec tokens_spec(int64_t vocabulary, int64_t length) {
  ModelInputSpec s;
  s.num_classes = vocabulary;
  s.sequence_length = length;
  return s;
}

TransformerLmOptions tiny(double dropout = 0.0) {
  TransformerLmOptions o;
  o.layers = 2;
  o.width = 8;
  o.heads = 2;
  o.ffn_width = 16;
  o.dropout = dropout;
  return o;
}

TEST(TransformerLm, FutureTokensDoNotChangeEarlierLogits) {
  torch::manual_seed(3);
  for (bool pre_norm : {true, false}) {
    TransformerLmOptions o = tiny();
    o.pre_norm = pre_norm;
    auto model = create_model("transformer-lm", tokens_spec(11, 6), o);
    model->eval();
    torch::NoGradGuard no_grad;
    const PrecisionPlan fp32 = PrecisionPlan::uniform(Precision::full());
    at::Tensor tokens = torch::tensor({{1, 4, 2, 9, 3, 7}}, torch::kLong);
    const at::Tensor before = model->forward(tokens, fp32);
    ASSERT_EQ(before.sizes(), (std::vector<int64_t>{1, 6, 11}));
    tokens[0][4] = 10;
    const at::Tensor after = model->forward(tokens, fp32);
    EXPECT_TRUE(after.narrow(1, 0, 4).equal(before.narrow(1, 0, 4))) << "pre_norm " << pre_norm;
    EXPECT_FALSE(after.narrow(1, 4, 1).equal(before.narrow(1, 4, 1)));
  }
}

TEST(TransformerLm, MacsMatchAHandCountWithAttentionMatmuls) {
  auto model = create_model("transformer-lm", tokens_spec(11, 4), tiny());
  const ModelProfile profile = profile_model(*model, tokens_spec(11, 4));
  // Per layer, T = 4 tokens, width 8, 2 heads of 4, FFN 16: Q, K, V, out 4 x (4 x 8 x 8) = 1024; Q K^T and A V
  // 2 heads x 4 x 4 x 4 = 128 each; fc1 and fc2 4 x 8 x 16 = 512 each: 2304. Two layers 4608; lm_head 4 x 8 x 11.
  EXPECT_EQ(profile.forward_macs(), 2 * 2304 + 352);
  EXPECT_EQ(profile.forward_macs(LayerRole::Classifier), 352);
  EXPECT_EQ(profile.forward_macs(LayerRole::Stem), 0);
  int attention = 0;
  for (const auto& l : profile.layers()) {
    if (l.kind != LayerKind::Attention) continue;
    ++attention;
    EXPECT_EQ(l.macs_per_sample, 128) << l.name;
    EXPECT_EQ(l.weight_elements, 0) << l.name;
    EXPECT_TRUE(l.error_backward_runs);
  }
  EXPECT_EQ(attention, 4);
  EXPECT_EQ(profile.layers().front().name, "layers.0.attn.q");
  EXPECT_EQ(profile.layers()[3].name, "layers.0.attn.scores");
  EXPECT_EQ(profile.layers().back().name, "lm_head");
}

TEST(TransformerLm, QuantizesProjectionsAttentionAndFfnButNotTheHead) {
  auto model = create_model("transformer-lm", tokens_spec(11, 4), tiny());
  EXPECT_EQ(model->quantized_layers().size(), 2u * 6 + 1);  // q k v out fc1 fc2 per layer + lm_head
  EXPECT_EQ(model->quantized_matmuls().size(), 2u * 2);
  EXPECT_EQ(model->first_layer_name(), "");
  const PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), QuantizationPolicy{});
  EXPECT_EQ(plan.for_layer("lm_head").act_bits(), 0);
  EXPECT_EQ(plan.for_layer("layers.1.attn.context").act_bits(), 8);
  EXPECT_EQ(plan.for_layer("layers.1.fc2").grad_bits(), 8);
  // Quantizing really changes the computation (of the scores too: operands at 2 bits).
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor tokens = torch::tensor({{1, 4, 2, 9}}, torch::kLong);
  const at::Tensor fp32 = model->forward(tokens, PrecisionPlan::uniform(Precision::full()));
  PrecisionPlan scores_only = PrecisionPlan::uniform(Precision::full());
  scores_only.set_layer("layers.0.attn.scores", LayerPrecision::uniform(Precision::fw_bw(2, 0)));
  EXPECT_FALSE(model->forward(tokens, scores_only).equal(fp32));
}

TEST(TransformerLm, TiedEmbeddingSharesTheHeadWeight) {
  auto tied = create_model("transformer-lm", tokens_spec(11, 4), tiny());
  TransformerLmOptions o = tiny();
  o.tie_embeddings = false;
  auto untied = create_model("transformer-lm", tokens_spec(11, 4), o);
  int64_t tied_count = 0, untied_count = 0;
  for (const auto& p : tied->parameters()) tied_count += p.numel();
  for (const auto& p : untied->parameters()) untied_count += p.numel();
  EXPECT_EQ(untied_count - tied_count, 11 * 8);
}

TEST(TransformerLm, LearnsARepeatingSequenceAtFw8Bw8) {
  torch::manual_seed(1);
  auto model = create_model("transformer-lm", tokens_spec(8, 12), tiny(0.1));
  QuantizerSettings settings;
  settings.noise_seed = 5;
  model->set_quantizer_settings(settings);
  const PrecisionPlan base = make_static_plan(*model, Precision::fw_bw(8, 8), QuantizationPolicy{});
  // Period-5 pattern: after the first tokens, every next token is determined.
  const std::vector<int64_t> pattern = {2, 5, 3, 7, 4};
  at::Tensor stream = torch::empty({4, 13}, torch::kLong);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 13; ++c) stream[r][c] = pattern[(r + c) % 5];
  const at::Tensor inputs = stream.narrow(1, 0, 12), targets = stream.narrow(1, 1, 12);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(3e-3).betas({0.9, 0.98}).eps(1e-9));
  double first = 0, last = 0;
  model->train();
  for (int step = 0; step < 60; ++step) {
    PrecisionPlan plan = base;
    plan.noise_step = step;
    const at::Tensor logits = model->forward(inputs, plan);
    const at::Tensor loss = torch::cross_entropy_loss(logits.reshape({-1, 8}), targets.reshape({-1}));
    adam.zero_grad();
    loss.backward();
    adam.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 1.5);  // about log(8) = 2.08 at the start
  EXPECT_LT(last, 0.5 * first);
}

TEST(TransformerLm, DropoutMasksAreAFunctionOfSeedAndStep) {
  auto model = create_model("transformer-lm", tokens_spec(11, 4), tiny(0.5));
  QuantizerSettings settings;
  settings.noise_seed = 9;
  model->set_quantizer_settings(settings);
  model->train();
  torch::NoGradGuard no_grad;
  const at::Tensor tokens = torch::tensor({{1, 4, 2, 9}}, torch::kLong);
  PrecisionPlan plan = PrecisionPlan::uniform(Precision::full());
  plan.noise_step = 3;
  const at::Tensor a = model->forward(tokens, plan);
  torch::rand({100});  // whatever else draws from the generator in between
  const at::Tensor b = model->forward(tokens, plan);
  plan.noise_step = 4;
  const at::Tensor c = model->forward(tokens, plan);
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(c));
}

TEST(TransformerLm, RefusesBadShapesImagesAndDfq) {
  TransformerLmOptions o = tiny();
  o.heads = 3;
  EXPECT_CONTAINS(error_of([&] { create_model("transformer-lm", tokens_spec(11, 4), o); }),
                  "model.width = 8 is not divisible by model.heads = 3");
  EXPECT_CONTAINS(error_of([&] { create_model("transformer-lm", ModelInputSpec{}, tiny()); }), "token dataset");
  EXPECT_CONTAINS(error_of([&] {
                    create_gated_model("transformer-lm", tokens_spec(11, 4), OptionSet::parse("cifar-release", 0),
                                       GateExecution::Mixed);
                  }),
                  "not supported for transformer-lm");
  auto model = create_model("transformer-lm", tokens_spec(11, 4), tiny());
  EXPECT_CONTAINS(error_of([&] { model->forward(torch::zeros({1, 3, 4, 4}), PrecisionPlan{}); }),
                  "expected int64 token ids");
}

TEST(TransformerLm, CostCommandPrintsTheAttentionMatmuls) {
  const auto r = test_support::run_cli(
      "cost transformer-lm --sequence 8 --classes 50 --set model.layers=1 --set model.width=16 --set model.heads=2 "
      "--set model.ffn_width=32 --batch 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // T = 8: Q, K, V, out 4 x 8 x 16 x 16; scores and context 2 x (2 heads x 8 x 8 x 8); FFN 2 x 8 x 16 x 32;
  // lm_head 8 x 16 x 50.
  EXPECT_CONTAINS(r.output, "forward MACs per sample: 24,832 (blocks: 18,432)");
  EXPECT_CONTAINS(r.output, "layers.0.attn.scores   attention");
  EXPECT_CONTAINS(r.output, "stem none, classifier fp32");
  const auto bad = test_support::run_cli("cost transformer-lm --set train.epochs=3");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_CONTAINS(bad.output, "takes model.* keys only");
}

}  // namespace
}  // namespace fractrain
