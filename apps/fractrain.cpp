// The fractrain command line: train, eval, models.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "fractrain/models/model_registry.h"
#include "fractrain/train/evaluate.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/trainer.h"
#include "fractrain/util/error.h"
#include "fractrain/util/stop_signal.h"

using namespace fractrain;

namespace {

// Keys a resumed run may change: they alter how long or where it runs, not what it computes.
const std::vector<std::string> kResumeMayChange = {"train.epochs",    "train.iterations", "train.threads",
                                                   "train.log_every", "train.device",     "output.dir"};

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object())
      flatten(*it, key, out);
    else
      out[key] = *it;
  }
}

void check_resume_compatible(const RunConfig& saved, const RunConfig& requested, const std::string& checkpoint) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(to_json(saved), "", a);
  flatten(to_json(requested), "", b);
  std::string differences;
  for (const auto& [key, value] : a) {
    if (std::find(kResumeMayChange.begin(), kResumeMayChange.end(), key) != kResumeMayChange.end()) continue;
    if (b[key] != value) differences += "\n  " + key + ": checkpoint " + value.dump() + ", now " + b[key].dump();
  }
  if (!differences.empty())
    throw Error("cannot resume from " + checkpoint + ": the run config differs from the checkpoint's in keys that "
                "change what is computed:" + differences +
                "\n(only train.epochs, train.iterations, train.threads, train.log_every, train.device and output.dir "
                "may change on resume; omit --config to use the checkpoint's own config)");
}

int run_train(const std::string& config_path, const std::vector<std::string>& overrides, bool resume,
              const std::string& resume_path, bool quiet, int64_t stop_at) {
  RunConfig config = config_path.empty() ? RunConfig{} : load_run_config(config_path);
  for (const auto& o : overrides) apply_override(config, o);
  TrainOptions options;
  options.quiet = quiet;
  options.stop_at_step = stop_at;
  if (resume) {
    options.resume_from = resume_path.empty() ? last_checkpoint_path(config.output.dir) : resume_path;
    RunConfig saved = checkpoint_config(options.resume_from);
    if (config_path.empty()) {
      // Continue with the checkpoint's own config; --set may still extend the run.
      RunConfig resumed = saved;
      for (const auto& o : overrides) apply_override(resumed, o);
      config = resumed;
    }
    check_resume_compatible(saved, config, options.resume_from);
  }
  install_stop_handlers();
  nlohmann::json summary = train_run(config, options);
  return summary["interrupted"].get<bool>() ? 130 : 0;
}

int run_eval(const std::string& checkpoint, const std::vector<std::string>& overrides, const std::string& precision,
             bool json) {
  RunConfig config = checkpoint_config(checkpoint);
  for (const auto& o : overrides) apply_override(config, o);
  const c10::Device device = resolve_device(config.train.device);
  configure_threads(config.train.threads);
  RunData data = load_run_data(config.data, config.train.seed);
  auto model = build_model(config, input_spec_of(*data.test), device);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(config.optim.lr).momentum(config.optim.momentum));
  const TrainerState state = load_run_checkpoint(checkpoint, *model, optimizer);
  Precision p = precision.empty() ? static_precision_of(config.precision) : parse_precision(precision);
  PrecisionPlan plan = make_static_plan(*model, p, quantization_policy_of(config.precision));
  EvalResult r = evaluate(*model, plan, *data.test, config.train.batch_size, device);
  nlohmann::json out = {{"checkpoint", checkpoint}, {"model", config.model.name}, {"step", state.step},
                        {"precision", to_string(p)},  {"test_samples", r.samples}, {"test_accuracy", r.accuracy},
                        {"test_loss", r.loss}};
  if (json)
    std::cout << out.dump(2) << "\n";
  else
    std::printf("%s (step %lld) at %s on %lld %s test samples: accuracy %.2f%%, loss %.4f\n", checkpoint.c_str(),
                (long long)state.step, to_string(p).c_str(), (long long)r.samples, config.data.dataset.c_str(),
                100.0 * r.accuracy, r.loss);
  return 0;
}

int run_models() {
  for (const auto& m : list_models()) std::printf("%-10s %s\n", m.name.c_str(), m.description.c_str());
  return 0;
}

void print_config_keys() {
  for (const auto& k : config_keys())
    std::printf("%-32s %-9s default %-16s %s\n", k.key.c_str(), k.type.c_str(), k.default_value.c_str(),
                k.description.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fractrain: FracTrain low-precision training (FP32, static FW-n/BW-m) with LibTorch"};
  app.require_subcommand(1);

  auto* train = app.add_subcommand("train", "train a model from a TOML recipe");
  std::string config_path, resume_path;
  std::vector<std::string> overrides;
  bool resume = false, quiet = false, help_config = false;
  int64_t stop_at = 0;
  train->add_option("-c,--config", config_path, "TOML recipe (see configs/); defaults apply to keys it omits");
  train->add_option("-s,--set", overrides, "override a config key, e.g. --set train.epochs=3 (repeatable)");
  train->add_option("--resume", resume_path, "continue from a checkpoint (default: OUTPUT_DIR/checkpoints/last.ckpt)")
      ->expected(0, 1);
  train->add_flag("-q,--quiet", quiet, "no progress line");
  train->add_option("--stop-at", stop_at,
                    "checkpoint and exit after this many steps (time-sliced jobs; continue with --resume)")
      ->check(CLI::NonNegativeNumber);
  train->add_flag("--help-config", help_config, "list every config key with its type, default and meaning");

  auto* eval = app.add_subcommand("eval", "evaluate a checkpoint on the test split");
  std::string checkpoint, precision;
  std::vector<std::string> eval_overrides;
  bool json = false;
  eval->add_option("checkpoint", checkpoint, "checkpoint file (e.g. runs/x/checkpoints/best.ckpt)")->required();
  eval->add_option("-s,--set", eval_overrides, "override a config key (e.g. data.path, train.device)");
  eval->add_option("--precision", precision, "evaluate at another precision (fp32, fw8bw8, ...)");
  eval->add_flag("--json", json, "print the result as JSON");

  app.add_subcommand("models", "list the models");

  try {
    app.parse(argc, argv);
    resume = train->count("--resume") > 0;
    if (*train) {
      if (help_config) {
        print_config_keys();
        return 0;
      }
      return run_train(config_path, overrides, resume, resume_path, quiet, stop_at);
    }
    if (*eval) return run_eval(checkpoint, eval_overrides, precision, json);
    return run_models();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const fractrain::Error& e) {
    std::fprintf(stderr, "fractrain: error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "fractrain: internal error (please report): %s\n", e.what_without_backtrace());
    return 3;
  }
}
