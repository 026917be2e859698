#include "fractrain/cost/layer_cost.h"

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// Everything of one execution that depends on the per-sample widths, summed over its samples.
struct SampleSums {
  double samples = 0;  // samples not skipped
  double act_bits = 0, grad_bits = 0;
  std::array<double, kPassCount> bit_products{}, bitbrick_ops{};

  void add(const Precision& p, double count) {
    if (p.skip) return;
    samples += count;
    act_bits += count * operand_bits(p.act);
    grad_bits += count * operand_bits(p.grad);
    for (Pass pass : kPasses) {
      const OperandBits o = pass_operands(p, pass);
      bit_products[static_cast<int>(pass)] += count * o.a * o.b;
      bitbrick_ops[static_cast<int>(pass)] += count * bitbrick_ops_per_mac(o.a, o.b);
    }
  }
};

SampleSums sum_samples(const LayerPrecision& precision, int64_t batch, const std::string& layer) {
  SampleSums sums;
  if (!precision.is_per_sample()) {
    sums.add(precision.for_sample(0), static_cast<double>(batch));
    return sums;
  }
  if (precision.samples() != batch)
    throw Error("cost of layer " + layer + ": per-sample precision has " + std::to_string(precision.samples()) +
                " entries for a batch of " + std::to_string(batch));
  for (int64_t i = 0; i < batch; ++i) sums.add(precision.for_sample(i), 1.0);
  return sums;
}

}  // namespace

PassCost& PassCost::operator+=(const PassCost& o) {
  macs += o.macs;
  bit_macs += o.bit_macs;
  bitbrick_ops += o.bitbrick_ops;
  bits_moved += o.bits_moved;
  energy_j += o.energy_j;
  latency_s += o.latency_s;
  return *this;
}

LayerCost& LayerCost::operator+=(const LayerCost& o) {
  for (int i = 0; i < kPassCount; ++i) passes[i] += o.passes[i];
  paper_bit_macs += o.paper_bit_macs;
  return *this;
}

PassCost LayerCost::total() const {
  PassCost t;
  for (const auto& p : passes) t += p;
  return t;
}

LayerCost layer_cost(const LayerProfile& layer, int64_t macs_per_sample, int64_t batch,
                     const LayerPrecision& precision, const HardwareModel& hardware) {
  LayerCost cost;
  const SampleSums s = sum_samples(precision, batch, layer.name);
  if (s.samples == 0) return cost;
  const double macs = static_cast<double>(macs_per_sample);
  const double scale = layer.macs_per_sample > 0 ? macs / static_cast<double>(layer.macs_per_sample) : 1.0;
  const double in = static_cast<double>(layer.input_elements) * scale;
  const double out = static_cast<double>(layer.output_elements) * scale;
  const double weights = static_cast<double>(layer.weight_elements);
  const double weight_bits = operand_bits(precision.weight_bits());
  const std::array<double, kPassCount> bits_moved = {
      weights * weight_bits + (in + out) * s.act_bits,                        // W, X in; Y out
      weights * weight_bits + (out + in) * s.grad_bits,                       // W, dY in; dX out
      in * s.act_bits + out * s.grad_bits + weights * kFullPrecisionBits,     // X, dY in; dW out
  };
  for (Pass pass : kPasses) {
    const int i = static_cast<int>(pass);
    PassCost p;
    p.macs = macs * s.samples;
    p.bit_macs = macs * s.bit_products[i];
    p.bitbrick_ops = macs * s.bitbrick_ops[i];
    p.bits_moved = bits_moved[i];
    p.energy_j = hardware.energy_j(p.bitbrick_ops, p.bits_moved);
    p.latency_s = hardware.latency_s(p.bitbrick_ops, p.bits_moved);
    cost.paper_bit_macs += p.bit_macs;
    if (pass == Pass::ErrorBackward && !layer.error_backward_runs) continue;
    cost.passes[i] = p;
  }
  return cost;
}

}  // namespace fractrain
