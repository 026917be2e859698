// device_constant: one shared tensor per (values, type, device), so that per-step constants are not copied to a
// GPU every step (util/device_constant.h).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "fractrain/util/device_constant.h"

using namespace fractrain;

TEST(DeviceConstant, EqualValuesShareOneTensorAndOthersDoNot) {
  const c10::Device cpu(c10::kCPU);
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor a = device_constant(std::vector<float>{0.0f, -inf, 1.5f}, cpu);
  EXPECT_TRUE(torch::equal(a, torch::tensor({0.0f, -inf, 1.5f})));
  EXPECT_TRUE(a.is_same(device_constant(std::vector<float>{0.0f, -inf, 1.5f}, cpu)));
  EXPECT_FALSE(a.is_same(device_constant(std::vector<float>{0.0f, -inf, 2.5f}, cpu)));
  EXPECT_FALSE(a.is_same(device_constant(std::vector<float>{-0.0f, -inf, 1.5f}, cpu)));  // another bit pattern
  const at::Tensor widths = device_constant(std::vector<int32_t>{4, 0, 8}, cpu);
  EXPECT_EQ(widths.scalar_type(), at::kInt);
  EXPECT_TRUE(torch::equal(widths, torch::tensor({4, 0, 8}, torch::kInt)));
  EXPECT_EQ(device_constant(std::vector<float>{}, cpu).numel(), 0);
}
