// A model of one's own trained with fractrain: a small CNN built from QConv2d / QLinear, trained at FW-8/BW-8
// (a StaticController's plan) on synthetic images while a CostMeter counts what the training cost in
// bit-weighted MACs, cp (percent of FP32) and energy on the built-in Bit Fusion accelerator model.
// Exits 1 when the loss did not fall (scripts/check_install.sh builds and runs this against an install).
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
#include "fractrain/precision/static_controller.h"
#include "fractrain/precision/static_plan.h"

namespace ft = fractrain;

// conv 1->8 (stride 2) -> ReLU -> conv 8->16 (stride 2) -> ReLU -> linear 16x7x7 -> 10, on 28x28 images.
// QuantizedModel is the torch::nn::Module that fractrain's own models derive from: finalize_layers() names the
// quantized layers, so that plans, the cost profile and the meter can address them by name.
class SmallNet : public ft::QuantizedModel {
 public:
  SmallNet() : QuantizedModel("small_net") {
    conv1_ = register_module("conv1", std::make_shared<ft::QConv2d>(ft::QConv2dOptions::same(1, 8, 3, 2)));
    conv2_ = register_module("conv2", std::make_shared<ft::QConv2d>(ft::QConv2dOptions::same(8, 16, 3, 2)));
    fc_ = register_module("fc", std::make_shared<ft::QLinear>(16 * 7 * 7, 10));
    finalize_layers(/*first_layer=*/"conv1", /*classifier=*/"fc");
  }

  // Every quantized layer runs at the precision the plan gives its name.
  at::Tensor forward(const at::Tensor& images, const ft::PrecisionPlan& plan) override {
    at::Tensor h = torch::relu(conv1_->forward(images, plan));
    h = torch::relu(conv2_->forward(h, plan));
    return fc_->forward(h.flatten(1), plan);
  }

 private:
  std::shared_ptr<ft::QConv2d> conv1_, conv2_;
  std::shared_ptr<ft::QLinear> fc_;
};

// Ten classes, each a fixed random 28x28 pattern; a sample is its class's pattern, faint, under noise.
struct SyntheticImages {
  at::Tensor patterns = 0.3 * torch::randn({10, 1, 28, 28});
  std::pair<at::Tensor, at::Tensor> batch(int64_t n) const {
    at::Tensor labels = torch::randint(10, {n}, torch::kLong);
    return {patterns.index_select(0, labels) + torch::randn({n, 1, 28, 28}), labels};
  }
};

int run() {
  torch::manual_seed(0);
  const ft::ModelInputSpec input{/*channels=*/1, /*height=*/28, /*width=*/28, /*num_classes=*/10};
  constexpr int64_t kSteps = 60, kBatch = 32;

  auto model = std::make_shared<SmallNet>();
  // FW-8/BW-8 for the whole run; the default policy quantizes the first conv and keeps the classifier FP32.
  ft::StaticController controller(ft::Precision::fw_bw(8, 8),
                                  ft::make_static_plan(*model, ft::Precision::fw_bw(8, 8), ft::QuantizationPolicy{}));

  // The meter needs the model's layer sizes (one FP32 probe pass) and an accelerator model; the FP32 reference
  // runs alongside, so the cost can be compared with what FP32 training of the same samples would have cost.
  const ft::ModelProfile profile = ft::profile_model(*model, input);
  ft::CostMeter meter(profile, ft::builtin_hardware_model());
  meter.add_reference("fp32", ft::PrecisionPlan::uniform(ft::Precision::full()));
  model->set_cost_observer(&meter);

  SyntheticImages data;
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  model->train();
  double first_losses = 0, last_losses = 0;  // mean over the first and the last 10 steps
  for (int64_t step = 0; step < kSteps; ++step) {
    const auto [images, labels] = data.batch(kBatch);
    const at::Tensor output = model->forward(images, controller.plan_for_step(step));
    const at::Tensor loss = torch::nn::functional::cross_entropy(output, labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    meter.end_step(kBatch);  // closes the step: its forward, error-backward and weight-gradient passes

    const double value = loss.item<double>();
    if (step < 10) first_losses += value / 10;
    if (step >= kSteps - 10) last_losses += value / 10;
    if (step % 10 == 0 || step == kSteps - 1)
      std::printf("step %3lld  %s  loss %.4f\n", static_cast<long long>(step), controller.label().c_str(), value);
  }

  const ft::CostTotals run = ft::summarize(meter.ledger().run, profile);
  const ft::CostTotals fp32 = ft::summarize(meter.reference("fp32").run, profile);
  std::printf("loss: %.4f (mean of the first 10 steps) -> %.4f (last 10)\n", first_losses, last_losses);
  std::printf("cost of %lld samples at %s: %.4g bit-MACs, cp %.2f%% of FP32, paper MACs %.4g\n",
              static_cast<long long>(run.samples), controller.describe().c_str(), run.total().bit_macs, run.cp(),
              run.paper_macs());
  std::printf("energy on %s: %.4g J (FP32: %.4g J)\n", meter.hardware().name.c_str(), run.total().energy_j,
              fp32.total().energy_j);
  if (!(last_losses < first_losses)) {
    std::fprintf(stderr, "error: the loss did not fall\n");
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}

int main() {
  try {
    return run();
  } catch (const std::exception& e) {  // fractrain::Error says what to fix
    std::fprintf(stderr, "error: %s\n", e.what());
    return EXIT_FAILURE;
  }
}
