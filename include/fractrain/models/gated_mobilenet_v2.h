#pragma once
// MobileNetV2 (CIFAR variant) with a DFQ gate per inverted-residual block (DESIGN.md 4.5): the same network as
// MobileNetV2 (same parameters and names, plus the gate under "gate."), whose 17 blocks run at the precision
// the gate picks for each sample. Inside a gated block the 1x1 expansion and projection convs take the sample's
// option; the depthwise conv stays at FW-8/BW-16 (the paper fixes depthwise layers at 8/16), so its cost is the
// same for every option, and nothing for a sample that skips. Only blocks with an identity residual (stride 1,
// equal input and output channels) may be skipped. The stem, the last 1x1 conv and the classifier run at the
// plan's precision (FP32 in DFQ and FracTrain runs). Designed for the `mobilenet-paper` options (skip, 4/8,
// 6/8, 6/10, 8/8 with 8-bit weights); any option set works.
#include "fractrain/models/gated_block_sequence.h"
#include "fractrain/models/mobilenet_v2.h"

namespace fractrain {

class GatedMobileNetV2 : public MobileNetV2, public GatedBlockSequence {
 public:
  GatedMobileNetV2(const ModelInputSpec& input, OptionSet options, GateExecution execution);
  // With plan.gating false the gates do not run and every layer runs at the plan's precision.
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;
};

}  // namespace fractrain
