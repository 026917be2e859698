#include "fractrain/train/trainer.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "fractrain/cost/cost_report.h"
#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/report/run_report.h"
#include "fractrain/train/evaluate.h"
#include "fractrain/train/gating_cost.h"
#include "fractrain/train/initial_weights.h"
#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/metrics_log.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/precision_schedule.h"
#include "fractrain/train/progress.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/run_summary.h"
#include "fractrain/train/stage_costs.h"
#include "fractrain/train/summary_printout.h"
#include "fractrain/train/training_task.h"
#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "fractrain/util/gnuplot.h"
#include "fractrain/util/stop_signal.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kMetricColumns = {"step",      "epoch",      "lr",        "train_loss", "train_accuracy",
                                                 "test_loss", "test_accuracy", "images_per_second", "train_seconds",
                                                 "precision", "stage"};
// Every run is compared with FP32 and FW-8/BW-8 runs of the same samples (same layer policy).
struct CostReference {
  std::string name;
  Precision precision;
};
const std::vector<CostReference> kCostReferences = {{"fp32", Precision::full()}, {"fw8bw8", Precision::fw_bw(8, 8)}};

// DFQ runs add the cp of the evaluation window (whole network and gated blocks) and the target.
const std::vector<std::string> kGateMetricColumns = {"window_cp", "window_cp_blocks", "target_cp"};
const std::vector<std::string> kCpTraceColumns = {"step", "epoch", "cp", "cp_blocks", "target_cp", "stage"};

// Language models add the perplexity of the training window and of the validation split.
const std::vector<std::string> kLanguageModelColumns = {"train_perplexity", "test_perplexity"};

std::vector<std::string> metric_columns(bool gated, bool language_model) {
  std::vector<std::string> references, columns = kMetricColumns;
  if (language_model) columns.insert(columns.end(), kLanguageModelColumns.begin(), kLanguageModelColumns.end());
  if (gated) columns.insert(columns.end(), kGateMetricColumns.begin(), kGateMetricColumns.end());
  for (const auto& r : kCostReferences) references.push_back(r.name);
  for (const auto& c : cost_metric_columns(references)) columns.push_back(c);
  return columns;
}

class Trainer {
 public:
  Trainer(const RunConfig& config, const TrainOptions& options) : config_(config), options_(options) {}
  RunSummary run();

 private:
  void setup();
  void setup_cost_meter();
  TrainerState checkpoint_state() const;
  void setup_precision();
  void train_step(const TaskBatch& batch);
  void nonfinite(const std::string& what);
  std::string locate_nonfinite_output(const at::Tensor& inputs, const PrecisionPlan& plan);
  std::string first_nonfinite_gradient() const;
  void arm_fault_injection();
  at::Tensor add_cost_term(const at::Tensor& loss, int64_t samples);
  void trace_cp();
  void log_gates(nlohmann::json& record);
  void end_indicator_window(double epoch);
  void record_turning_points();
  void evaluate_and_log();
  void save_last();
  void plot_curves() const;
  RunSummary summary(bool interrupted) const;

  RunConfig config_;
  TrainOptions options_;
  c10::Device device_ = c10::kCPU;
  int threads_ = 1;
  std::unique_ptr<TrainingTask> task_;  // the data, the loss's unit (image or token) and the evaluation
  std::shared_ptr<QuantizedModel> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<ProgressLine> progress_;
  std::unique_ptr<CostMeter> cost_meter_;
  std::unique_ptr<PrecisionController> controller_;
  DynamicController* dynamic_ = nullptr;  // DFQ / FracTrain runs: the controller, and the model's gates
  const GatedNetwork* gated_ = nullptr;
  std::unique_ptr<MetricsLog> cp_trace_;
  int64_t trace_every_ = 20;
  // FRACTRAIN_FAULT_NAN=STEP:LAYER: that layer outputs a NaN during that step (fault-injection tests).
  int64_t fault_step_ = -1;
  std::shared_ptr<QuantizedLayer> fault_layer_;
  std::unique_ptr<StageCosts> stage_costs_;
  size_t recorded_turning_points_ = 0;  // those already printed and given their stage cost
  int64_t indicator_window_ = 0;
  TrainerState state_;
  int64_t total_steps_ = 0, eval_every_ = 0, checkpoint_every_ = 0, batches_per_epoch_ = 0;
  int64_t start_step_ = 0;
  double lr_ = 0.0;
  EvalResult last_eval_;
};

void Trainer::setup() {
  validate_precision_schedule(config_.precision);  // before the slow part
  validate_dfq(config_);
  device_ = resolve_device(config_.train.device);
  threads_ = configure_threads(config_.train.threads);
  // A resumed run reads the data as its checkpoint's run did (a language model: that run's vocabulary).
  const std::string resumed_run_dir =
      options_.resume_from.empty() ? "" : fs::path(options_.resume_from).parent_path().parent_path().string();
  task_ = make_training_task(config_, resumed_run_dir);
  model_ = build_model(config_, task_->input_spec(), device_);
  if (!config_.train.init_from.empty() && options_.resume_from.empty()) {
    const InitialWeightsReport init = load_initial_weights(config_.train.init_from, *model_);
    std::printf("initialised %zu tensors from %s%s\n", init.loaded.size(), init.checkpoint.c_str(),
                init.kept.empty() ? "" : fmt::format(" ({} not in it keep their initialisation)", init.kept.size()).c_str());
  }
  optimizer_ = make_optimizer(config_.optim, model_->parameters());
  batches_per_epoch_ = task_->batches_per_epoch();
  total_steps_ = config_.train.iterations > 0 ? config_.train.iterations : config_.train.epochs * batches_per_epoch_;
  eval_every_ = config_.train.eval_every > 0 ? config_.train.eval_every : batches_per_epoch_;
  checkpoint_every_ = config_.train.checkpoint_every > 0 ? config_.train.checkpoint_every : eval_every_;

  fs::create_directories(fs::path(config_.output.dir) / "checkpoints");
  write_file_atomically((fs::path(config_.output.dir) / "config.toml").string(), to_toml(config_));
  task_->save_run_files(config_.output.dir);
  if (!options_.resume_from.empty()) {
    state_ = load_run_checkpoint(options_.resume_from, *model_, *optimizer_);
    task_->restore(state_.task, options_.resume_from);
    std::printf("resumed from %s at step %lld\n", options_.resume_from.c_str(), (long long)state_.step);
  }
  start_step_ = state_.step;
  setup_cost_meter();
  setup_precision();
  task_->seek(state_.next_epoch, state_.next_batch);
  const int64_t keep_up_to = options_.resume_from.empty() ? -1 : state_.step;
  metrics_ = std::make_unique<MetricsLog>(config_.output.dir, metric_columns(dynamic_ != nullptr, task_->is_language_model()), keep_up_to);
  if (dynamic_) {
    cp_trace_ = std::make_unique<MetricsLog>(config_.output.dir, kCpTraceColumns, keep_up_to, "cp_trace");
    trace_every_ = config_.train.log_every > 0 ? config_.train.log_every : 20;
  }
  arm_fault_injection();
  progress_ = std::make_unique<ProgressLine>(total_steps_, options_.quiet ? 0 : config_.train.log_every);
}

// The meter sees every layer the model executes; a resumed run continues the checkpoint's totals.
void Trainer::setup_cost_meter() {
  const QuantizationPolicy policy = quantization_policy_of(config_.precision);
  const std::string hardware =
      config_.cost.hardware.empty() ? default_hardware_model_path() : config_.cost.hardware;
  cost_meter_ = std::make_unique<CostMeter>(profile_model(*model_, task_->input_spec()),
                                            load_hardware_model(hardware));
  for (const auto& r : kCostReferences) cost_meter_->add_reference(r.name, make_static_plan(*model_, r.precision, policy));
  if (!state_.cost.is_null()) {
    cost_meter_->restore(state_.cost, options_.resume_from);
  } else if (state_.step > 0) {
    std::printf("note: %s has no cost totals; cost is counted from step %lld on\n", options_.resume_from.c_str(),
                (long long)state_.step);
  }
  model_->set_cost_observer(cost_meter_.get());
}

// The controller and the per-stage cost continue from the checkpoint, so a resumed PFQ run takes the same
// turning points as an uninterrupted one.
void Trainer::setup_precision() {
  controller_ = make_precision_controller(config_, *model_, batches_per_epoch_, total_steps_);
  indicator_window_ = indicator_window_steps(config_.precision, batches_per_epoch_);
  if (config_.precision.mode == "pfq-manual") {
    const auto switches = manual_switch_steps(config_.precision, batches_per_epoch_, total_steps_);
    if (switches.back() >= total_steps_)
      std::printf("note: the precision schedule's last stage starts at step %lld but the run has %lld steps; "
                  "later stages will not run\n", (long long)switches.back(), (long long)total_steps_);
  }
  stage_costs_ = std::make_unique<StageCosts>(*cost_meter_);
  try {
    if (!state_.precision.is_null()) controller_->restore(state_.precision);
  } catch (const std::exception& e) {
    throw Error(options_.resume_from + ": cannot continue the precision schedule: " + e.what());
  }
  if (!state_.stage_costs.is_null()) stage_costs_->restore(state_.stage_costs, *cost_meter_, options_.resume_from);
  recorded_turning_points_ = controller_->turning_points().size();
  dynamic_ = dynamic_cast<DynamicController*>(controller_.get());
  gated_ = dynamic_cast<const GatedNetwork*>(model_.get());
}

// DFQ: the cost term of the loss, signed by where this batch's cp (as the cost meter counted the decisions the
// forward pass executed) lies against the target; the decisions join the selection statistics.
at::Tensor Trainer::add_cost_term(const at::Tensor& loss, int64_t samples) {
  const CostTotals step = cost_meter_->step_in_progress(samples);
  const CostSteering& steering = dynamic_->steering();
  const double sign = dynamic_->cost_sign(steering.blocks_only ? step.cp_blocks() : step.cp());
  std::vector<std::vector<int64_t>> decisions;
  for (const auto& g : gated_->last_gating()) decisions.push_back(g.decisions);
  dynamic_->record_batch(decisions, step.cp(), step.cp_blocks());
  if (sign == 0.0 || steering.beta == 0.0) return loss;
  return loss + (sign * steering.beta) * gating_cost(gated_->last_gating(), dynamic_->options());
}

// cp_trace.csv: the cp of the batches since the last trace point, for the cp-versus-iteration curve.
void Trainer::trace_cp() {
  const GateWindow w = dynamic_->take_trace_window();
  cp_trace_->append({{"step", state_.step},
                     {"epoch", static_cast<double>(state_.step) / batches_per_epoch_},
                     {"cp", w.cp()},
                     {"cp_blocks", w.cp_blocks()},
                     {"target_cp", dynamic_->target_cp()},
                     {"stage", dynamic_->stage()}});
}

// The evaluation window's cp and how often each block chose each option.
void Trainer::log_gates(nlohmann::json& record) {
  const GateWindow w = dynamic_->take_eval_window();
  record["window_cp"] = w.cp();
  record["window_cp_blocks"] = w.cp_blocks();
  record["target_cp"] = dynamic_->target_cp();
  record["gate_selection"] = w.selection_json();
  std::vector<std::string> labels;
  for (size_t k = 0; k < dynamic_->options().size(); ++k) labels.push_back(dynamic_->options().label(k));
  record["gate_options"] = labels;
  std::printf("gates: cp %.3f%% (blocks %.3f%%) since the last evaluation, target %.3f%% (%s)\n", w.cp(),
              w.cp_blocks(), dynamic_->target_cp(), dynamic_->steering().blocks_only ? "blocks" : "network");
}

TrainerState Trainer::checkpoint_state() const {
  TrainerState s = state_;
  s.cost = cost_meter_->state();
  s.precision = controller_->state();
  s.stage_costs = stage_costs_->state(*cost_meter_);
  s.task = task_->state();
  return s;
}

// Prints the controller's new turning points and closes the cost of the stage each one ends.
void Trainer::record_turning_points() {
  const auto& points = controller_->turning_points();
  for (; recorded_turning_points_ < points.size(); ++recorded_turning_points_) {
    const TurningPoint& t = points[recorded_turning_points_];
    stage_costs_->close_stage(*cost_meter_, t.stage - 1, controller_->stage_label(t.stage - 1), t.step);
    std::string test;
    if (!t.differences.empty()) {
      test = ": loss differences d =";
      for (double d : t.differences) test += fmt::format(" {:.4g}", d);
      test += fmt::format(" all <= eps {:.4g}", t.eps);
    }
    progress_->break_line();
    std::printf("turning point at epoch %.2f (step %lld)%s; stage %d -> %d, precision now %s\n", t.epoch,
                (long long)t.step, test.c_str(), t.stage - 1, t.stage, t.label.c_str());
  }
}

// The indicator sees the sample-weighted mean training loss of each window (one epoch or N iterations).
void Trainer::end_indicator_window(double epoch) {
  const double mean = state_.indicator_loss_sum / std::max<int64_t>(1, state_.indicator_samples);
  state_.indicator_loss_sum = 0.0;
  state_.indicator_samples = 0;
  controller_->observe_window_loss(mean, state_.step, epoch);
  record_turning_points();
}

// A NaN/Inf loss or gradient at the step in progress: stop with what went wrong where (the default), or skip the
// step (no update) and lower the learning rate.
void Trainer::nonfinite(const std::string& what) {
  const std::string step = "step " + std::to_string(state_.step + 1) + " (precision " + controller_->label() + ")";
  if (config_.train.on_nonfinite == "stop")
    throw Error("at " + step + ", " + what +
                ". Lower optim.lr, add schedule.warmup_iterations, raise the precision, or set "
                "train.on_nonfinite=skip to skip such steps");
  ++state_.skipped_steps;
  state_.lr_scale *= config_.train.nonfinite_lr_factor;
  progress_->break_line();
  std::printf("warning: skipped %s: %s; learning rate now x%.4g (%lld steps skipped so far)\n", step.c_str(),
              what.c_str(), state_.lr_scale, (long long)state_.skipped_steps);
}

// Runs the batch's forward pass again with every quantized layer checking its output, to name the first layer
// whose output is not finite. The rerun is not training cost.
std::string Trainer::locate_nonfinite_output(const at::Tensor& inputs, const PrecisionPlan& plan) {
  const auto& layers = model_->quantized_layers();
  for (const auto& l : layers) l->set_check_finite_output(true);
  model_->set_cost_observer(nullptr);
  std::string where = "every quantized layer's output was finite (the overflow came after them: BatchNorm or the loss)";
  try {
    torch::NoGradGuard no_grad;
    model_->forward(inputs, plan);
  } catch (const Error& e) {
    where = e.what();
  }
  for (const auto& l : layers) l->set_check_finite_output(false);
  model_->set_cost_observer(cost_meter_.get());
  return where;
}

// The first parameter (by module path) whose gradient holds a NaN or Inf; empty when all are finite.
std::string Trainer::first_nonfinite_gradient() const {
  for (const auto& p : model_->named_parameters()) {
    const at::Tensor& g = p.value().grad();
    if (g.defined() && !torch::isfinite(g).all().item<bool>()) return p.key();
  }
  return "";
}

void Trainer::arm_fault_injection() {
  const char* spec = std::getenv("FRACTRAIN_FAULT_NAN");
  if (!spec || !*spec) return;
  const std::string text = spec;
  const size_t colon = text.find(':');
  try {
    fault_step_ = std::stoll(text.substr(0, colon));
  } catch (const std::exception&) {
    throw Error("FRACTRAIN_FAULT_NAN='" + text + "': write STEP:LAYER, e.g. 3:stage1.0.conv1");
  }
  const std::string layer = colon == std::string::npos ? "" : text.substr(colon + 1);
  for (const auto& l : model_->quantized_layers())
    if (l->layer_name() == layer) fault_layer_ = l;
  if (!fault_layer_) throw Error("FRACTRAIN_FAULT_NAN: the model has no quantized layer '" + layer + "'");
  std::printf("fault injection: layer %s outputs a NaN at step %lld\n", layer.c_str(), (long long)fault_step_);
}

void Trainer::train_step(const TaskBatch& batch) {
  lr_ = state_.lr_scale * learning_rate(config_.schedule, config_.optim.lr,
                                        ScheduleClock{state_.step, batches_per_epoch_, total_steps_});
  set_learning_rate(*optimizer_, lr_);
  at::Tensor inputs = batch.inputs.to(device_), targets = batch.targets.to(device_);
  const PrecisionPlan& plan = controller_->plan_for_step(state_.step);
  record_turning_points();  // a manual schedule switches here
  model_->train();
  const bool fault = state_.step + 1 == fault_step_;
  if (fault) fault_layer_->set_inject_nan(true);
  at::Tensor logits = model_->forward(inputs, plan);
  at::Tensor loss = prediction_loss(logits, targets);
  const double loss_value = loss.item<double>();
  const int64_t n = batch.samples();                // images or sequences: the cost meter's unit
  const int64_t predictions = targets.numel();      // images or tokens: the loss's unit
  bool finite = std::isfinite(loss_value);
  if (!finite) {
    const std::string where = locate_nonfinite_output(inputs, plan);
    if (fault) fault_layer_->set_inject_nan(false);
    nonfinite("the training loss became " + std::to_string(loss_value) + ": " + where);
  } else {
    if (fault) fault_layer_->set_inject_nan(false);
    optimizer_->zero_grad();
    (dynamic_ ? add_cost_term(loss, n) : loss).backward();
    const std::string parameter = first_nonfinite_gradient();
    finite = parameter.empty();
    if (finite)
      optimizer_->step();
    else
      nonfinite("the gradient of " + parameter + " holds NaN/Inf (the loss was finite, " +
                std::to_string(loss_value) + ")");
  }

  ++state_.step;
  state_.next_epoch = task_->next_epoch();
  state_.next_batch = task_->next_batch_in_epoch();
  cost_meter_->end_step(n);
  if (state_.step % batches_per_epoch_ == 0) cost_meter_->end_epoch();
  if (!finite) return;  // a skipped step: nothing to learn from, nothing to average
  const int64_t correct = correct_predictions(logits, targets);
  state_.window_loss_sum += loss_value * predictions;
  state_.window_correct += correct;
  state_.window_samples += predictions;
  state_.indicator_loss_sum += loss_value * predictions;
  state_.indicator_samples += predictions;
  const double epoch = static_cast<double>(state_.step) / batches_per_epoch_;
  if (state_.step % indicator_window_ == 0) end_indicator_window(epoch);
  if (dynamic_ && state_.step % trace_every_ == 0) trace_cp();
  progress_->update(state_.step, epoch, loss_value, static_cast<double>(correct) / predictions, lr_, n);
}

void Trainer::evaluate_and_log() {
  last_eval_ = task_->evaluate(*model_, controller_->current_plan(), device_);
  const double samples = std::max<int64_t>(1, state_.window_samples);
  nlohmann::json record = {{"step", state_.step},
                           {"epoch", static_cast<double>(state_.step) / batches_per_epoch_},
                           {"lr", lr_},
                           {"train_loss", state_.window_loss_sum / samples},
                           {"train_accuracy", state_.window_correct / samples},
                           {"test_loss", last_eval_.loss},
                           {"test_accuracy", last_eval_.accuracy},
                           {"images_per_second", progress_->images_per_second()},
                           {"train_seconds", state_.train_seconds},
                           {"precision", controller_->label()},
                           {"stage", controller_->stage()}};
  const bool language_model = task_->is_language_model();
  if (language_model) {
    record["train_perplexity"] = std::exp(record["train_loss"].get<double>());
    record["test_perplexity"] = std::exp(last_eval_.loss);
  }
  record.update(cost_metrics_record(*cost_meter_));
  progress_->break_line();
  if (dynamic_) log_gates(record);
  metrics_->append(record);
  state_.window_loss_sum = 0.0;
  state_.window_correct = state_.window_samples = 0;
  if (language_model)
    std::printf("eval step %lld: valid loss %.4f  perplexity %.2f  token accuracy %.2f%%  (train loss %.4f, "
                "perplexity %.2f)\n",
                (long long)state_.step, last_eval_.loss, std::exp(last_eval_.loss), 100.0 * last_eval_.accuracy,
                record["train_loss"].get<double>(), record["train_perplexity"].get<double>());
  else
    std::printf("eval step %lld: test loss %.4f  test accuracy %.2f%%  (train loss %.4f, accuracy %.2f%%)\n",
                (long long)state_.step, last_eval_.loss, 100.0 * last_eval_.accuracy,
                record["train_loss"].get<double>(), 100.0 * record["train_accuracy"].get<double>());
  std::printf("%s\n", format_cost_line(*cost_meter_).c_str());
  const double score = task_->score(last_eval_);
  if (state_.best_step < 0 || score > state_.best_accuracy) {
    state_.best_accuracy = score;
    state_.best_step = state_.step;
    save_run_checkpoint(best_checkpoint_path(config_.output.dir), config_, *model_, *optimizer_, checkpoint_state());
  }
}

// last.ckpt is replaced atomically; with train.keep_checkpoints = N > 1 each one also gets a hard link
// checkpoints/step-NNNNNNNN.ckpt (no second write: the next replacement of last.ckpt leaves the link holding this
// one), and all but the newest N links are removed.
void Trainer::save_last() {
  const std::string last = last_checkpoint_path(config_.output.dir);
  save_run_checkpoint(last, config_, *model_, *optimizer_, checkpoint_state());
  if (config_.train.keep_checkpoints <= 1) return;
  const fs::path dir = fs::path(config_.output.dir) / "checkpoints";
  const fs::path kept = dir / fmt::format("step-{:08d}.ckpt", state_.step);
  std::error_code error;
  fs::remove(kept, error);
  fs::create_hard_link(last, kept, error);
  if (error) std::printf("note: cannot keep %s: %s\n", kept.c_str(), error.message().c_str());
  std::vector<fs::path> steps;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("step-", 0) == 0) steps.push_back(entry.path());
  std::sort(steps.begin(), steps.end());
  const auto keep = static_cast<size_t>(config_.train.keep_checkpoints);
  for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove(steps[i], error);
}

// training_curves.png: train and test accuracy (left axis) and losses (right axis) against the step.
void Trainer::plot_curves() const {
  if (metrics_->records().empty()) return;
  if (!gnuplot_available()) {
    std::printf("note: gnuplot not found, no training_curves.png (apt-get install gnuplot-nox)\n");
    return;
  }
  try {
    plot_training_curves(metrics_->csv_path(),
                         config_.model.name + " on " + config_.data.dataset + ", " + controller_->describe(),
                         (fs::path(config_.output.dir) / "training_curves.png").string());
  } catch (const Error& e) {
    std::printf("note: no training curves plot: %s\n", e.what());  // the CSV has the same data
  }
}

RunSummary Trainer::summary(bool interrupted) const {
  RunSummary s;
  for (const auto& p : model_->parameters()) s.parameters += p.numel();
  for (const auto& t : controller_->turning_points()) s.turning_points.push_back(to_json(t));
  s.model = config_.model.name;
  s.dataset = config_.data.dataset;
  s.train_samples = task_->train_size();
  s.test_samples = task_->eval_size();
  s.precision = controller_->describe();
  s.stages = stage_costs_->summary(*cost_meter_, controller_->stage(), controller_->label(), state_.step);
  s.steps = state_.step;
  s.total_steps = total_steps_;
  s.epochs = static_cast<double>(state_.step) / batches_per_epoch_;
  s.interrupted = interrupted;
  s.skipped_steps = state_.skipped_steps;
  s.final_test_accuracy = last_eval_.accuracy;
  s.final_test_loss = last_eval_.loss;
  s.best_test_accuracy = task_->is_language_model() ? 0.0 : state_.best_accuracy;
  s.best_step = state_.best_step;
  s.train_seconds = state_.train_seconds;
  s.images_per_second = progress_->images_per_second();
  s.device = device_.str();
  s.threads = threads_;
  s.output_dir = config_.output.dir;
  s.cost = cost_summary_json(*cost_meter_);
  s.config = to_json(config_);
  // What the task records about its data: the split and class ids, files a streamed dataset skipped.
  s.task_data = task_->summary();
  if (task_->is_language_model()) {
    // Sizes are tokens; the evaluation split is the validation split; the best checkpoint has the lowest loss.
    // Empty until an evaluation has run (a run interrupted before its first one).
    LanguageModelSummary lm;
    lm.eval_split = task_->eval_split_name();
    if (last_eval_.samples > 0) lm.final_test_perplexity = std::exp(last_eval_.loss);
    if (state_.best_step >= 0) {
      lm.best_test_loss = -state_.best_accuracy;
      lm.best_test_perplexity = std::exp(-state_.best_accuracy);
    }
    s.language_model = lm;
  }
  return s;
}

RunSummary Trainer::run() {
  setup();
  std::printf("training %s on %s, precision %s, %lld steps (%lld per epoch), device %s, %d threads -> %s\n",
              config_.model.name.c_str(), config_.data.dataset.c_str(),
              controller_->describe().c_str(), (long long)total_steps_,
              (long long)batches_per_epoch_, device_.str().c_str(), threads_, config_.output.dir.c_str());
  bool interrupted = false;
  while (state_.step < total_steps_) {
    if (stop_requested() || (options_.stop_at_step > 0 && state_.step >= options_.stop_at_step)) {
      interrupted = true;
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    train_step(task_->next_batch());
    state_.train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool last = state_.step == total_steps_;
    if (state_.step % eval_every_ == 0 || last) evaluate_and_log();
    if (state_.step % checkpoint_every_ == 0 || last) save_last();
  }
  progress_->break_line();
  if (interrupted) {
    save_last();
    std::printf("stopped at step %lld; checkpoint written to %s\n", (long long)state_.step,
                last_checkpoint_path(config_.output.dir).c_str());
  }
  plot_curves();
  const RunSummary s = summary(interrupted);
  write_run_summary(config_.output.dir, s);
  print_run_summary(s, *cost_meter_);
  return s;
}

}  // namespace

std::string last_checkpoint_path(const std::string& output_dir) {
  return (fs::path(output_dir) / "checkpoints" / "last.ckpt").string();
}

std::string best_checkpoint_path(const std::string& output_dir) {
  return (fs::path(output_dir) / "checkpoints" / "best.ckpt").string();
}

RunSummary train_run(const RunConfig& config, const TrainOptions& options) {
  Trainer trainer(config, options);
  return trainer.run();
}

}  // namespace fractrain
