#pragma once
// The mean over the spatial dimensions of an [N, C, H, W] tensor ([N, C]), as x.mean({2, 3}) computes it, with a
// backward that does not write an input-sized tensor: the gradient g / (H W) is formed on [N, C] and handed back
// expanded (stride 0 over H and W). LibTorch's own backward (1.13) expands first and divides every element, an
// input-sized write per call; a DFQ gate pools every block's input this way (DecisionGate::decide), and that
// write plus its division cost about 7 % of a DFQ step (docs/integer.md). The values are the same bit for bit:
// each element of the gradient is g[n, c] / (H W) either way.
#include <ATen/core/Tensor.h>

namespace fractrain {

at::Tensor spatial_mean(const at::Tensor& x);

}  // namespace fractrain
