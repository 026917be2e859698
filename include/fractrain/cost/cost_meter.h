#pragma once
// The cost meter: attached to a model as its CostObserver, it turns every layer execution into cost, and keeps
// it per step, per epoch and for the whole run, per layer and per pass, next to what reference runs (FP32,
// FW-8/BW-8) would have cost for the same samples.
#include <map>
#include <string>
#include <vector>

#include "fractrain/cost/cost_totals.h"
#include "fractrain/cost/hardware_model.h"
#include "fractrain/cost/layer_profile.h"

namespace fractrain {

struct CostLedger {
  CostPeriod last_step, epoch, last_epoch, run;  // epoch: the one in progress

  explicit CostLedger(size_t layer_count = 0);
  void add_step(const CostPeriod& step);
  void end_epoch();
};

class CostMeter : public CostObserver {
 public:
  CostMeter(ModelProfile profile, HardwareModel hardware);

  // A run of the same samples with every layer at the plan's precision, e.g. ("fp32", FP32 plan).
  void add_reference(const std::string& name, PrecisionPlan plan);

  // Counts training executions (forward, error backward, weight gradient) as they happen. Evaluation forwards
  // (execution.training == false) are not training cost and are not counted.
  void on_layer(const LayerExecution& execution) override;

  // Data parallel: each rank executes its slice of a batch, but the step's cost is that of the whole batch
  // executed at once (weights move once per batch, and the accelerator's latency is not linear in the batch).
  // While deferring, training executions are recorded instead of counted; whoever merges the ranks' records
  // (train/data_parallel_cost.h) counts the merged ones with count().
  struct RecordedExecution {
    std::string layer;
    LayerKind kind{};
    int64_t macs_per_sample = 0;
    int64_t batch = 0;
    LayerPrecision precision;
  };
  void set_deferred(bool deferred) { deferred_ = deferred; }
  // The recorded executions of the step in progress, in execution order; clears the record.
  std::vector<RecordedExecution> take_recorded();
  // Counts a training execution into the step in progress.
  void count(const RecordedExecution& execution);
  // Closes a training step of `samples` samples: it joins the epoch and the run, and the references advance by
  // the same samples.
  void end_step(int64_t samples);
  void end_epoch();
  // The step in progress so far (its executions are counted when the forward pass runs them), as if closed
  // with `samples` samples: DFQ reads the batch's cp from it before the backward pass.
  CostTotals step_in_progress(int64_t samples) const;

  const ModelProfile& profile() const { return profile_; }
  const HardwareModel& hardware() const { return hardware_; }
  const CostLedger& ledger() const { return ledger_; }
  // Throws fractrain::Error for a name add_reference was not given.
  const CostLedger& reference(const std::string& name) const;
  std::vector<std::string> reference_names() const;

  // Everything needed to continue counting after a resume, and restoring it (fractrain::Error naming `where`
  // when it does not fit this model or these references).
  nlohmann::json state() const;
  void restore(const nlohmann::json& state, const std::string& where);

 private:
  struct Reference {
    std::string name;
    PrecisionPlan plan;
    CostLedger ledger;
    std::map<int64_t, CostPeriod> step_by_batch;  // a reference step depends only on the batch size
  };

  ModelProfile profile_;
  HardwareModel hardware_;
  void count_execution(const std::string& layer, int64_t macs_per_sample, int64_t batch,
                       const LayerPrecision& precision);

  CostPeriod step_;  // the step in progress
  bool deferred_ = false;
  std::vector<RecordedExecution> recorded_;
  CostLedger ledger_;
  std::vector<Reference> references_;
};

}  // namespace fractrain
