#include "fractrain/train/run_setup.h"

#include <torch/torch.h>

#include <filesystem>

#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/run_components.h"

namespace fractrain {

RunSetup set_up_run(const RunConfig& config, const std::string& run_dir) {
  validate_precision_schedule(config.precision);
  validate_lr_schedule(config.schedule);
  validate_dfq(config);
  RunSetup s;
  s.device = resolve_device(config.train.device);
  s.threads = configure_threads(config.train.threads);
  s.task = make_training_task(config, run_dir);
  s.model = build_model(config, s.task->input_spec(), s.device);
  s.optimizer = make_optimizer(config.optim, s.model->parameters());
  return s;
}

std::string run_dir_of_checkpoint(const std::string& checkpoint) {
  if (checkpoint.empty()) return "";
  return std::filesystem::path(checkpoint).parent_path().parent_path().string();
}

}  // namespace fractrain
