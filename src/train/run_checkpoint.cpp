#include "fractrain/train/run_checkpoint.h"

#include <torch/torch.h>

#include "fractrain/train/checkpoint_file.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

nlohmann::json state_to_json(const TrainerState& s) {
  return {{"step", s.step},
          {"next_epoch", s.next_epoch},
          {"next_batch", s.next_batch},
          {"best_accuracy", s.best_accuracy},
          {"best_step", s.best_step},
          {"train_seconds", s.train_seconds},
          {"window_loss_sum", s.window_loss_sum},
          {"window_correct", s.window_correct},
          {"window_samples", s.window_samples},
          {"indicator_loss_sum", s.indicator_loss_sum},
          {"indicator_samples", s.indicator_samples},
          {"precision", s.precision},
          {"stage_costs", s.stage_costs},
          {"cost", s.cost},
          {"skipped_steps", s.skipped_steps},
          {"lr_scale", s.lr_scale},
          {"task", s.task},
          {"world_size", s.world_size},
          {"gradient_bytes_per_rank", s.gradient_bytes_per_rank}};
}

TrainerState state_from_json(const nlohmann::json& j) {
  TrainerState s;
  s.step = j.at("step").get<int64_t>();
  s.next_epoch = j.at("next_epoch").get<int64_t>();
  s.next_batch = j.at("next_batch").get<int64_t>();
  s.best_accuracy = j.at("best_accuracy").get<double>();
  s.best_step = j.at("best_step").get<int64_t>();
  s.train_seconds = j.at("train_seconds").get<double>();
  s.window_loss_sum = j.at("window_loss_sum").get<double>();
  s.window_correct = j.at("window_correct").get<int64_t>();
  s.window_samples = j.at("window_samples").get<int64_t>();
  if (j.contains("cost")) s.cost = j.at("cost");
  // Checkpoints from before PFQ have none of these: a static run, which needs none.
  if (j.contains("indicator_loss_sum")) s.indicator_loss_sum = j.at("indicator_loss_sum").get<double>();
  if (j.contains("indicator_samples")) s.indicator_samples = j.at("indicator_samples").get<int64_t>();
  if (j.contains("precision")) s.precision = j.at("precision");
  if (j.contains("stage_costs")) s.stage_costs = j.at("stage_costs");
  if (j.contains("skipped_steps")) s.skipped_steps = j.at("skipped_steps").get<int64_t>();
  if (j.contains("lr_scale")) s.lr_scale = j.at("lr_scale").get<double>();
  if (j.contains("task")) s.task = j.at("task");
  // Checkpoints from before data parallelism: one process.
  if (j.contains("world_size")) s.world_size = j.at("world_size").get<int64_t>();
  if (j.contains("gradient_bytes_per_rank")) s.gradient_bytes_per_rank = j.at("gradient_bytes_per_rank").get<int64_t>();
  return s;
}

}  // namespace

void save_run_checkpoint(const std::string& path, const RunConfig& config, QuantizedModel& model,
                         torch::optim::Optimizer& optimizer, const TrainerState& state) {
  CheckpointMeta meta;
  meta.model_name = model.model_name();
  meta.step = state.step;
  meta.epoch = state.next_epoch;
  meta.extra = {{"config_toml", to_toml(config)}, {"trainer", state_to_json(state)}};
  save_checkpoint(path, meta, [&](torch::serialize::OutputArchive& archive) {
    torch::serialize::OutputArchive model_archive, optimizer_archive;
    model.save(model_archive);
    optimizer.save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
  });
}

TrainerState load_run_checkpoint(const std::string& path, QuantizedModel& model, torch::optim::Optimizer& optimizer) {
  const std::string device = model.parameters().empty() ? "" : model.parameters()[0].device().str();
  CheckpointMeta meta = load_checkpoint(
      path, model.model_name(),
      [&](torch::serialize::InputArchive& archive) {
        torch::serialize::InputArchive model_archive, optimizer_archive;
        archive.read("model", model_archive);
        archive.read("optimizer", optimizer_archive);
        model.load(model_archive);
        optimizer.load(optimizer_archive);
      },
      device);
  if (!meta.extra.contains("trainer"))
    throw Error(path + ": checkpoint has no trainer state (not written by `fractrain train`)");
  try {
    return state_from_json(meta.extra.at("trainer"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": damaged trainer state in checkpoint: " + e.what());
  }
}

RunConfig checkpoint_config(const std::string& path) {
  CheckpointMeta meta = read_checkpoint_meta(path);
  if (!meta.extra.contains("config_toml") || !meta.extra["config_toml"].is_string())
    throw Error(path + ": checkpoint has no run config (not written by `fractrain train`)");
  return parse_run_config(meta.extra["config_toml"].get<std::string>(), path + " (stored config)");
}

}  // namespace fractrain
