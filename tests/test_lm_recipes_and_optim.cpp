// The Transformer recipe's pieces: the inverse-sqrt schedule, Adam from the config, the LM recipes and keys.
#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/run_config.h"
#include "test_support.h"

namespace fractrain {
namespace {

using test_support::error_of;

TEST(LrSchedule, InverseSqrtWarmsUpThenDecays) {
  ScheduleConfig s;
  s.type = "inverse-sqrt";
  s.warmup_iterations = 4000;
  const ScheduleClock clock{0, 100, 50000};
  auto at = [&](int64_t i) { return learning_rate(s, 5e-4, ScheduleClock{i, 100, 50000}); };
  EXPECT_NEAR(at(0), 5e-4 / 4000, 1e-15);
  EXPECT_NEAR(at(1999), 5e-4 * 0.5, 1e-15);
  EXPECT_NEAR(at(3999), 5e-4, 1e-15);               // the peak at the end of the warm-up
  EXPECT_NEAR(at(15999), 5e-4 * 0.5, 1e-15);        // sqrt(4000 / 16000)
  EXPECT_NEAR(at(49999), 5e-4 * std::sqrt(4000.0 / 50000.0), 1e-15);
  s.warmup_iterations = 0;
  EXPECT_NEAR(learning_rate(s, 1.0, ScheduleClock{3, 100, 50000}), 0.5, 1e-15);  // 1 / sqrt(4)
  (void)clock;
}

TEST(Optimizer, AdamAndSgdFromTheConfigAndLearningRateSetting) {
  std::vector<at::Tensor> parameters = {torch::zeros({3}, torch::requires_grad())};
  OptimConfig o;
  o.name = "adam";
  o.adam_beta1 = 0.8;
  o.adam_beta2 = 0.95;
  o.adam_eps = 1e-7;
  o.weight_decay = 0.01;
  auto adam = make_optimizer(o, parameters);
  const auto& options = static_cast<const torch::optim::AdamOptions&>(adam->param_groups()[0].options());
  EXPECT_DOUBLE_EQ(std::get<0>(options.betas()), 0.8);
  EXPECT_DOUBLE_EQ(std::get<1>(options.betas()), 0.95);
  EXPECT_DOUBLE_EQ(options.eps(), 1e-7);
  EXPECT_DOUBLE_EQ(options.weight_decay(), 0.01);
  set_learning_rate(*adam, 0.125);
  EXPECT_DOUBLE_EQ(adam->param_groups()[0].options().get_lr(), 0.125);
  o.name = "sgd";
  auto sgd = make_optimizer(o, parameters);
  EXPECT_NE(dynamic_cast<torch::optim::SGD*>(sgd.get()), nullptr);
  o.name = "lamb";
  EXPECT_CONTAINS(error_of([&] { make_optimizer(o, parameters); }), "optim.name = 'lamb' is not an optimizer");
}

TEST(Recipes, TransformerRecipesAndKeys) {
  const std::string dir = std::string(FRACTRAIN_SOURCE_DIR) + "/configs/";
  const RunConfig paper = load_run_config(dir + "wikitext103_transformer_fw8bw8.toml");
  EXPECT_EQ(paper.model.name, "transformer-lm");
  EXPECT_EQ(paper.model.width, 512);
  EXPECT_EQ(paper.model.heads, 8);
  EXPECT_EQ(paper.model.ffn_width, 2048);
  EXPECT_EQ(paper.model.layers, 6);
  EXPECT_DOUBLE_EQ(paper.model.dropout, 0.1);
  EXPECT_EQ(paper.optim.name, "adam");
  EXPECT_DOUBLE_EQ(paper.optim.adam_beta2, 0.98);
  EXPECT_DOUBLE_EQ(paper.optim.adam_eps, 1e-9);
  EXPECT_EQ(paper.train.iterations, 50000);
  EXPECT_EQ(paper.schedule.type, "inverse-sqrt");
  EXPECT_EQ(paper.precision.fw, 8);
  for (const char* name : {"wikitext103_transformer_fp32", "wikitext103_transformer_pfq", "wordnet_transformer_fp32",
                           "wordnet_transformer_fw8bw8", "wordnet_transformer_pfq"})
    EXPECT_EQ(load_run_config(dir + name + ".toml").model.name, "transformer-lm") << name;
  RunConfig c;
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.name=adagrad"); }), "use sgd or adam");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "model.dropout=1"); }), "must be in [0, 1)");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "data.sequence_length=0"); }), "must be >= 1");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "data.vocab_min_count=0"); }), "must be >= 1");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.type=inverse_sqrt"); }), "inverse-sqrt");
  apply_override(c, "model.tie_embeddings=false");
  EXPECT_EQ(parse_run_config(to_toml(c), "round trip"), c);
}

}  // namespace
}  // namespace fractrain
