#include "fractrain/util/device_constant.h"

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace fractrain {
namespace {

// The key: device, element type and the values' bytes (so -inf, NaN and -0.0 are distinct values too).
template <typename T>
at::Tensor cached(const std::vector<T>& values, const c10::Device& device, at::ScalarType type) {
  std::string key = device.str() + '/' + c10::toString(type) + '/';
  const size_t prefix = key.size();
  key.resize(prefix + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(&key[prefix], values.data(), values.size() * sizeof(T));
  static std::mutex mutex;
  // Never destroyed: device memory must not be freed by a static destructor after the device's runtime is gone.
  static auto* tensors = new std::map<std::string, at::Tensor>();
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = tensors->find(key);
  if (it == tensors->end()) {
    const at::Tensor host = at::tensor(values, at::TensorOptions().dtype(type));
    it = tensors->emplace(key, device.is_cpu() ? host : host.to(device)).first;
  }
  return it->second;
}

}  // namespace

at::Tensor device_constant(const std::vector<float>& values, const c10::Device& device) {
  return cached(values, device, at::kFloat);
}

at::Tensor device_constant(const std::vector<int32_t>& values, const c10::Device& device) {
  return cached(values, device, at::kInt);
}

at::Tensor device_constant(const std::vector<double>& values, const c10::Device& device) {
  return cached(values, device, at::kDouble);
}

}  // namespace fractrain
