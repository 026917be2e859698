// `fractrain train` on a token corpus: a Transformer LM learns a small generated corpus at FW-8/BW-8 and reports
// perplexity; a stopped-and-resumed run (Adam, dropout, PFQ) ends bitwise equal to an uninterrupted one; a resumed
// run refuses changed data; unsupported combinations fail with clear errors.
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "fractrain/data/vocabulary.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/training_task.h"
#include "run_test_support.h"
#include "test_support.h"

namespace fractrain {
namespace {

using test_support::error_of;
using test_support::read_metrics;
using test_support::TempDir;
using test_support::write_file;

// Lines of 6..13 words from 24 words; each word mostly follows its predecessor's successor, so the next token is
// predictable and a small model's perplexity falls well below the vocabulary size.
std::string generated_text(int lines, int offset) {
  std::string text;
  uint32_t state = 12345u + static_cast<uint32_t>(offset);
  for (int i = 0; i < lines; ++i) {
    state = state * 1664525u + 1013904223u;
    int word = static_cast<int>(state >> 27);
    const int length = 6 + static_cast<int>((state >> 8) % 8);
    for (int j = 0; j < length; ++j) {
      text += "w" + std::to_string(word % 24) + (j + 1 < length ? " " : "\n");
      state = state * 1664525u + 1013904223u;
      word += ((state >> 24) % 8 == 0) ? 2 : 1;
    }
  }
  return text;
}

void write_corpus(const std::string& dir, int offset = 0) {
  write_file(dir + "/wiki.train.tokens", generated_text(600, offset));
  write_file(dir + "/wiki.valid.tokens", generated_text(60, 1000 + offset));
}

RunConfig lm_run(const std::string& data, const std::string& out, int64_t iterations) {
  RunConfig c;
  c.model.name = "transformer-lm";
  c.model.layers = 1;
  c.model.width = 16;
  c.model.heads = 2;
  c.model.ffn_width = 32;
  c.model.dropout = 0.1;
  c.data.dataset = "wikitext103";
  c.data.path = data;
  c.data.sequence_length = 8;
  c.precision.fw = 8;
  c.precision.bw = 8;
  c.train.batch_size = 8;
  c.train.iterations = iterations;
  c.train.eval_every = 10;
  c.train.threads = 1;
  c.optim.name = "adam";
  c.optim.lr = 1e-2;
  c.optim.weight_decay = 0;
  c.schedule.type = "inverse-sqrt";
  c.schedule.warmup_iterations = 5;
  c.output.dir = out;
  return c;
}

std::map<std::string, at::Tensor> final_lm_weights(const RunConfig& config) {
  auto task = make_training_task(config, config.output.dir);
  auto model = build_model(config, task->input_spec(), c10::kCPU);
  auto optimizer = make_optimizer(config.optim, model->parameters());
  load_run_checkpoint(last_checkpoint_path(config.output.dir), *model, *optimizer);
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().clone();
  for (const auto& b : model->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

TEST(LanguageModelTraining, LearnsAtFw8Bw8AndReportsPerplexity) {
  TempDir data("lm_data"), out("lm_out");
  write_corpus(data.str());
  const nlohmann::json s = train_run(lm_run(data.str(), out.str(), 40), test_support::quiet());
  const auto metrics = read_metrics(out.str());
  ASSERT_EQ(metrics.size(), 4u);
  const double first = metrics.front()["test_loss"].get<double>(), last = metrics.back()["test_loss"].get<double>();
  EXPECT_LT(last, first - 0.5);
  EXPECT_LT(s["final_test_perplexity"].get<double>(), 12.0);  // 26 words; the text is mostly predictable
  EXPECT_DOUBLE_EQ(s["final_test_perplexity"].get<double>(), std::exp(s["final_test_loss"].get<double>()));
  EXPECT_DOUBLE_EQ(metrics.back()["test_perplexity"].get<double>(), std::exp(last));
  EXPECT_EQ(s["eval_split"], "valid");
  EXPECT_EQ(Vocabulary::load(out.file("vocab.txt")).size(), 26);  // w0..w23, <unk>, <eos>
  // The attention matmuls were counted at 8 bits: FW-8/BW-8 costs its reference exactly.
  EXPECT_DOUBLE_EQ(metrics.back()["bit_macs"].get<double>(), metrics.back()["fw8bw8_bit_macs"].get<double>());
  EXPECT_GT(metrics.back()["fp32_bit_macs"].get<double>(), metrics.back()["bit_macs"].get<double>());
}

TEST(LanguageModelTraining, EvalCommandUsesTheRunsVocabularyAndReportsPerplexity) {
  TempDir data("lm_data"), out("lm_out");
  write_corpus(data.str());
  const nlohmann::json s = train_run(lm_run(data.str(), out.str(), 10), test_support::quiet());
  const auto r = test_support::run_cli("eval " + last_checkpoint_path(out.str()) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json e = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(e["eval_split"], "valid");
  EXPECT_DOUBLE_EQ(e["test_loss"].get<double>(), s["final_test_loss"].get<double>());
  EXPECT_DOUBLE_EQ(e["test_perplexity"].get<double>(), s["final_test_perplexity"].get<double>());
}

TEST(LanguageModelTraining, ResumedRunEqualsUninterruptedRunBitwise) {
  TempDir data("lm_data"), whole("lm_whole"), split("lm_split");
  write_corpus(data.str());
  auto config_for = [&](const std::string& out) {
    RunConfig c = lm_run(data.str(), out, 14);
    c.precision.fw = c.precision.bw = 0;
    c.precision.mode = PrecisionMode::PfqManual;  // stages switch at steps 5 and 10: across the interruption
    c.precision.pfq_fw = {4, 6, 8};
    c.precision.pfq_bw = {8, 8, 8};
    c.train.eval_every = 4;
    return c;
  };
  train_run(config_for(whole.str()), test_support::quiet());
  TrainOptions stop = test_support::quiet();
  stop.stop_at_step = 7;
  EXPECT_TRUE(train_run(config_for(split.str()), stop).interrupted);
  TrainOptions resume = test_support::quiet();
  resume.resume_from = last_checkpoint_path(split.str());
  EXPECT_EQ(train_run(config_for(split.str()), resume).steps, 14);
  const auto a = final_lm_weights(config_for(whole.str())), b = final_lm_weights(config_for(split.str()));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  const auto ma = read_metrics(whole.str()), mb = read_metrics(split.str());
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i)
    for (const char* key : {"step", "train_loss", "test_loss", "test_perplexity", "bit_macs"})
      EXPECT_EQ(ma[i][key], mb[i][key]) << key << " in record " << i;
}

TEST(LanguageModelTraining, ResumeRefusesChangedData) {
  TempDir data("lm_data"), out("lm_out");
  write_corpus(data.str());
  TrainOptions stop = test_support::quiet();
  stop.stop_at_step = 2;
  train_run(lm_run(data.str(), out.str(), 4), stop);
  write_corpus(data.str(), 7);  // same words, other text
  TrainOptions resume = test_support::quiet();
  resume.resume_from = last_checkpoint_path(out.str());
  EXPECT_CONTAINS(error_of([&] { train_run(lm_run(data.str(), out.str(), 4), resume); }),
                  "the checkpoint was trained on other data: train_tokens was");
}

TEST(LanguageModelTraining, UnsupportedCombinationsFailClearly) {
  TempDir data("lm_data"), out("lm_out");
  write_corpus(data.str());
  RunConfig dfq = lm_run(data.str(), out.str(), 2);
  dfq.precision.fw = dfq.precision.bw = 0;
  dfq.precision.mode = PrecisionMode::Dfq;
  EXPECT_CONTAINS(error_of([&] { train_run(dfq, test_support::quiet()); }), "not supported for transformer-lm");
  RunConfig resnet = lm_run(data.str(), out.str(), 2);
  resnet.model.name = "resnet20";
  EXPECT_CONTAINS(error_of([&] { train_run(resnet, test_support::quiet()); }), "use model.name = transformer-lm");
  RunConfig long_windows = lm_run(data.str(), out.str(), 2);
  long_windows.data.sequence_length = 5000;
  EXPECT_CONTAINS(error_of([&] { train_run(long_windows, test_support::quiet()); }),
                  "lower train.batch_size or data.sequence_length");
  RunConfig heads = lm_run(data.str(), out.str(), 2);
  heads.model.heads = 3;
  EXPECT_CONTAINS(error_of([&] { train_run(heads, test_support::quiet()); }), "not divisible by model.heads");
  // Last, as it needs the real image dataset: a missing one fails here after the checks above have run.
  ASSERT_FASHION_MNIST_INSTALLED();
  RunConfig images = lm_run(data.str(), out.str(), 2);
  images.data.dataset = "fashion-mnist";
  images.data.path = "";
  EXPECT_CONTAINS(error_of([&] { train_run(images, test_support::quiet()); }), "token dataset");
}

}  // namespace
}  // namespace fractrain
