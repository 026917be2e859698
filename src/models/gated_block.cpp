#include "fractrain/models/gated_block.h"

#include <torch/torch.h>

#include <algorithm>

#include "fractrain/nn/option_gradient.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// The samples that run the block (those not skipping) and the precision each runs at.
struct KeptSamples {
  std::vector<int64_t> index;
  std::vector<int> act, grad;
};

KeptSamples kept_samples(const GateDecision& decision, const OptionSet& options, bool can_skip) {
  KeptSamples kept;
  const std::vector<int64_t>& decisions = decision.host_decisions();
  for (size_t n = 0; n < decisions.size(); ++n) {
    const Precision& p = options.at(static_cast<size_t>(decisions[n]));
    if (p.skip) {
      if (!can_skip) throw Error("DFQ: a block whose shortcut is not the identity cannot be skipped");
      continue;
    }
    kept.index.push_back(static_cast<int64_t>(n));
    kept.act.push_back(p.act);
    kept.grad.push_back(p.grad);
  }
  return kept;
}

at::Tensor sample_scale(const at::Tensor& per_sample, const at::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  return per_sample.view(shape);
}

// Turns cost reporting of the block's layers off for the lifetime of the guard.
class CostReportingPause {
 public:
  explicit CostReportingPause(std::vector<std::shared_ptr<QuantizedLayer>> layers) : layers_(std::move(layers)) {
    for (auto& l : layers_) l->set_cost_reporting(false);
  }
  ~CostReportingPause() {
    for (auto& l : layers_) l->set_cost_reporting(true);
  }
  CostReportingPause(const CostReportingPause&) = delete;
  CostReportingPause& operator=(const CostReportingPause&) = delete;

 private:
  std::vector<std::shared_ptr<QuantizedLayer>> layers_;
};

// Charges the cost meter for what mixed execution would run: each layer of the block at each running sample's
// option (used where the layers ran something else: every sample, or every option).
void charge_chosen_options(GateableBlock& block, const KeptSamples& kept, const OptionSet& options) {
  if (kept.index.empty()) return;
  const LayerPrecision chosen = LayerPrecision::per_sample(options.weight_bits(), kept.act, kept.grad);
  for (auto& layer : block.layers())
    layer->report_cost(static_cast<int64_t>(kept.index.size()), GateableBlock::layer_precision(*layer, chosen));
}

// What option k runs at `layer`: the option, or the layer's fixed precision (MobileNetV2's depthwise convs) unless
// the option skips the block.
std::vector<Precision> layer_options(const QuantizedLayer& layer, const OptionSet& options) {
  std::vector<Precision> out;
  for (size_t k = 0; k < options.size(); ++k) {
    const Precision& p = options.at(k);
    out.push_back(p.skip || !layer.fixed_precision() ? p : *layer.fixed_precision());
  }
  return out;
}

// Masked execution's charge: how many samples chose each option, counted on the device, so that nothing is read
// back here; the meter reads the counts when it closes the step, or with deferred host reads at a read point.
void charge_option_counts(GateableBlock& block, const at::Tensor& choice, const OptionSet& options) {
  const auto layers = block.layers();
  if (std::none_of(layers.begin(), layers.end(), [](const auto& l) { return l->cost_observer() != nullptr; })) return;
  const at::Tensor counts = torch::zeros({static_cast<int64_t>(options.size())}, choice.options().dtype(torch::kLong))
                                .index_add_(0, choice, torch::ones_like(choice, torch::kLong));
  for (auto& layer : layers) layer->report_cost_by_option(counts, layer_options(*layer, options));
}

}  // namespace

OptionTables OptionTables::build(const OptionSet& options, const at::Device& device) {
  std::vector<int32_t> act, grad, column_act;
  std::vector<float> runs;
  std::vector<int64_t> columns;
  for (size_t k = 0; k < options.size(); ++k) {
    const Precision& p = options.at(k);
    act.push_back(p.skip ? 0 : p.act);
    grad.push_back(p.skip ? 0 : p.grad);
    runs.push_back(p.skip ? 0.0f : 1.0f);
    if (p.skip) continue;
    columns.push_back(static_cast<int64_t>(k));
    column_act.push_back(p.act);
  }
  const auto on_device = [&](auto values, at::ScalarType type) {
    return torch::tensor(values, torch::dtype(type)).to(device);
  };
  return {on_device(act, at::kInt), on_device(grad, at::kInt), on_device(runs, at::kFloat),
          on_device(columns, at::kLong), on_device(column_act, at::kInt)};
}

at::Tensor run_gated_block_mixed(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                 const GatedBlockRun& run) {
  const OptionSet& options = run.options;
  const int64_t n = x.size(0);
  const int skip = options.skip_index();
  const KeptSamples kept = kept_samples(decision, options, block.can_skip());
  // Every sample skips: the output is the identity shortcut. A data-parallel rank runs the block on no samples
  // when another rank's samples run it, because its layers' range agreements and BatchNorm are collectives.
  const bool runs = run.range_agreement ? run.range_agreement->any_rank(!kept.index.empty()) : !kept.index.empty();
  if (!runs) return x;
  const bool all = static_cast<int64_t>(kept.index.size()) == n;
  at::Tensor index;
  if (!all) index = torch::tensor(kept.index, torch::kLong).to(x.device());
  const at::Tensor xs = all ? x : x.index_select(0, index);
  const LayerPrecision precision = LayerPrecision::per_sample(options.weight_bits(), kept.act, kept.grad);

  GateableBlock::InputHook hook;
  if (decision.mask.requires_grad()) {
    std::vector<int64_t> columns;
    std::vector<int> column_bits;
    for (size_t k = 0; k < options.size(); ++k) {
      if (options.at(k).skip) continue;
      columns.push_back(static_cast<int64_t>(k));
      column_bits.push_back(options.at(k).act);
    }
    at::Tensor mask = decision.mask.index_select(1, torch::tensor(columns, torch::kLong).to(x.device()));
    if (!all) mask = mask.index_select(0, index);
    const bool snap = run.snap_zero_point;
    RangeAgreement* agreement = run.range_agreement.get();
    hook = [mask, column_bits, snap, agreement](const at::Tensor& t) {
      return attach_option_gradient(t, mask, column_bits, snap, agreement);
    };
  }
  if (block.fuses_combination()) {
    // The branch's last BatchNorm, the skip scale, the add and the ReLU in one op (train.fused_batch_norm): the
    // values of the composition below (its scale is exactly 1 for the samples that run), not its rounding.
    const at::Tensor h = block.residual_before_norm(xs, precision, run.noise_step, hook);
    if (skip < 0 || !block.can_skip())
      return block.fused_combine(h, block.shortcut(xs, precision, run.noise_step, hook), at::Tensor());
    const at::Tensor keep = 1.0 - decision.mask.select(1, skip);
    if (all) return block.fused_combine(h, x, keep);
    const at::Tensor ran = block.fused_combine(h, xs, keep.index_select(0, index));
    return torch::relu(x).index_copy(0, index, ran);  // a sample that skips outputs relu(0 + x), as below
  }
  at::Tensor branch = block.residual(xs, precision, run.noise_step, hook);
  // Blocks without an identity shortcut never skip (the gate gives skip probability 0 there).
  if (skip < 0 || !block.can_skip()) return block.combine(branch, block.shortcut(xs, precision, run.noise_step, hook));

  // A block that may be skipped has an identity shortcut. The residual branch is scaled by 1 - mask[n, skip]
  // (value 1 for samples that run, 0 for those that skip): its gradient tells the gate what skipping would
  // change for the samples that ran.
  if (!all) branch = torch::zeros(x.sizes(), branch.options()).index_copy(0, index, branch);
  const at::Tensor keep = 1.0 - decision.mask.select(1, skip);
  return block.combine(sample_scale(keep, branch) * branch, x);
}

at::Tensor run_gated_block_candidates(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                      const GatedBlockRun& run) {
  const OptionSet& options = run.options;
  const KeptSamples kept = kept_samples(decision, options, block.can_skip());
  at::Tensor out;
  {
    CostReportingPause pause(block.layers());
    for (size_t k = 0; k < options.size(); ++k) {
      const Precision& p = options.at(k);
      if (p.skip && !block.can_skip()) continue;  // never chosen there (probability 0)
      at::Tensor y;
      if (p.skip) {
        y = x;
      } else {
        const LayerPrecision precision = LayerPrecision::uniform(p);
        y = block.combine(block.residual(x, precision, run.noise_step), block.shortcut(x, precision, run.noise_step));
      }
      at::Tensor term = sample_scale(decision.mask.select(1, static_cast<int64_t>(k)), y) * y;
      out = out.defined() ? out + term : term;
    }
  }
  charge_chosen_options(block, kept, options);
  return out;
}

at::Tensor run_gated_block_masked(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                  const GatedBlockRun& run) {
  if (!run.tables || !run.tables->on(x.device()))
    throw Error("DFQ: masked execution needs the option tables on the input's device (" + x.device().str() + ")");
  if (run.range_agreement)
    throw Error("DFQ: masked execution runs in one process; data-parallel DFQ runs dfq.execution = \"mixed\"");
  const OptionTables& tables = *run.tables;
  const at::Tensor& choice = decision.indices;
  const at::Tensor runs = tables.runs.index_select(0, choice);
  const LayerPrecision precision = LayerPrecision::per_sample_on_device(
      run.options.weight_bits(), {tables.act.index_select(0, choice), tables.grad.index_select(0, choice), runs});

  GateableBlock::InputHook hook;
  if (decision.mask.requires_grad()) {
    const at::Tensor mask = decision.mask.index_select(1, tables.columns);
    const at::Tensor& column_act = tables.column_act;
    const bool snap = run.snap_zero_point;
    hook = [mask, column_act, snap, runs](const at::Tensor& t) {
      return attach_option_gradient_running(t, mask, column_act, snap, runs);
    };
  }
  at::Tensor out;
  {
    // The layers run every sample; the meter is charged below for the samples that run, as mixed execution.
    CostReportingPause pause(block.layers());
    const at::Tensor branch = block.residual(x, precision, run.noise_step, hook);
    const int skip = run.options.skip_index();
    if (skip < 0 || !block.can_skip()) {
      out = block.combine(branch, block.shortcut(x, precision, run.noise_step, hook));
    } else {
      // As mixed execution: the branch of a sample that skips is 0 (here: multiplied by its runs flag, a constant),
      // and the branch is scaled by 1 - mask[n, skip] for the gate's gradient.
      const at::Tensor keep = 1.0 - decision.mask.select(1, skip);
      out = block.combine(sample_scale(keep, branch) * (sample_scale(runs, branch) * branch), x);
    }
  }
  charge_option_counts(block, choice, run.options);
  return out;
}

}  // namespace fractrain
