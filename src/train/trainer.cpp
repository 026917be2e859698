#include "fractrain/train/trainer.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "fractrain/cost/cost_report.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/train/checkpoint_rotation.h"
#include "fractrain/train/data_parallel.h"
#include "fractrain/train/deferred_step_totals.h"
#include "fractrain/train/graphed_step.h"
#include "fractrain/train/graphed_training.h"
#include "fractrain/train/initial_weights.h"
#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/nonfinite_guard.h"
#include "fractrain/train/optimizer.h"
#include "fractrain/train/precision_schedule.h"
#include "fractrain/train/progress.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/run_cost.h"
#include "fractrain/train/run_directory.h"
#include "fractrain/train/run_logs.h"
#include "fractrain/train/run_setup.h"
#include "fractrain/train/run_summary.h"
#include "fractrain/train/stage_costs.h"
#include "fractrain/train/summary_printout.h"
#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "fractrain/util/host_sync_check.h"
#include "fractrain/util/stop_signal.h"

// The training loop. It moves values between the pieces of a run and knows no method: the precision controller
// decides what each step runs and what the gates' decisions mean (precision_controller.h), the task knows the
// data, the cost meter counts what ran.
namespace fractrain {
namespace {

namespace fs = std::filesystem;

class Trainer {
 public:
  Trainer(const RunConfig& config, const TrainOptions& options) : config_(config), options_(options) {}
  RunSummary run();

 private:
  void setup();
  void setup_cost_meter();
  void setup_precision();
  void train_step(const TaskBatch& batch);
  void setup_cuda_graphs();
  void train_step_replayed(const TaskBatch& batch, const PrecisionPlan& plan);
  at::Tensor gates_term(const ForwardResult& forward, int64_t samples);
  void train_step_deferred(const ForwardResult& forward, const at::Tensor& loss, const at::Tensor& targets,
                           int64_t samples);
  void advance_step(int64_t samples);
  void add_to_windows(const StepTotals& step);
  bool deferred_read_due() const;
  void read_deferred_totals();
  void skip_or_stop(const std::string& what);
  void end_indicator_window(double epoch);
  void record_turning_points();
  void evaluate_and_log();
  void save_last();
  TrainerState checkpoint_state() const;
  RunSummary summary(bool interrupted) const;

  RunConfig config_;
  TrainOptions options_;
  std::optional<DirectoryLock> directory_lock_;  // held while the run writes output.dir; released last
  RunSetup run_;
  std::unique_ptr<RunLogs> logs_;
  std::unique_ptr<ProgressLine> progress_;
  std::unique_ptr<CostMeter> cost_meter_;
  std::unique_ptr<PrecisionController> controller_;
  std::unique_ptr<DataParallel> data_parallel_;
  bool stop_agreed_ = false;  // data parallel: some rank was asked to stop; every rank stops after this step
  bool defer_reads_ = false;  // train.host_reads resolved: steps add up in deferred_totals_ until a read point
  DeferredStepTotals deferred_totals_;
  std::unique_ptr<NonfiniteGuard> guard_;
  std::unique_ptr<StageCosts> stage_costs_;
  size_t recorded_turning_points_ = 0;  // those already printed and given their stage cost
  int64_t indicator_window_ = 0;
  std::unique_ptr<GraphedTraining> graphed_;  // train.cuda_graphs
  TrainerState state_;
  int64_t total_steps_ = 0, eval_every_ = 0, checkpoint_every_ = 0, batches_per_epoch_ = 0;
  double lr_ = 0.0;
  EvalResult last_eval_;
};

void Trainer::setup() {
  const std::string resumed_run_dir = run_dir_of_checkpoint(options_.resume_from);
  run_ = set_up_run(config_, resumed_run_dir);
  data_parallel_ = std::make_unique<DataParallel>(options_.communicator, options_.gradient_communicator, config_);
  if (!config_.train.init_from.empty() && options_.resume_from.empty()) {
    const InitialWeightsReport init = load_initial_weights(config_.train.init_from, *run_.model);
    if (data_parallel_->writes())
      std::printf("initialised %zu tensors from %s%s\n", init.loaded.size(), init.checkpoint.c_str(),
                init.kept.empty() ? "" : fmt::format(" ({} not in it keep their initialisation)", init.kept.size()).c_str());
  }
  batches_per_epoch_ = run_.task->batches_per_epoch();
  total_steps_ = config_.train.iterations > 0 ? config_.train.iterations : config_.train.epochs * batches_per_epoch_;
  eval_every_ = config_.train.eval_every > 0 ? config_.train.eval_every : batches_per_epoch_;
  checkpoint_every_ = config_.train.checkpoint_every > 0 ? config_.train.checkpoint_every : eval_every_;
  if (!options_.resume_from.empty()) {
    state_ = load_run_checkpoint(options_.resume_from, *run_.model, *run_.optimizer);
    run_.task->restore(state_.task, options_.resume_from);
    if (state_.world_size != data_parallel_->world_size() && data_parallel_->writes())
      std::printf("note: %s was written by %lld rank(s), this run has %d; the global batch is the same "
                  "(train.batch_size), so the run continues on the same samples\n",
                  options_.resume_from.c_str(), (long long)state_.world_size, data_parallel_->world_size());
  }
  setup_cost_meter();
  setup_precision();
  guard_ = std::make_unique<NonfiniteGuard>(config_.train, options_.inject_nan, *run_.model);
  data_parallel_->prepare(*run_.model, *run_.task);
  defer_reads_ = defers_host_reads(config_.train, run_.device, data_parallel_->active());
  cost_meter_->set_deferred(data_parallel_->active());
  cost_meter_->set_reads_deferred(defer_reads_);
  check_cuda_graphs(config_, run_.device, data_parallel_->active(), defer_reads_);
  if (config_.train.cuda_graphs) setup_cuda_graphs();
  if (!data_parallel_->writes()) {  // every other rank trains in step, silently, and writes nothing
    run_.task->seek(state_.next_epoch, state_.next_batch);
    progress_ = std::make_unique<ProgressLine>(total_steps_, 0);
    return;
  }

  // Everything the config and the checkpoint ask for is valid. Only now is the output directory claimed
  // (created, locked, refused if it holds another run) and written, so a refused config leaves nothing behind
  // and a refused directory is left as it was; no step has run yet.
  const RunDirectoryUse use = !options_.resume_from.empty() ? RunDirectoryUse::Continue
                              : options_.overwrite          ? RunDirectoryUse::Replace
                                                            : RunDirectoryUse::Fresh;
  directory_lock_ = claim_run_directory(config_.output.dir, use, resumed_run_dir);
  fs::create_directories(fs::path(config_.output.dir) / "checkpoints");
  write_file_atomically((fs::path(config_.output.dir) / "config.toml").string(), to_toml(config_));
  run_.task->save_run_files(config_.output.dir);
  if (!options_.resume_from.empty())
    std::printf("resumed from %s at step %lld\n", options_.resume_from.c_str(), (long long)state_.step);
  // One message for the whole run, rather than one per layer: every layer will run simulated.
  if (config_.precision.execution == ExecutionMode::Integer && !integer_support().available)
    std::fprintf(stderr, "warning: precision.execution = integer falls back to simulated in every layer: %s\n",
                 integer_support().detail.c_str());
  else if (config_.precision.execution == ExecutionMode::Integer && integer_support().max_unsigned_bits < 8)
    std::fprintf(stderr, "note: precision.execution = integer on %s (summary.json counts the passes)\n",
                 integer_support().detail.c_str());
  run_.task->seek(state_.next_epoch, state_.next_batch);
  // Rank 0 only from here: the other ranks returned above.
  logs_ = std::make_unique<RunLogs>(config_, run_.task->is_language_model(), run_cost_metric_columns(), *controller_,
                                    options_.resume_from.empty() ? -1 : state_.step);
  progress_ = std::make_unique<ProgressLine>(total_steps_, options_.quiet ? 0 : config_.train.log_every);
}

// train.cuda_graphs: steps run on the graph's stream from now on, and the layers draw their gradient noise for the
// step held in a device counter, which a replayed graph reads.
void Trainer::setup_cuda_graphs() {
  if (!options_.inject_nan.empty())
    throw Error("fault injection runs eagerly: it cannot be combined with train.cuda_graphs = true");
  graphed_ = std::make_unique<GraphedTraining>(*run_.model, quantizer_settings_of(config_.precision, config_.train.seed),
                                               run_.device, config_.train.batch_size);
}

// The meter sees every layer the model executes; a resumed run continues the checkpoint's totals.
void Trainer::setup_cost_meter() {
  cost_meter_ = make_run_cost_meter(config_, *run_.model, run_.task->input_spec());
  if (!state_.cost.is_null()) {
    cost_meter_->restore(state_.cost, options_.resume_from);
  } else if (state_.step > 0) {
    std::printf("note: %s has no cost totals; cost is counted from step %lld on\n", options_.resume_from.c_str(),
                (long long)state_.step);
  }
}

// The controller and the per-stage cost continue from the checkpoint, so a resumed PFQ run takes the same
// turning points as an uninterrupted one.
void Trainer::setup_precision() {
  controller_ = make_precision_controller(config_, *run_.model, batches_per_epoch_, total_steps_);
  indicator_window_ = indicator_window_steps(config_.precision, batches_per_epoch_, total_steps_);
  if (data_parallel_->writes())
    for (const auto& note : precision_schedule_notes(config_.precision, batches_per_epoch_, total_steps_))
      std::printf("note: %s\n", note.c_str());
  stage_costs_ = std::make_unique<StageCosts>(*cost_meter_);
  try {
    if (!state_.precision.is_null()) controller_->restore(state_.precision);
  } catch (const std::exception& e) {
    throw Error(options_.resume_from + ": cannot continue the precision schedule: " + e.what());
  }
  if (!state_.stage_costs.is_null()) stage_costs_->restore(state_.stage_costs, *cost_meter_, options_.resume_from);
  recorded_turning_points_ = controller_->turning_points().size();
}

TrainerState Trainer::checkpoint_state() const {
  TrainerState s = state_;
  s.cost = cost_meter_->state();
  s.precision = controller_->state();
  s.stage_costs = stage_costs_->state(*cost_meter_);
  s.task = run_.task->state();
  s.world_size = data_parallel_->world_size();
  s.gradient_bytes_per_rank = state_.gradient_bytes_per_rank + data_parallel_->gradient_bytes_sent();
  return s;
}

// Prints the controller's new turning points and closes the cost of the stage each one ends.
void Trainer::record_turning_points() {
  const auto& points = controller_->turning_points();
  for (; recorded_turning_points_ < points.size(); ++recorded_turning_points_) {
    const TurningPoint& t = points[recorded_turning_points_];
    // Usually t.stage - 1, but a held last stage (dfq.last_stage_from) may be entered from any earlier one.
    const int ended = recorded_turning_points_ > 0 ? points[recorded_turning_points_ - 1].stage : 0;
    cost_meter_->read_pending();  // with deferred reads, a stage entered between read points waits for the device
    stage_costs_->close_stage(*cost_meter_, ended, controller_->stage_label(ended), t.step);
    std::string test;
    if (!t.differences.empty()) {
      test = ": loss differences d =";
      for (double d : t.differences) test += fmt::format(" {:.4g}", d);
      test += fmt::format(" all <= eps {:.4g}", t.eps);
    }
    if (!data_parallel_->writes()) continue;
    progress_->break_line();
    std::printf("turning point at epoch %.2f (step %lld)%s; stage %d -> %d, precision now %s\n", t.epoch,
                (long long)t.step, test.c_str(), ended, t.stage, t.label.c_str());
  }
}

// The indicator sees the sample-weighted mean training loss of each window (one epoch or N iterations).
void Trainer::end_indicator_window(double epoch) {
  const double mean = state_.indicator_loss_sum / std::max<int64_t>(1, state_.indicator_samples);
  state_.indicator_loss_sum = 0.0;
  state_.indicator_samples = 0;
  controller_->observe_window_loss(mean, state_.step, epoch);
  const std::optional<IndicatorWindow> window = controller_->take_indicator_window();
  if (window && logs_) logs_->log_indicator_window(*window);
  record_turning_points();
}

// A NaN/Inf loss or gradient at the step in progress: stop (NonfiniteGuard::handle throws), or skip the step
// (no update) and lower the learning rate.
void Trainer::skip_or_stop(const std::string& what) {
  state_.lr_scale *= guard_->handle(what, state_.step + 1, controller_->label());
  ++state_.skipped_steps;
  if (!data_parallel_->writes()) return;
  progress_->break_line();
  std::printf("warning: skipped step %lld (precision %s): %s; learning rate now x%.4g (%lld steps skipped so far)\n",
              (long long)(state_.step + 1), controller_->label().c_str(), what.c_str(), state_.lr_scale,
              (long long)state_.skipped_steps);
}

// One step: the controller's plan -> the model's forward pass (outputs and decisions) -> the loss and the
// controller's term for it (given the decisions and what the meter counted) -> backward -> optimizer. With data
// parallelism, this rank's part of the batch runs here, and what the step decides on (the loss, whether it is
// finite, the cost, the gates' statistics, the gradients) is first made the whole batch's.
void Trainer::train_step(const TaskBatch& batch) {
  lr_ = state_.lr_scale * learning_rate(config_.schedule, config_.optim.lr,
                                        ScheduleClock{state_.step, batches_per_epoch_, total_steps_});
  set_learning_rate(*run_.optimizer, lr_);
  // From pinned memory the copies to a GPU are asynchronous, so that a deferred step never waits for the device.
  const bool async_copy = defer_reads_ && run_.device.is_cuda();
  auto to_device = [&](const at::Tensor& t) {
    return async_copy ? t.pin_memory().to(run_.device, /*non_blocking=*/true) : t.to(run_.device);
  };
  const PrecisionPlan& plan = controller_->plan_for_step(state_.step);
  record_turning_points();  // a manual schedule switches here
  run_.model->train();
  guard_->arm_for_step(state_.step + 1);
  if (graphed_) {
    graphed_->set_step(state_.step);
    if (graphed_->replays(batch, controller_->stage())) return train_step_replayed(batch, plan);
  }
  at::Tensor inputs = to_device(batch.inputs), targets = to_device(batch.targets);
  ForwardResult forward = run_.model->run(inputs, plan);
  at::Tensor loss = prediction_loss(forward.output, targets);
  if (defer_reads_) return train_step_deferred(forward, loss, targets, batch.samples());
  const double local_loss = loss.item<double>();
  StepTotals local;
  local.predictions = static_cast<double>(targets.numel());  // images or tokens: the loss's unit
  local.loss_sum = local_loss * local.predictions;
  local.correct = static_cast<double>(correct_predictions(forward.output, targets));
  local.samples = static_cast<double>(batch.samples());  // images or sequences: the cost meter's unit
  local.nonfinite = !std::isfinite(local_loss);
  local.stop = stop_requested();
  data_parallel_->count_step_cost(*cost_meter_);
  const StepTotals step = data_parallel_->reduce(local);
  stop_agreed_ = data_parallel_->active() && step.stop;
  const double loss_value = step.nonfinite ? local_loss : step.loss_sum / step.predictions;
  const auto n = static_cast<int64_t>(step.samples);
  bool finite = !step.nonfinite;
  if (!finite) {
    // Locating the layer reruns the forward pass with checks that stop at the first bad layer: on one rank only,
    // which would leave the others waiting in a collective.
    const std::string where = data_parallel_->active()
                                  ? "rerun it in one process to find the layer"
                                  : guard_->locate_nonfinite_output(inputs, plan, cost_meter_.get());
    guard_->disarm();
    skip_or_stop("the training loss became " + std::to_string(loss_value) + ": " + where);
  } else {
    guard_->disarm();
    run_.optimizer->zero_grad();
    const at::Tensor term = gates_term(forward, n);
    const int exchange_bits = controller_->gradient_bits();
    data_parallel_->begin_backward(exchange_bits, static_cast<uint64_t>(state_.step));
    (term.defined() ? loss + term : loss).backward();
    data_parallel_->average_gradients(exchange_bits, static_cast<uint64_t>(state_.step));
    const std::string parameter = guard_->first_nonfinite_gradient();
    finite = parameter.empty();
    if (finite)
      run_.optimizer->step();
    else
      skip_or_stop("the gradient of " + parameter + " holds NaN/Inf (the loss was finite, " +
                   std::to_string(loss_value) + ")");
  }

  advance_step(n);
  if (!finite) return;  // a skipped step: nothing to learn from, nothing to average
  add_to_windows(step);
  const double epoch = static_cast<double>(state_.step) / batches_per_epoch_;
  if (state_.step % indicator_window_ == 0) end_indicator_window(epoch);
  if (logs_) logs_->trace_step(*controller_, state_.step, epoch);
  progress_->update(state_.step, epoch, loss_value, step.correct / step.predictions, lr_, n);
}

// train.cuda_graphs: the step's forward and backward pass replayed (captured first if the stage has no graph), then
// eagerly what follows them: the NaN/Inf check, the optimizer at the step's learning rate, the deferred totals.
void Trainer::train_step_replayed(const TaskBatch& batch, const PrecisionPlan& plan) {
  const int64_t samples = batch.samples();
  const GraphedTraining::Step step = [&](const at::Tensor& inputs, const at::Tensor& targets) {
    const ForwardResult forward = run_.model->run(inputs, plan);
    const at::Tensor loss = prediction_loss(forward.output, targets);
    const at::Tensor term = gates_term(forward, samples);
    (term.defined() ? loss + term : loss).backward();
    return GraphedTraining::Computed{forward.output, loss};
  };
  const GraphedTraining::Replayed r = graphed_->replay(batch, step, *cost_meter_, *controller_);
  guard_->disarm();
  const at::Tensor finite = torch::isfinite(r.loss) & guard_->gradients_finite();
  run_.optimizer->step();
  deferred_totals_.add(state_.step + 1, r.loss, count_correct_predictions(r.output, r.targets), finite,
                       static_cast<double>(r.targets.numel()), static_cast<double>(samples));
  advance_step(samples);
  progress_->count_step(state_.step, samples);
}

// The controller's term for the gates' cost (DFQ), given the decisions and what the meter counted so far in this
// step; undefined when the method has none.
at::Tensor Trainer::gates_term(const ForwardResult& forward, int64_t samples) {
  StepCost cost;
  if (defer_reads_ && !forward.decisions.empty()) {
    // The cp stays on the device, as the gates' decisions do: the controller computes its sign there.
    const CostMeter::DeviceCp cp = cost_meter_->step_in_progress_on_device(samples, run_.device);
    cost.device_cp = cp.cp;
    cost.device_cp_blocks = cp.cp_blocks;
  } else {
    const CostTotals so_far = cost_meter_->step_in_progress(samples);
    cost = StepCost{so_far.cp(), so_far.cp_blocks(), data_parallel_->gather_options(forward.decisions)};
  }
  at::Tensor term = controller_->observe_step(forward.decisions, cost);
  // The gates' cost term sums over this rank's samples; averaging gradients divides by the ranks, so scaling it
  // by their number makes the average the gradient of the sum over the whole batch, as in one process.
  if (term.defined() && data_parallel_->active()) term = term * static_cast<double>(data_parallel_->world_size());
  return term;
}

// train.host_reads = deferred (one process): the same step without a host read. Its loss, correct predictions and
// finiteness add up on the device until the next read point (read_deferred_totals), where a NaN/Inf stops the run
// naming the step it came from. The optimizer steps regardless; the run stops before saving anything computed
// after such a step, since every checkpoint and evaluation reads first.
void Trainer::train_step_deferred(const ForwardResult& forward, const at::Tensor& loss, const at::Tensor& targets,
                                  int64_t samples) {
  guard_->disarm();
  run_.optimizer->zero_grad();
  const at::Tensor term = gates_term(forward, samples);
  (term.defined() ? loss + term : loss).backward();
  const at::Tensor finite = torch::isfinite(loss.detach()) & guard_->gradients_finite();
  run_.optimizer->step();
  deferred_totals_.add(state_.step + 1, loss, count_correct_predictions(forward.output, targets), finite,
                       static_cast<double>(targets.numel()), static_cast<double>(samples));
  advance_step(samples);
  progress_->count_step(state_.step, samples);
}

// The step counters and the cost meter move on, whether the step was applied or skipped.
void Trainer::advance_step(int64_t samples) {
  ++state_.step;
  state_.next_epoch = run_.task->next_epoch();
  state_.next_batch = run_.task->next_batch_in_epoch();
  cost_meter_->end_step(samples);
  if (state_.step % batches_per_epoch_ == 0) cost_meter_->end_epoch();
}

// The loss and accuracy of applied steps, for the logged training curve and for the loss indicator's window.
void Trainer::add_to_windows(const StepTotals& step) {
  state_.window_loss_sum += step.loss_sum;
  state_.window_correct += static_cast<int64_t>(step.correct);
  state_.window_samples += static_cast<int64_t>(step.predictions);
  state_.indicator_loss_sum += step.loss_sum;
  state_.indicator_samples += static_cast<int64_t>(step.predictions);
}

// Deferred reads also read where the progress line prints and where an indicator window ends.
bool Trainer::deferred_read_due() const {
  const int64_t every = config_.train.log_every;
  return (every > 0 && state_.step % every == 0) || state_.step % indicator_window_ == 0 ||
         (logs_ && logs_->trace_due(state_.step));
}

// A read point of deferred reads: the pending steps' sums come to the host (one wait for the device) and enter the
// windows, the loss indicator and the progress line (as their mean) as per-step reads would have. Every read
// point of per-step reads that looks at them is one: the end of an indicator window, an evaluation, a checkpoint.
void Trainer::read_deferred_totals() {
  if (!defer_reads_) return;
  // What DFQ's masked execution left on the device: the option counts of the meter and of the gates' windows.
  cost_meter_->read_pending();
  controller_->read_pending();
  if (deferred_totals_.pending_steps() == 0) return;
  const DeferredStepTotals::Read read = deferred_totals_.take();
  if (read.totals.nonfinite)  // throws: deferred reads require train.on_nonfinite = stop
    guard_->handle(fmt::format("the training loss or a gradient became NaN/Inf (seen at step {}: with "
                               "train.host_reads = deferred the host reads losses only at log, indicator, "
                               "evaluation and checkpoint points; rerun with train.host_reads = every_step to "
                               "name the layer)",
                               state_.step),
                   read.first_nonfinite_step, controller_->label());
  add_to_windows(read.totals);
  const double epoch = static_cast<double>(state_.step) / batches_per_epoch_;
  if (state_.step % indicator_window_ == 0) end_indicator_window(epoch);
  progress_->show(state_.step, epoch, read.totals.loss_sum / read.totals.predictions,
                  read.totals.correct / read.totals.predictions, lr_);
}

// Rank 0 evaluates alone (the other ranks go on to the next step, whose first collective waits for it).
void Trainer::evaluate_and_log() {
  if (!data_parallel_->writes()) return;
  last_eval_ = run_.task->evaluate(*run_.model, controller_->current_plan(), run_.device);
  const double samples = std::max<int64_t>(1, state_.window_samples);
  EvaluationPoint point;
  point.step = state_.step;
  point.epoch = static_cast<double>(state_.step) / batches_per_epoch_;
  point.lr = lr_;
  point.train_loss = state_.window_loss_sum / samples;
  point.train_accuracy = state_.window_correct / samples;
  point.test = last_eval_;
  point.images_per_second = progress_->images_per_second();
  point.train_seconds = state_.train_seconds;
  point.precision = controller_->label();
  point.stage = controller_->stage();
  logs_->log_evaluation(point, *cost_meter_, *controller_, *progress_);
  state_.window_loss_sum = 0.0;
  state_.window_correct = state_.window_samples = 0;
  const double score = run_.task->score(last_eval_);
  if (state_.best_step < 0 || score > state_.best_accuracy) {
    state_.best_accuracy = score;
    state_.best_step = state_.step;
    save_run_checkpoint(best_checkpoint_path(config_.output.dir), config_, *run_.model, *run_.optimizer,
                        checkpoint_state());
  }
}

// last.ckpt is replaced atomically; train.keep_checkpoints > 1 keeps the newest step checkpoints beside it.
void Trainer::save_last() {
  read_deferred_totals();  // the loop has read already, except after an interruption: nothing unread is saved
  if (!data_parallel_->writes()) return;
  save_run_checkpoint(last_checkpoint_path(config_.output.dir), config_, *run_.model, *run_.optimizer,
                      checkpoint_state());
  keep_step_checkpoints(config_.output.dir, state_.step, config_.train.keep_checkpoints);
}

RunSummary Trainer::run() {
  setup();
  if (data_parallel_->writes())
    std::printf("training %s on %s, precision %s, %lld steps (%lld per epoch), device %s, %d threads%s -> %s\n",
                config_.model.name.c_str(), config_.data.dataset.c_str(), controller_->describe().c_str(),
                (long long)total_steps_, (long long)batches_per_epoch_, run_.device.str().c_str(), run_.threads,
                data_parallel_->active() ? fmt::format(" x {} ranks ({})", data_parallel_->world_size(),
                                                       data_parallel_->communicator().backend_name()).c_str()
                                         : "",
                config_.output.dir.c_str());
  bool interrupted = false;
  const int64_t first_step = state_.step;
  while (state_.step < total_steps_) {
    // Ranks stop together: a signal to one of them takes effect after the step in which they all learn of it.
    const bool stop = data_parallel_->active() ? stop_agreed_ : stop_requested();
    if (stop || (options_.stop_at_step > 0 && state_.step >= options_.stop_at_step)) {
      interrupted = true;
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    {
      const HostSyncIsAnError strict(options_.forbid_host_sync && defer_reads_ && state_.step > first_step);
      train_step(run_.task->next_batch());
    }
    const bool last = state_.step == total_steps_;
    const bool evaluate = state_.step % eval_every_ == 0 || last;
    const bool checkpoint = state_.step % checkpoint_every_ == 0 || last;
    // Deferred reads wait for the device here, inside the clock: that wait is training time.
    if (evaluate || checkpoint || deferred_read_due()) read_deferred_totals();
    // A per-step read point writes its trace inside the step; a deferred one after its read (deferred_read_due).
    if (defer_reads_ && logs_) logs_->trace_step(*controller_, state_.step, double(state_.step) / batches_per_epoch_);
    state_.train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (evaluate) evaluate_and_log();
    if (checkpoint) save_last();
  }
  progress_->break_line();
  if (!data_parallel_->writes()) return summary(interrupted);  // it claimed no directory and writes nothing
  if (interrupted) {
    save_last();
    std::printf("stopped at step %lld; checkpoint written to %s\n", (long long)state_.step,
                last_checkpoint_path(config_.output.dir).c_str());
  }
  logs_->plot_curves(config_.model.name + " on " + config_.data.dataset + ", " + controller_->describe());
  const RunSummary s = summary(interrupted);
  write_run_summary(config_.output.dir, s);
  print_run_summary(s, *cost_meter_);
  return s;
}

// Which passes ran on integer kernels this session and which fell back to simulated (precision.execution), next
// to the measured time (train_seconds) and the modelled cost.
nlohmann::json execution_json(const QuantizedModel& model, ExecutionMode mode) {
  ExecutionCounts counts;
  for (const auto& layer : model.quantized_layers()) counts.add(layer->execution_counts());
  for (const auto& matmul : model.quantized_matmuls()) counts.add(matmul->execution_counts());
  nlohmann::json passes;
  for (LayerPass pass : {LayerPass::Forward, LayerPass::ErrorBackward, LayerPass::WeightGradient})
    passes[to_string(pass)] = {{"integer", counts.of(pass).integer},
                               {"split_by_sample", counts.of(pass).split},
                               {"simulated", counts.of(pass).simulated}};
  nlohmann::json j = {{"mode", to_string(mode)}};
  if (mode == ExecutionMode::Integer) {
    j["layer_passes_this_session"] = passes;
    j["last_fallback"] = counts.last_fallback;
  }
  return j;
}

RunSummary Trainer::summary(bool interrupted) const {
  RunSummary s;
  for (const auto& p : run_.model->parameters()) s.parameters += p.numel();
  for (const auto& t : controller_->turning_points()) s.turning_points.push_back(to_json(t));
  s.model = config_.model.name;
  s.dataset = config_.data.dataset;
  s.train_samples = run_.task->train_size();
  s.test_samples = run_.task->eval_size();
  s.precision = controller_->describe();
  s.stages = stage_costs_->summary(*cost_meter_, controller_->stage(), controller_->label(), state_.step);
  s.steps = state_.step;
  s.total_steps = total_steps_;
  s.epochs = static_cast<double>(state_.step) / batches_per_epoch_;
  s.interrupted = interrupted;
  s.skipped_steps = state_.skipped_steps;
  s.final_test_accuracy = last_eval_.accuracy;
  s.final_test_loss = last_eval_.loss;
  s.best_test_accuracy = run_.task->is_language_model() ? 0.0 : state_.best_accuracy;
  s.best_step = state_.best_step;
  s.train_seconds = state_.train_seconds;
  s.images_per_second = progress_->images_per_second();
  s.device = run_.device.str();
  s.threads = run_.threads;
  s.output_dir = config_.output.dir;
  s.cost = cost_summary_json(*cost_meter_);
  if (data_parallel_->active()) {
    const int64_t per_rank = state_.gradient_bytes_per_rank + data_parallel_->gradient_bytes_sent();
    s.cost["data_parallel"] = {{"ranks", data_parallel_->world_size()},
                               {"backend", data_parallel_->communicator().backend_name()},
                               {"gradient_format", config_.train.grad_comm},
                               {"gradient_bytes_sent_per_rank", per_rank},
                               {"gradient_bytes_sent", per_rank * data_parallel_->world_size()},
                               // Rank 0's, this session: the share of training time its collectives took.
                               {"communication_seconds", data_parallel_->communication_seconds()},
                               {"collectives", data_parallel_->collectives()}};
  }
  s.cost["execution"] = execution_json(*run_.model, config_.precision.execution);
  s.config = to_json(config_);
  // What the task records about its data: the split and class ids, files a streamed dataset skipped.
  s.task_data = run_.task->summary();
  if (run_.task->is_language_model()) {
    // Sizes are tokens; the evaluation split is the validation split; the best checkpoint has the lowest loss.
    // Empty until an evaluation has run (a run interrupted before its first one).
    LanguageModelSummary lm;
    lm.eval_split = run_.task->eval_split_name();
    if (last_eval_.samples > 0) lm.final_test_perplexity = std::exp(last_eval_.loss);
    if (state_.best_step >= 0) {
      lm.best_test_loss = -state_.best_accuracy;
      lm.best_test_perplexity = std::exp(-state_.best_accuracy);
    }
    s.language_model = lm;
  }
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
