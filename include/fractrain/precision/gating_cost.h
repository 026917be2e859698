#pragma once
// The cost term of the DFQ loss (DESIGN.md 4.5): L = CE + sign * beta * COST, with
//   COST = sum over gated blocks l, samples n and options k of mask_l[n, k] * c_{l,k},
//   c_{l,k} = (a_k w + g_k w + a_k g_k) / 32^2 * MACs_l / (mean MACs of the gated blocks),
// where a block's layers at a fixed precision (MobileNetV2's depthwise convs) add their own bit products on their
// MACs to every option but skip (BlockDecision::relative_cost),
// differentiable through the gates' straight-through masks.
#include <ATen/core/Tensor.h>

#include <vector>

#include "fractrain/precision/block_decision.h"

namespace fractrain {

at::Tensor gating_cost(const std::vector<BlockDecision>& decisions, const OptionSet& options);

}  // namespace fractrain
