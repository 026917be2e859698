#pragma once
// Small constant tensors on a device (DFQ's per-option costs, the gate's logit penalties, per-sample widths): made
// once per (values, type, device) and shared. Made from host values every step, each would be a host-to-device
// copy, which on a GPU synchronises the host with the device (docs/gpu.md). The cache keeps every distinct set of
// values it was asked for, for the life of the process: a model asks for a handful. The tensors are shared, so
// never write to one.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

namespace fractrain {

at::Tensor device_constant(const std::vector<float>& values, const c10::Device& device);
at::Tensor device_constant(const std::vector<int32_t>& values, const c10::Device& device);
at::Tensor device_constant(const std::vector<double>& values, const c10::Device& device);

}  // namespace fractrain
