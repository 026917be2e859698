#pragma once
// The cost of one layer execution, pass by pass: MACs, bit-weighted MACs, BitBrick operations, bits moved,
// and the hardware model's energy and latency.
//
// Data movement (docs/cost.md): each pass reads its two operands and writes its result once, at the widths
// they are stored in: forward reads W (weight bits) and X (act bits), writes Y (act bits: it is requantized
// for the next layer); error backward reads W and dY (grad bits), writes dX (grad bits); weight gradient reads
// X and dY, writes dW in FP32 (the optimizer's). Weights move once per batch, activations once per sample.
#include <array>
#include <cstdint>

#include "fractrain/cost/bit_product.h"
#include "fractrain/cost/hardware_model.h"
#include "fractrain/cost/layer_profile.h"
#include "fractrain/precision/layer_precision.h"

namespace fractrain {

struct PassCost {
  double macs = 0;          // multiply-accumulates executed
  double bit_macs = 0;      // sum of MACs x (bits x bits) of their operands
  double bitbrick_ops = 0;  // 2x2-bit BitBrick operations
  double bits_moved = 0;    // bits read and written (each one DRAM and one SRAM access)
  double energy_j = 0;
  double latency_s = 0;

  PassCost& operator+=(const PassCost& o);
};
using PassCosts = std::array<PassCost, kPassCount>;

struct LayerCost {
  // What was executed. The error backward of a layer whose input is the data is not executed: zero here.
  PassCosts passes{};
  // fw + eb + gc bit-MACs with every pass counted, as the paper counts cost (its `cp` and "MACs").
  double paper_bit_macs = 0;

  LayerCost& operator+=(const LayerCost& o);
  PassCost total() const;
};

// One training execution of `layer` (forward and the backward passes) on `batch` samples at `precision`
// (uniform or per sample; a skipped sample costs nothing). `macs_per_sample` is what the execution reported;
// operand sizes scale with it when it differs from the profile's (another input size).
LayerCost layer_cost(const LayerProfile& layer, int64_t macs_per_sample, int64_t batch,
                     const LayerPrecision& precision, const HardwareModel& hardware);

}  // namespace fractrain
