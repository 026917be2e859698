#pragma once
// The cost meter: attached to a model as its CostObserver, it turns every layer execution into cost, and keeps
// it per step, per epoch and for the whole run, per layer and per pass, next to what reference runs (FP32,
// FW-8/BW-8) would have cost for the same samples.
#include <c10/core/Device.h>

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
  // DFQ's masked execution reports how many samples ran each option as a device tensor. The meter keeps the
  // tensors and reads all of a step's at once when it needs them: when step_in_progress() is asked for or the step
  // closes, or with set_reads_deferred(true) at read_pending(), for every step closed since.
  void on_layer_by_option(const LayerExecutionByOption& execution) override;

  // Deferred host reads (train.host_reads): end_step() and end_epoch() queue the steps whose option counts are
  // still on the device; read_pending() reads them (one wait for the device) and closes them in order. Until
  // then the ledgers lag behind: ledger(), reference() and state() refuse to answer.
  void set_reads_deferred(bool deferred) { reads_deferred_ = deferred; }
  void read_pending();
  bool has_pending() const { return !unread_steps_.empty(); }

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
  CostTotals step_in_progress(int64_t samples);
  // The same step's cp and cp of the blocks as 0-d double tensors on `device`, without reading anything back: what
  // the meter counted plus the option counts on the device times what each option costs. Equal to
  // step_in_progress(samples).cp() and cp_blocks() bit for bit (the bit-MACs are integers, summed exactly).
  struct DeviceCp {
    at::Tensor cp, cp_blocks;
  };
  DeviceCp step_in_progress_on_device(int64_t samples, const c10::Device& device) const;

  // An execution reported with on_layer_by_option, its counts not yet read.
  struct OptionCharge {
    std::string layer;
    LayerKind kind{};
    int64_t macs_per_sample = 0;
    std::vector<Precision> options;
    at::Tensor counts;  // [K] int64, on the device
  };
  // CUDA Graphs (train/graphed_step.h): a captured step reports its executions once, at capture, where nothing
  // ran. take_step_in_progress() removes what the step in progress reported so far; charge() adds such a record to
  // the step in progress after each replay, with copies of the option counts (every replay rewrites the graph's).
  struct StepRecord {
    CostPeriod counted;
    std::vector<OptionCharge> charges;
  };
  StepRecord take_step_in_progress();
  void charge(const StepRecord& record);

  const ModelProfile& profile() const { return profile_; }
  const HardwareModel& hardware() const { return hardware_; }
  const CostLedger& ledger() const;
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

  // A step closed while its option counts were on the device (set_reads_deferred).
  struct UnreadStep {
    CostPeriod counted;  // what was counted from the host
    std::vector<OptionCharge> charges;
    int64_t samples = 0;
    bool ends_epoch = false;
  };

  ModelProfile profile_;
  HardwareModel hardware_;
  // Records (data parallel) or counts an execution into `into`: the step in progress, or an unread step.
  void take_execution(const LayerExecution& execution, CostPeriod& into);
  void count_execution(CostPeriod& into, const std::string& layer, int64_t macs_per_sample, int64_t batch,
                       const LayerPrecision& precision);
  // Reads the counts of `steps`' charges in one copy and counts each step's into its `counted`.
  void count_charges(std::vector<UnreadStep*> steps);
  void count_step_charges();
  void close_step(int64_t samples);
  void close_epoch();
  void refuse_while_unread(const char* what) const;

  CostPeriod step_;  // the step in progress
  std::vector<OptionCharge> step_charges_;  // the step in progress's, unread
  bool reads_deferred_ = false;
  std::vector<UnreadStep> unread_steps_;
  bool deferred_ = false;
  std::vector<RecordedExecution> recorded_;
  CostLedger ledger_;
  std::vector<Reference> references_;
};

}  // namespace fractrain
