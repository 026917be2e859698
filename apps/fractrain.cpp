// The fractrain command line: train, eval, cost, report, sweep, models, make-image-folder.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <new>

#include "fractrain/cost/cost_report.h"
#include "fractrain/cost/static_cost.h"
#include "fractrain/data/image_folder_writer.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/report/run_report.h"
#include "fractrain/sweep/sweep_command.h"
#include "fractrain/train/distributed_run.h"
#include "fractrain/train/evaluate.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/precision_schedule.h"
#include "fractrain/train/resume_compatibility.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/run_setup.h"
#include "fractrain/train/trainer.h"
#include "fractrain/train/training_task.h"
#include "fractrain/util/allocator_tuning.h"
#include "fractrain/util/blas_library.h"
#include "fractrain/util/error.h"
#include "fractrain/util/stop_signal.h"

using namespace fractrain;

namespace {

// `argv`: the whole command line, which a launcher (--nproc, --nnodes) hands its ranks without the launch flags.
int run_train(const std::string& config_path, const std::vector<std::string>& overrides, bool resume,
              const std::string& resume_path, TrainOptions options, const DistributedFlags& distributed,
              const std::vector<std::string>& argv) {
  RunConfig config = config_path.empty() ? RunConfig{} : load_run_config(config_path);
  for (const auto& o : overrides) apply_override(config, o);
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
  if (distributed.launch()) return launch_training_ranks(distributed, config, argv);
  const RankConnection rank = connect_rank_from_environment(config);
  if (rank.connected()) {
    options.communicator = rank.step;
    options.gradient_communicator = rank.gradients;
    // The launcher's share of the cores (torchrun and schedulers leave train.threads as configured).
    if (const char* threads = std::getenv("FRACTRAIN_THREADS")) config.train.threads = std::atoi(threads);
  }
  install_stop_handlers();
  return train_run(config, options).interrupted ? kInterruptedExitStatus : 0;
}

int run_eval(const std::string& checkpoint, const std::vector<std::string>& overrides, const std::string& precision,
             bool json) {
  RunConfig config = checkpoint_config(checkpoint);
  for (const auto& o : overrides) apply_override(config, o);
  // The checkpoint's run directory holds what the task saved (a language model's vocabulary).
  RunSetup run = set_up_run(config, run_dir_of_checkpoint(checkpoint));
  const c10::Device device = run.device;
  auto& task = run.task;
  auto& model = run.model;
  const TrainerState state = load_run_checkpoint(checkpoint, *model, *run.optimizer);
  task->restore(state.task, checkpoint);
  // By default the checkpoint's own precision: for a PFQ run, that of the stage it was in (the schedule's
  // switch steps do not matter here, only the restored stage).
  auto controller = make_precision_controller(config, *model, 1, 1);
  if (!state.precision.is_null()) controller->restore(state.precision);
  // A fixed --precision on a DFQ model runs every block at it, without the gates.
  const std::string label = precision.empty() ? controller->label() : to_string(parse_precision(precision));
  const PrecisionPlan plan = precision.empty() ? controller->current_plan()
                                               : make_static_plan(*model, parse_precision(precision),
                                                                  quantization_policy_of(config.precision));
  EvalResult r = task->evaluate(*model, plan, device);
  nlohmann::json out = {{"checkpoint", checkpoint}, {"model", config.model.name}, {"step", state.step},
                        {"precision", label},  {"test_samples", r.samples}, {"test_accuracy", r.accuracy},
                        {"test_loss", r.loss}};
  if (task->is_language_model()) {
    out["eval_split"] = task->eval_split_name();
    out["test_perplexity"] = std::exp(r.loss);
  }
  if (json)
    std::cout << out.dump(2) << "\n";
  else if (task->is_language_model())
    std::printf("%s (step %lld) at %s on %lld %s validation tokens: perplexity %.2f, loss %.4f, token accuracy %.2f%%\n",
                checkpoint.c_str(), (long long)state.step, label.c_str(), (long long)r.samples,
                config.data.dataset.c_str(), std::exp(r.loss), r.loss, 100.0 * r.accuracy);
  else
    std::printf("%s (step %lld) at %s on %lld %s test samples: accuracy %.2f%%, loss %.4f\n", checkpoint.c_str(),
                (long long)state.step, label.c_str(), (long long)r.samples, config.data.dataset.c_str(),
                100.0 * r.accuracy, r.loss);
  return 0;
}

struct CostCommand {
  std::string model, input = "3x32x32", precision = "fw8bw8", hardware;
  int64_t classes = 10, batch = 128, iterations = 1;
  bool quantize_first_layer = true, quantize_classifier = false;
  // transformer-lm: tokens per sequence (a sample), and model.* overrides (--set model.width=256).
  int64_t sequence = 512;
  std::vector<std::string> model_overrides;
  bool classes_given = false;
};

// WikiText-103's vocabulary: 267,735 words (<unk> included) and <eos>.
constexpr int64_t kWikiText103Vocabulary = 267736;

// "3x32x32" -> channels, height, width.
ModelInputSpec parse_input_shape(const std::string& text, int64_t classes) {
  ModelInputSpec spec;
  spec.num_classes = classes;
  char x1 = 0, x2 = 0, rest = 0;
  long long c = 0, h = 0, w = 0;
  if (std::sscanf(text.c_str(), "%lld%c%lld%c%lld%c", &c, &x1, &h, &x2, &w, &rest) != 5 || x1 != 'x' || x2 != 'x' ||
      c <= 0 || h <= 0 || w <= 0)
    throw Error("--input '" + text + "' is not CxHxW with positive sizes, e.g. 3x32x32 or 1x28x28");
  spec.channels = c;
  spec.height = h;
  spec.width = w;
  return spec;
}

// Which passes of each quantized layer would run on integer codes with precision.execution = integer.
void print_integer_passes(const QuantizedModel& model, const PrecisionPlan& plan, const std::string& precision) {
  std::printf("with precision.execution = integer at %s (forward / error backward / weight gradient):\n",
              precision.c_str());
  auto print = [&](const std::string& name, const auto& layer) {
    const LayerPrecision& p = plan.for_layer(name);
    if (p.weight_bits() == 0 && p.act_full() && p.grad_full()) {
      std::printf("  %-28s fp32 (not quantized)\n", name.c_str());
      return;
    }
    const auto passes = layer.integer_passes(p);
    if (passes[0] == passes[1] && passes[1] == passes[2])
      std::printf("  %-28s all three %s\n", name.c_str(), passes[0].c_str());
    else
      std::printf("  %-28s %s / %s / %s\n", name.c_str(), passes[0].c_str(), passes[1].c_str(), passes[2].c_str());
  };
  for (const auto& layer : model.quantized_layers()) print(layer->layer_name(), *layer);
  for (const auto& matmul : model.quantized_matmuls()) print(matmul->layer_name(), *matmul);  // attention
  std::printf("\n");
}

// The cost of static training without training: a per-layer table of one step and the totals of the run,
// next to FP32 and FW-8/BW-8.
int run_cost(const CostCommand& c) {
  ModelInputSpec input = parse_input_shape(c.input, c.classes);
  RunConfig config;
  for (const auto& o : c.model_overrides) {
    if (o.rfind("model.", 0) != 0) throw Error("--set " + o + ": `fractrain cost` takes model.* keys only");
    apply_override(config, o);
  }
  std::string shape = c.input;
  if (c.model == "transformer-lm") {
    input.sequence_length = c.sequence;
    if (!c.classes_given) input.num_classes = kWikiText103Vocabulary;
    shape = std::to_string(c.sequence) + " tokens";
  }
  auto model = create_model(c.model, input, transformer_options_of(config.model));
  const ModelProfile profile = profile_model(*model, input);
  const HardwareModel hardware = hardware_model_or_builtin(c.hardware);
  QuantizationPolicy policy;
  policy.quantize_first_layer = c.quantize_first_layer;
  policy.quantize_classifier = c.quantize_classifier;
  const Precision asked = parse_precision(c.precision);
  std::vector<std::pair<std::string, Precision>> precisions = {{to_string(asked), asked}};
  for (const Precision& reference : {Precision::full(), Precision::fw_bw(8, 8)})
    if (reference != asked) precisions.emplace_back(to_string(reference), reference);

  std::vector<std::pair<std::string, CostPeriod>> steps;
  std::vector<CostColumn> step_totals, run_totals;
  for (const auto& [name, precision] : precisions) {
    steps.emplace_back(name, static_step_cost(profile, make_static_plan(*model, precision, policy), c.batch, hardware));
    step_totals.push_back({name, summarize(steps.back().second, profile)});
    run_totals.push_back({name, step_totals.back().totals.scaled(static_cast<double>(c.iterations))});
  }
  std::printf("%s at %s, %lld classes, %s (stem %s, classifier %s), batch %lld x %s iterations = %s samples\n"
              "hardware: %s (%s)\nforward MACs per sample: %s (blocks: %s)\n\nper layer, one step:\n%s\n",
              c.model.c_str(), shape.c_str(), (long long)input.num_classes, to_string(asked).c_str(),
              model->first_layer_name().empty() ? "none" : c.quantize_first_layer ? "quantized" : "fp32",
              c.quantize_classifier ? "quantized" : "fp32",
              (long long)c.batch, format_count(c.iterations).c_str(), format_count(c.batch * c.iterations).c_str(),
              hardware.name.c_str(), hardware.source.c_str(), format_count(profile.forward_macs()).c_str(),
              format_count(profile.forward_macs(LayerRole::Block)).c_str(),
              format_layer_table(profile, make_static_plan(*model, asked, policy), steps).c_str());
  std::printf("totals, one step:\n%s\n", format_cost_comparison(step_totals).c_str());
  print_integer_passes(*model, make_static_plan(*model, asked, policy), to_string(asked));
  if (c.iterations > 1)
    std::printf("totals, %s iterations:\n%s\n", format_count(c.iterations).c_str(),
                format_cost_comparison(run_totals).c_str());
  std::printf("The stem's error backward (gradient of the input images) is not executed: it costs no energy or "
              "time and is not in eb;\ncp and paper MACs count it, as the paper does. Blocks only: the layers inside "
              "the residual blocks (not the stem, a head conv or the classifier). See docs/cost.md.\n");
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

// Training spends most of a Linear layer's time in BLAS; with the reference BLAS it runs ~10x slower and
// nothing else would say so.
void warn_if_reference_blas() {
  const std::string warning = reference_blas_warning(loaded_blas_library());
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator_for_training();
  CLI::App app{"fractrain: FracTrain low-precision training (FP32, static FW-n/BW-m, PFQ, DFQ, FracTrain) with LibTorch"};
  app.require_subcommand(1);

  auto* train = app.add_subcommand("train", "train a model from a TOML recipe");
  std::string config_path, resume_path;
  std::vector<std::string> overrides;
  bool resume = false, help_config = false;
  TrainOptions train_options;
  train->add_option("-c,--config", config_path, "TOML recipe (see configs/); defaults apply to keys it omits");
  train->add_option("-s,--set", overrides, "override a config key, e.g. --set train.epochs=3 (repeatable)");
  auto* resume_option =
      train->add_option("--resume", resume_path, "continue from a checkpoint (default: OUTPUT_DIR/checkpoints/last.ckpt)")
          ->expected(0, 1);
  train->add_flag("--overwrite", train_options.overwrite,
                  "replace the run that output.dir holds (its checkpoints, metrics and summary are deleted); without "
                  "it a fresh run refuses such a directory")
      ->excludes(resume_option);
  train->add_flag("-q,--quiet", train_options.quiet, "no progress line");
  train->add_option("--stop-at", train_options.stop_at_step,
                    "checkpoint and exit after this many steps (time-sliced jobs; continue with --resume)")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--inject-nan", train_options.inject_nan,
                    "fault injection: STEP:LAYER makes that quantized layer output a NaN during that step (tests "
                    "train.on_nonfinite)");
  train->add_flag("--help-config", help_config, "list every config key with its type, default and meaning");
  DistributedFlags distributed;
  train->add_option("--nproc", distributed.nproc,
                    "data parallel: start this many ranks on this machine (train.batch_size stays the global batch)")
      ->check(CLI::Range(1, 1024));
  train->add_option("--nnodes", distributed.nnodes, "data parallel: machines taking part (each runs --nproc ranks)")
      ->check(CLI::Range(1, 1 << 16));
  train->add_option("--node-rank", distributed.node_rank, "data parallel: this machine's index, 0..nnodes-1")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--master", distributed.master,
                    "data parallel: HOST:PORT where node 0's rank 0 gathers the group (default with one machine: a "
                    "free loopback port)");

  auto* eval = app.add_subcommand("eval", "evaluate a checkpoint on the test split");
  std::string checkpoint, precision;
  std::vector<std::string> eval_overrides;
  bool json = false;
  eval->add_option("checkpoint", checkpoint, "checkpoint file (e.g. runs/x/checkpoints/best.ckpt)")->required();
  eval->add_option("-s,--set", eval_overrides, "override a config key (e.g. data.path, train.device)");
  eval->add_option("--precision", precision, "evaluate at another precision (fp32, fw8bw8, ...)");
  eval->add_flag("--json", json, "print the result as JSON");

  auto* cost = app.add_subcommand("cost", "cost of static training (bit-weighted MACs, energy, latency) without training");
  CostCommand cost_command;
  cost->add_option("model", cost_command.model, "model name (see `fractrain models`)")->required();
  cost->add_option("--input", cost_command.input, "input shape CxHxW (default 3x32x32)");
  cost->add_option("--classes", cost_command.classes,
                   "number of classes, or a language model's vocabulary (default 10; transformer-lm: 267736, WikiText-103's)")
      ->check(CLI::Range(2, 1 << 24));
  cost->add_option("--sequence", cost_command.sequence, "transformer-lm: tokens per sequence (default 512)")
      ->check(CLI::Range(1, 1 << 16));
  cost->add_option("--set", cost_command.model_overrides,
                   "transformer-lm: model.KEY=VALUE, e.g. --set model.layers=16 (keys: train --help-config)");
  cost->add_option("--precision", cost_command.precision, "fp32 or fwNbwM (default fw8bw8)");
  cost->add_option("--iterations", cost_command.iterations, "training iterations (default 1)")
      ->check(CLI::PositiveNumber);
  cost->add_option("--batch", cost_command.batch, "samples per iteration (default 128)")->check(CLI::PositiveNumber);
  cost->add_option("--hardware", cost_command.hardware,
                   "accelerator model TOML (default: the built-in BitFusion model, configs/hardware/bitfusion.toml)");
  cost->add_flag("--quantize-first-layer,!--fp32-first-layer", cost_command.quantize_first_layer,
                 "quantize the stem conv (default) or keep it FP32");
  cost->add_flag("--quantize-classifier", cost_command.quantize_classifier, "quantize the classifier too");

  auto* report = app.add_subcommand(
      "report", "draw a run's plots (training curves; DFQ bit allocation and cp trace), or a sweep's table and plots");
  std::string report_dir;
  RunReportOptions report_options;
  report->add_option("run_dir", report_dir, "a run's output directory (output.dir) or a sweep's output directory")->required();
  report->add_option("--epochs", report_options.epochs,
                     "epochs whose gate choices the heatmap shows (default: first, middle, last evaluation)")
      ->delimiter(',');
  report->add_option("-o,--output", report_options.output_dir,
                     "where to write the plots (default RUN_DIR/report; for a sweep, the sweep's directory)");

  auto* sweep = app.add_subcommand("sweep", "run a comparison (methods x settings x seeds) from a spec; resumable; "
                                            "writes a results table (CSV, Markdown) and plots");
  SweepCommand sweep_command;
  sweep->add_option("spec", sweep_command.spec_path, "sweep spec TOML (see configs/sweeps/)")->required();
  sweep->add_option("-s,--set", sweep_command.overrides, "override a config key in every run (repeatable)");
  sweep->add_option("-j,--jobs", sweep_command.jobs, "runs at a time (default 1)")->check(CLI::Range(1, 256));
  sweep->add_flag("--report-only", sweep_command.report_only, "write the table and plots from finished runs only");
  sweep->add_flag("--list", sweep_command.list, "list the runs and their state; start nothing");

  app.add_subcommand("models", "list the models");

  auto* make_folder = app.add_subcommand(
      "make-image-folder", "write a small ImageNet-style JPEG folder (train/ and val/) from an in-memory dataset");
  ImageFolderWriterOptions folder;
  make_folder->add_option("out_dir", folder.out_dir, "output folder (gets train/CLASS/*.jpg and val/CLASS/*.jpg)")
      ->required();
  make_folder->add_option("--dataset", folder.dataset, "source dataset (default fashion-mnist)");
  make_folder->add_option("--data-dir", folder.data_dir, "source dataset folder (default: its usual place)");
  make_folder->add_option("--train-per-class", folder.train_per_class, "training images per class (default 200)");
  make_folder->add_option("--val-per-class", folder.val_per_class, "validation images per class (default 50)");
  make_folder->add_option("--size", folder.size, "approximate image side in pixels (default 96)");
  make_folder->add_option("--quality", folder.quality, "JPEG quality 1..100 (default 90)");

  try {
    app.parse(argc, argv);
    resume = train->count("--resume") > 0;
    if (*train) {
      if (help_config) {
        print_config_keys();
        return 0;
      }
      warn_if_reference_blas();
      return run_train(config_path, overrides, resume, resume_path, train_options, distributed,
                       std::vector<std::string>(argv, argv + argc));
    }
    if (*eval) return run_eval(checkpoint, eval_overrides, precision, json);
    if (*cost) {
      cost_command.classes_given = cost->count("--classes") > 0;
      return run_cost(cost_command);
    }
    if (*sweep) return run_sweep_command(sweep_command);
    if (*make_folder) {
      const ImageFolderWriterResult r = write_image_folder(folder);
      std::printf("wrote %lld classes: %lld training and %lld validation JPEGs under %s\n", (long long)r.classes,
                  (long long)r.train_files, (long long)r.val_files, folder.out_dir.c_str());
      return 0;
    }
    if (*report) {
      const auto written = is_sweep_output(report_dir) ? redraw_sweep_report(report_dir, report_options.output_dir)
                                                       : write_run_report(report_dir, report_options);
      for (const auto& path : written) std::printf("wrote %s\n", path.c_str());
      return 0;
    }
    return run_models();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const fractrain::Error& e) {
    // A rank of a data-parallel run says which one it is (collective errors already do).
    const int rank = rank_from_environment();
    const std::string message = e.what();
    const bool named = rank < 0 || message.rfind("rank ", 0) == 0;
    std::fprintf(stderr, "fractrain: error: %s%s\n", named ? "" : fmt::format("rank {}: ", rank).c_str(),
                 message.c_str());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // A file operation fractrain did not wrap in an Error of its own: the message names the path.
    std::fprintf(stderr, "fractrain: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "fractrain: error: out of memory: use a smaller data.batch_size or model\n");
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "fractrain: internal error (please report): %s\n", e.what_without_backtrace());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fractrain: internal error (please report): %s\n", e.what());
    return 3;
  }
}
