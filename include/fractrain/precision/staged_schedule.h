#pragma once
// Stages entered in order, the part PFQ and FracTrain share (DESIGN.md 4.4, 4.6): a stage starts at a fixed step
// (manual PFQ) or at a turning point of the loss-plateau indicator (auto PFQ, FracTrain's targets). It keeps the
// stage in progress and every turning point so far, and saves both for an exact resume. What a stage *runs*
// (FW/BW widths, a DFQ target) belongs to the controller that owns the schedule.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fractrain/precision/plateau_indicator.h"
#include "fractrain/precision/precision_controller.h"

namespace fractrain {

// What a turning point records about the stage it enters (TurningPoint::precision and ::label).
struct StageInfo {
  Precision precision;
  std::string label;
};

class StagedSchedule {
 public:
  // One stage for the whole run (static training, DFQ).
  static StagedSchedule single(StageInfo stage);
  // Stage i >= 1 starts once switch_steps[i - 1] steps are complete (strictly increasing, one per turning point).
  static StagedSchedule at_steps(std::vector<StageInfo> stages, std::vector<int64_t> switch_steps,
                                 int64_t steps_per_epoch);
  // Stages advance at the indicator's turning points (its turning_points is set to stages - 1).
  static StagedSchedule by_indicator(std::vector<StageInfo> stages, PlateauSettings settings);

  // From `step` steps on the last stage holds, entered directly from whichever stage is in progress (a FracTrain
  // ablation: its last target for a fixed final part of the run, whether or not the indicator got there).
  void hold_last_stage_from(int64_t step, int64_t steps_per_epoch);
  int64_t last_stage_step() const { return last_stage_step_; }  // hold_last_stage_from's step; -1 = none

  // Enters every stage whose switch step `step` (steps completed) has reached; a loop, since a resumed or short
  // run may cross several at once. An indicator schedule only enters its last stage here (hold_last_stage_from).
  void advance_to_step(int64_t step);
  // The mean training loss of the window that ended after `step` completed steps: an indicator schedule tests
  // it and may enter the next stage.
  void observe_window_loss(double mean_loss, int64_t step, double epoch);
  // The window observe_window_loss saw last, once (indicator schedules only; nullopt: none since).
  std::optional<IndicatorWindow> take_last_window() { return std::exchange(last_window_, std::nullopt); }

  int stage() const { return stage_; }
  int stage_count() const { return static_cast<int>(stages_.size()); }
  bool by_indicator() const { return indicator_enabled_; }
  const std::vector<TurningPoint>& turning_points() const { return turning_points_; }

  // {"schedule": name, "stage", "turning_points"} and, for an indicator schedule, "indicator". `name` is the
  // controller's description: a checkpoint of another schedule is refused on restore.
  nlohmann::json state(const std::string& name) const;
  void restore(const nlohmann::json& state, const std::string& name);

 private:
  explicit StagedSchedule(std::vector<StageInfo> stages);
  void enter_stage(int stage, int64_t step, double epoch, std::vector<double> differences, double eps);

  std::vector<StageInfo> stages_;
  std::vector<int64_t> switch_steps_;  // at_steps
  int64_t steps_per_epoch_ = 1;        // turning points entered at a step report their epoch
  int64_t last_stage_step_ = -1;       // hold_last_stage_from; -1 = never
  bool indicator_enabled_ = false;
  PlateauIndicator indicator_;
  int stage_ = 0;
  std::vector<TurningPoint> turning_points_;
  std::optional<IndicatorWindow> last_window_;  // for the run's logs only: not part of the saved state
};

}  // namespace fractrain
