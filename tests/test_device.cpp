// Devices: CPU always; CUDA when this LibTorch has it and a GPU is visible (skipped cleanly otherwise).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/train/run_components.h"
#include "fractrain/util/error.h"

using namespace fractrain;

TEST(Device, NamesAreCheckedAndMissingCudaIsAClearError) {
  EXPECT_TRUE(resolve_device("cpu").is_cpu());
  EXPECT_THROW(resolve_device("gpu"), fractrain::Error);
  if (!torch::cuda::is_available()) {
    try {
      resolve_device("cuda");
      FAIL() << "expected an error without CUDA";
    } catch (const fractrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find("train.device=cpu"), std::string::npos) << e.what();
    }
  }
}

TEST(Device, QuantizedTrainingStepOnCudaMatchesCpuForward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA LibTorch or no GPU visible";
  torch::manual_seed(0);
  auto cpu_model = create_model("resnet8", ModelInputSpec{1, 28, 28, 10});
  torch::manual_seed(0);
  auto gpu_model = create_model("resnet8", ModelInputSpec{1, 28, 28, 10});
  gpu_model->to(torch::kCUDA);
  const PrecisionPlan plan = make_static_plan(*cpu_model, Precision::fw_bw(8, 8), {});
  at::Tensor x = torch::randn({16, 1, 28, 28});
  at::Tensor y = torch::randint(0, 10, {16}, torch::kLong);
  // Forward in train mode: deterministic quantization, so CPU and GPU agree up to float summation order.
  at::Tensor cpu_out = cpu_model->forward(x, plan);
  at::Tensor gpu_out = gpu_model->forward(x.cuda(), plan);
  EXPECT_TRUE(torch::allclose(cpu_out, gpu_out.cpu(), 1e-3, 1e-3));
  // Backward with quantized gradients runs on the device and gives finite gradients.
  torch::cross_entropy_loss(gpu_out, y.cuda()).backward();
  for (const auto& p : gpu_model->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_TRUE(p.grad().is_cuda());
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
  }
}
