#pragma once
// Helpers for tests that run training: the metrics a run wrote, and the weights its last checkpoint holds.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/trainer.h"

namespace fractrain::test_support {

// The records of `dir`/NAME.jsonl (metrics.jsonl, or e.g. DFQ's cp_trace.jsonl), in order.
inline std::vector<nlohmann::json> read_metrics(const std::string& dir, const std::string& name = "metrics") {
  std::vector<nlohmann::json> rows;
  std::ifstream in(dir + "/" + name + ".jsonl");
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// A small Fashion-MNIST run: `model` on `train_samples` training and 64 test samples, constant lr 0.05.
inline RunConfig small_run(const std::string& dir, const std::string& model, int64_t train_samples, int64_t batch) {
  RunConfig c;
  c.model.name = model;
  c.data.train_subset = train_samples;
  c.data.test_subset = 64;
  c.train.batch_size = batch;
  c.train.threads = 1;
  c.schedule.type = "constant";
  c.optim.lr = 0.05;
  c.output.dir = dir;
  return c;
}

// A short run of `model` for the data-parallel tests: FP32, `steps` steps, one evaluation in the middle and one at
// the end, no progress log or TensorBoard events.
inline RunConfig short_run(const std::string& dir, const std::string& model, int64_t train_samples, int64_t batch,
                           int64_t steps) {
  RunConfig c = small_run(dir, model, train_samples, batch);
  c.train.iterations = steps;
  c.train.eval_every = std::max<int64_t>(1, steps / 2);
  c.train.log_every = 0;
  c.output.tensorboard = false;
  return c;
}

// Writes `c` next to its output directory (OUTPUT_DIR.toml) for `fractrain train -c`, and returns the path.
inline std::string write_config_file(const RunConfig& c) {
  const std::string path = c.output.dir + ".toml";
  std::ofstream(path) << to_toml(c);
  return path;
}

inline TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  return o;
}

// Every parameter and buffer of the last checkpoint of a Fashion-MNIST run made with `config`, by name.
inline std::map<std::string, at::Tensor> final_weights(const RunConfig& config) {
  auto model = build_model(config, ModelInputSpec{1, 28, 28, 10}, c10::kCPU);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  load_run_checkpoint(last_checkpoint_path(config.output.dir), *model, sgd);
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().clone();
  for (const auto& b : model->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

}  // namespace fractrain::test_support
