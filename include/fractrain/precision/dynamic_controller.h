#pragma once
// DFQ and FracTrain (DESIGN.md 4.5, 4.6). The gates inside the model pick each block's precision per sample;
// this controller holds what steers them: the target cp, and from each step's decisions and measured cp the
// signed cost term of the loss; FracTrain's stages of targets cp_i = cp_0 + i * step advance at the
// loss-plateau indicator's turning points (StagedSchedule, as auto PFQ). It keeps the gates' selection
// statistics and reports them (metrics, log line, cp_trace.csv).
#include <memory>

#include "fractrain/precision/gate_statistics.h"
#include "fractrain/precision/option_set.h"
#include "fractrain/precision/precision_controller.h"
#include "fractrain/precision/staged_schedule.h"

namespace fractrain {

struct CostSteering {
  double beta = 1e-3;      // weight of the cost term
  double dead_band = 0.0;  // percentage points either side of the target where the cost term is off
  bool blocks_only = true; // steer the cp of the gated blocks (the paper's) rather than of the whole network
  // The weight width the cost term and its sign count, when it is not the one the layers run (an ablation,
  // dfq.steering_weight_bits: 8-bit weights under the 4-bit option set's cost pressure); 0 = the options' own.
  // Blocks only: the layers outside the blocks have no steering width.
  int weight_bits = 0;
};

// FracTrain's targets: cp_0 = total - step (M - 1) / 2, cp_i = cp_0 + i step (DESIGN.md 4.6).
std::vector<double> fractrain_targets(double total_cp, double step, int stages);

class DynamicController : public PrecisionController {
 public:
  // `plan`: what the layers outside the gated blocks run (stem, classifier); the gates decide the rest.
  static std::unique_ptr<DynamicController> dfq(OptionSet options, PrecisionPlan plan, double target_cp,
                                                CostSteering steering, std::vector<std::string> blocks);
  static std::unique_ptr<DynamicController> fractrain(OptionSet options, PrecisionPlan plan,
                                                      std::vector<double> targets, CostSteering steering,
                                                      PlateauSettings settings, std::vector<std::string> blocks);

  // FracTrain ablation: the last target holds from `step` steps on, whether or not the indicator reached it
  // (StagedSchedule::hold_last_stage_from).
  void hold_last_stage_from(int64_t step, int64_t steps_per_epoch);

  const PrecisionPlan& plan_for_step(int64_t step) override;
  const PrecisionPlan& current_plan() const override { return plan_; }
  void observe_window_loss(double mean_loss, int64_t step, double epoch) override;
  // Records the decisions and the batch's cp, and returns sign * beta * COST (gating_cost.h), or none when the
  // sign is 0 (dead band) or beta is 0.
  // With the cost on the device (deferred host reads) the sign, the term and the windows' counts are computed
  // there, and the windows take them at read_pending().
  at::Tensor observe_step(const std::vector<BlockDecision>& decisions, const StepCost& cost) override;
  void read_pending() override;
  std::function<void()> take_captured_observation() override;
  std::vector<std::string> metric_columns() const override;
  ControllerReport evaluation_report() override;
  ControllerTrace trace() const override;
  nlohmann::json take_trace_record() override;

  int stage() const override { return schedule_.stage(); }
  int stage_count() const override { return schedule_.stage_count(); }
  // Weights at the run's width; activations and gradients vary per block and sample (0 here).
  Precision precision() const override { return Precision{0, options_.weight_bits(), 0, false}; }
  // The widest gradient any option runs at: samples choose their own, so a shared exchange needs the widest.
  int gradient_bits() const override;
  Precision stage_precision(int stage) const override { return precision(); }
  std::string stage_label(int stage) const override;
  std::string describe() const override;
  const std::vector<TurningPoint>& turning_points() const override { return schedule_.turning_points(); }
  bool has_indicator() const override { return schedule_.by_indicator(); }
  std::optional<IndicatorWindow> take_indicator_window() override { return schedule_.take_last_window(); }
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;

  const OptionSet& options() const { return options_; }
  // The options at the width the cost term counts: options() unless CostSteering::weight_bits says otherwise.
  const OptionSet& steering_options() const { return steering_options_; }
  const CostSteering& steering() const { return steering_; }
  double target_cp() const { return targets_[stage()]; }
  const std::vector<double>& targets() const { return targets_; }
  // The sign of the cost term for a batch of this cp: -1 below the target (spend more), +1 at or above it,
  // 0 inside the dead band.
  double cost_sign(double batch_cp) const;
  // The same on the device: `batch_cp` and the result are 0-d double tensors.
  at::Tensor cost_sign(const at::Tensor& batch_cp) const;
  // The cp the sign compares with the target: the measured one (network or blocks, as steered), or with a
  // steering width of its own, the blocks' cp that `chosen` would cost at that width (blocks_cp).
  double steered_cp(const std::vector<BlockDecision>& decisions, const std::vector<std::vector<int64_t>>& chosen,
                    const StepCost& cost) const;

  // The gates' decisions of one training batch ([block][sample]) and its cp (whole network, blocks only).
  void record_batch(const std::vector<std::vector<int64_t>>& decisions, double cp, double cp_blocks);
  // Since the last evaluation (selection frequencies, cp) and since the last trace point (cp).
  GateWindow take_eval_window() { return eval_window_.take_window(); }
  GateWindow take_trace_window() { return trace_window_.take_window(); }
  const GateWindow& eval_window() const { return eval_window_.window(); }

 private:
  DynamicController(OptionSet options, PrecisionPlan plan, std::vector<double> targets, CostSteering steering,
                    std::vector<std::string> blocks, bool progressive, PlateauSettings settings);

  bool steers_own_width() const { return steering_options_.weight_bits() != options_.weight_bits(); }
  at::Tensor observe_step_on_device(const std::vector<BlockDecision>& decisions, const StepCost& cost);
  void refuse_while_unread(const char* what) const;

  // A batch observed on the device, waiting for read_pending().
  struct UnreadBatch {
    at::Tensor counts;         // [blocks, options] int64
    at::Tensor cp, cp_blocks;  // 0-d double
    int64_t samples = 0;
  };
  std::vector<UnreadBatch> unread_;

  OptionSet options_;
  OptionSet steering_options_;  // options_ at CostSteering::weight_bits (options_ when that is 0)
  PrecisionPlan plan_;
  std::vector<double> targets_;
  CostSteering steering_;
  StagedSchedule schedule_;  // FracTrain's advances by the loss indicator; DFQ's has one stage
  GateStatistics eval_window_, trace_window_;
};

}  // namespace fractrain
