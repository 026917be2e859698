#pragma once
// Ranges that a tensor's producer found on the way, so that quantizing the tensor needs no pass of its own.
//
// Every quantized layer takes the range (min, max) of its input in the forward pass and of its output gradient in
// the backward pass: one more read of a tensor that its producer has just written. A kernel that writes every value
// of a fresh tensor (the fused BatchNorm + ReLU, forward and backward) can take the extremes of what it wrote while
// the values are still in cache, and `remember` them here; `tensor_range` then `recall`s them instead of scanning.
//
// A remembered range holds only while the tensor holds the values it was taken of. The entry names the storage
// (weakly: a freed storage never matches, even when its address comes back), the offset, sizes, strides and dtype
// (a view of other elements never matches), and the version counter, which every in-place ATen op on the tensor or
// on any view sharing its counter bumps. A write the counter does not see (a kernel writing through the data
// pointer, an alias made with variable_data(), from_blob or set_, a collective writing into its memory) must
// `forget` the tensor, which drops every entry on its storage.
#include <ATen/core/Tensor.h>

#include <optional>

#include "fractrain/quant/fake_quantize.h"

namespace fractrain::range_memo {

// t's values lie in [range.lo, range.hi] and reach both ends (NaN for both when t has a NaN), exactly as
// tensor_range would find them. A small number of the latest entries is kept.
void remember(const at::Tensor& t, QuantRange range);
// The range remembered for exactly these values of t, if any.
std::optional<QuantRange> recall(const at::Tensor& t);
void forget(const at::Tensor& t);

}  // namespace fractrain::range_memo
