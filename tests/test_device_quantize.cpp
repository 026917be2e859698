// The device path of quantization (quant/device_quantize.h): ranges, widths, the noise stream and the running
// statistics kept in tensors, read by the kernels' per-thread bodies. A GPU run takes this path with CUDA
// kernels; here it runs on the CPU (ScopedCpuEmulation) and must equal the CPU path bit for bit: from the single
// quantizer call up to a whole training step and an evaluation of a model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/model_registry.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
#include "fractrain/nn/qmatmul.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/quant_math.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

// Equal to the bit (torch::equal compares values; NaN-free data makes that the same here).
void expect_bitwise(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(torch::equal(a.view(at::kInt), b.view(at::kInt))) << what << ": max |difference| "
                                                                 << (a - b).abs().max().item<float>();
}

device_quant::RowQuantization one_range(const at::Tensor& range, int bits) {
  device_quant::RowQuantization q = device_quant::RowQuantization::over(range);
  q.bits = bits;
  return q;
}

}  // namespace

TEST(DeviceQuantize, OnlyCudaTensorsOrTheEmulationTakeThePath) {
  const at::Tensor x = torch::randn({4});
  EXPECT_FALSE(device_quant::applies(x));
  {
    device_quant::ScopedCpuEmulation emulation;
    EXPECT_TRUE(device_quant::applies(x));
    EXPECT_FALSE(device_quant::applies(x.to(at::kDouble)));
  }
  EXPECT_FALSE(device_quant::applies(x));
}

TEST(DeviceQuantize, RangeOfEqualsTensorRange) {
  torch::manual_seed(1);
  for (const at::Tensor& x : {torch::randn({3, 5, 7}) * 4 + 1, torch::rand({1000}), torch::empty({0, 3})}) {
    const at::Tensor range = device_quant::range_of(x);
    const QuantRange host = tensor_range(x);
    EXPECT_EQ(range[0].item<float>(), host.lo);
    EXPECT_EQ(range[1].item<float>(), host.hi);
  }
}

TEST(DeviceQuantize, RowsEqualTheFakeQuantizerBitForBit) {
  torch::manual_seed(2);
  const at::Tensor x = torch::randn({6, 37}) * 3;  // 222 elements: not a whole number of 64-element noise tiles
  const at::Tensor range = device_quant::range_of(x);
  const QuantRange host_range = tensor_range(x);
  for (bool snap : {false, true}) {
    QuantizeOptions nearest;
    nearest.snap_zero_point = snap;
    device_quant::RowQuantization q = one_range(range, 4);
    q.snap_zero_point = snap;
    at::Tensor out = torch::empty_like(x);
    expect_bitwise(device_quant::quantize_rows_out(x, q, out), fake_quantize(x, 4, host_range, nearest),
                   "4-bit nearest, snap " + std::to_string(snap));

    // DFQ's widths per sample (0: the row is copied), stochastic rounding from inside the noise stream.
    const std::vector<int> widths = {0, 2, 4, 6, 8, 3};
    QuantizeOptions stochastic = nearest;
    stochastic.rounding = Rounding::Stochastic;
    stochastic.noise = PhiloxStream{5, mix_stream(3, 17)};
    stochastic.noise_first_index = 100;
    q.rows = 6;
    q.row_bits = device_quant::widths_tensor(widths, x);
    q.stochastic = true;
    q.noise_key = stochastic.noise.key;
    q.noise_stream = device_quant::stream_tensor(stochastic.noise, x);
    q.noise_first_index = stochastic.noise_first_index;
    at::Tensor in_place = x.clone();
    device_quant::quantize_rows_out(in_place, q, in_place);
    expect_bitwise(in_place, fake_quantize_rows(x, widths, host_range, stochastic),
                   "per-row widths, stochastic, in place, snap " + std::to_string(snap));
    // The stream mixed on the device from a step counter (train.cuda_graphs): the same noise.
    q.noise_stream = at::Tensor();
    q.noise_step = torch::full({1}, int64_t{17}, torch::kLong);
    q.noise_layer = 3;
    at::Tensor by_step = torch::empty_like(x);
    expect_bitwise(device_quant::quantize_rows_out(x, q, by_step), fake_quantize_rows(x, widths, host_range, stochastic),
                   "per-row widths, stochastic, stream from the step counter, snap " + std::to_string(snap));
  }
}

// Under CUDA Graphs a layer's gradient noise comes from the step counter on the device (QuantizerSettings::
// noise_step): the same bits as the stream its step gives, and new ones when the counter moves.
TEST(DeviceQuantize, AGradientsNoiseFromTheStepCounterIsItsStepsStream) {
  torch::manual_seed(9);
  const at::Tensor g = torch::randn({4, 50});
  device_quant::ScopedCpuEmulation emulation;  // the device path, on the CPU
  GradientQuantization spec;
  spec.bits = 4;
  spec.noise = PhiloxStream{11, mix_stream(5, 23)};
  const at::Tensor by_stream = quantize_gradient(g.clone(), spec);
  spec.noise_step = torch::full({1}, int64_t{23}, torch::kLong);
  spec.noise_layer = 5;
  expect_bitwise(quantize_gradient(g.clone(), spec), by_stream, "noise from the step counter");
  spec.noise_step.fill_(24);
  EXPECT_FALSE(torch::equal(quantize_gradient(g.clone(), spec), by_stream));
}

TEST(DeviceQuantize, WeightsPerChannelEqualTheHostQuantizer) {
  torch::manual_seed(3);
  const at::Tensor w = torch::randn({6, 5, 3, 3});
  for (int bits : {2, 4, 8}) {
    QuantizeOptions options;
    options.snap_zero_point = bits == 4;
    const at::Tensor per_output = fake_quantize_per_channel(w, bits, options);
    const at::Tensor per_input = fake_quantize_per_input_channel(w, bits, options);
    expect_bitwise(device_quant::quantize_per_channel(w, bits, options.snap_zero_point), per_output,
                   "per output channel, " + std::to_string(bits) + " bits");
    expect_bitwise(device_quant::quantize_per_input_channel(w, bits, options.snap_zero_point), per_input,
                   "per input channel, " + std::to_string(bits) + " bits");
    device_quant::ScopedCpuEmulation emulation;  // the public entry points dispatch to the device path
    expect_bitwise(fake_quantize_per_channel(w, bits, options), per_output, "dispatched per output channel");
    expect_bitwise(fake_quantize_per_input_channel(w, bits, options), per_input, "dispatched per input channel");
  }
}

TEST(DeviceQuantize, RunningRangeAndEvaluationRangeFollowTheLayersRule) {
  torch::manual_seed(4);
  at::Tensor lo = torch::zeros({1}), span = torch::zeros({1}), seen = torch::zeros({1});
  float host_lo = 0, host_span = 0, host_seen = 0;
  const at::Tensor before = torch::randn({10}) * 2;
  // Before any training batch, an evaluation batch is quantized over its own range.
  expect_bitwise(device_quant::evaluation_range(lo, span, seen, before), device_quant::range_of(before),
                 "evaluation before training");
  for (int step = 0; step < 4; ++step) {
    const at::Tensor batch = torch::randn({50}) * (step + 1);
    const QuantRange r = tensor_range(batch);
    device_quant::update_running_range(lo, span, seen, device_quant::range_of(batch), 0.9f);
    quant_math::update_running_range(&host_lo, &host_span, &host_seen, r.lo, r.hi, 0.9f);
    EXPECT_EQ(lo.item<float>(), host_lo) << "step " << step;
    EXPECT_EQ(span.item<float>(), host_span) << "step " << step;
    EXPECT_EQ(seen.item<float>(), host_seen) << "step " << step;
  }
  const at::Tensor after = device_quant::evaluation_range(lo, span, seen, before);
  EXPECT_EQ(after[0].item<float>(), host_lo);
  EXPECT_EQ(after[1].item<float>(), host_lo + host_span);
}

TEST(DeviceQuantize, BadArgumentsAreNamed) {
  const at::Tensor x = torch::randn({4, 6});
  at::Tensor out = torch::empty_like(x);
  device_quant::RowQuantization q = one_range(device_quant::range_of(x), 4);
  q.rows = 5;
  EXPECT_NE(error_of([&] { device_quant::quantize_rows_out(x, q, out); }).find("do not split into 5 rows"),
            std::string::npos);
  q.rows = 4;
  q.row_bits = torch::full({4}, 4, torch::kLong);
  EXPECT_NE(error_of([&] { device_quant::quantize_rows_out(x, q, out); }).find("per-row widths must be a contiguous Int"),
            std::string::npos);
  q.row_bits = device_quant::widths_tensor({4, 4}, x);
  EXPECT_NE(error_of([&] { device_quant::quantize_rows_out(x, q, out); }).find("2 widths for 4 rows"),
            std::string::npos);
  q.row_bits = at::Tensor();
  q.stochastic = true;
  EXPECT_NE(error_of([&] { device_quant::quantize_rows_out(x, q, out); }).find("the noise stream"), std::string::npos);
  at::Tensor wrong = torch::empty({3});
  EXPECT_NE(error_of([&] { device_quant::quantize_rows_out(x, q, wrong); }).find("`out` must have the shape"),
            std::string::npos);
}

namespace {

struct LayerResult {
  at::Tensor y, dx, dw, db;
};

template <typename Layer>
LayerResult train_step(Layer& layer, const at::Tensor& x_value, const at::Tensor& g, const LayerPrecision& p,
                       uint64_t noise_step) {
  layer.zero_grad();
  at::Tensor x = x_value.clone().requires_grad_(true);
  at::Tensor y = layer.forward(x, p, noise_step);
  y.backward(g);
  return {y.detach(), x.grad(), layer.weight().grad().clone(), layer.bias().grad().clone()};
}

template <typename Layer>
void expect_same_layer_runs(Layer& cpu, Layer& device, const at::Tensor& x, const at::Tensor& g,
                            const LayerPrecision& p, const std::string& what) {
  cpu.train();
  device.train();
  for (uint64_t step = 0; step < 2; ++step) {
    const LayerResult a = train_step(cpu, x * static_cast<double>(step + 1), g, p, step);
    LayerResult b;
    {
      device_quant::ScopedCpuEmulation emulation;
      b = train_step(device, x * static_cast<double>(step + 1), g, p, step);
    }
    const std::string at = what + " step " + std::to_string(step);
    expect_bitwise(b.y, a.y, at + " y");
    expect_bitwise(b.dx, a.dx, at + " dx");
    expect_bitwise(b.dw, a.dw, at + " dw");
    expect_bitwise(b.db, a.db, at + " db");
  }
  const auto device_buffers = device.named_buffers();
  for (const auto& item : cpu.named_buffers())
    expect_bitwise(device_buffers[item.key()], item.value(), what + " buffer " + item.key());
  cpu.eval();
  device.eval();
  torch::NoGradGuard no_grad;
  const at::Tensor eval_cpu = cpu.forward(x, p, 0);
  device_quant::ScopedCpuEmulation emulation;
  expect_bitwise(device.forward(x, p, 0), eval_cpu, what + " evaluation");
}

QuantizerSettings settings(ErrorWeightRanges error_weights, bool snap) {
  QuantizerSettings s;
  s.noise_seed = 31;
  s.snap_zero_point = snap;
  s.error_weight_ranges = error_weights;
  return s;
}

}  // namespace

TEST(DeviceQuantize, QuantizedLayersOnTheDevicePathEqualTheCpuPathBitForBit) {
  torch::manual_seed(5);
  const std::vector<int> act = {3, 4, 6, 8, 0}, grad = {6, 8, 8, 6, 0};
  const std::vector<std::pair<std::string, LayerPrecision>> precisions = {
      {"FW8/BW8", LayerPrecision::uniform(Precision::fw_bw(8, 8))},
      {"FW4/BW6", LayerPrecision::uniform(Precision::fw_bw(4, 6))},
      {"per sample", LayerPrecision::per_sample(4, act, grad)}};
  for (const auto& [label, p] : precisions) {
    for (bool per_input : {false, true}) {
      const auto s = settings(per_input ? ErrorWeightRanges::PerInputChannel : ErrorWeightRanges::PerOutputChannel,
                              per_input);
      const std::string what = label + (per_input ? ", error weight per input channel" : "");
      QConv2dOptions o = QConv2dOptions::same(3, 4, 3, 2);
      o.bias = true;
      QConv2d conv_cpu(o), conv_device(o);
      QLinear fc_cpu(7, 3), fc_device(7, 3);
      {
        torch::NoGradGuard copy;
        conv_device.weight().copy_(conv_cpu.weight());
        conv_device.bias().copy_(conv_cpu.bias().normal_());
        fc_device.weight().copy_(fc_cpu.weight());
        fc_device.bias().copy_(fc_cpu.bias());
      }
      for (QuantizedLayer* layer : std::initializer_list<QuantizedLayer*>{&conv_cpu, &conv_device, &fc_cpu, &fc_device})
        layer->set_quantizer_settings(s);
      expect_same_layer_runs(conv_cpu, conv_device, torch::randn({5, 3, 9, 9}), torch::randn({5, 4, 5, 5}), p,
                             "conv " + what);
      expect_same_layer_runs(fc_cpu, fc_device, torch::randn({5, 7}), torch::randn({5, 3}), p, "linear " + what);
    }
  }
}

TEST(DeviceQuantize, AttentionMatmulOnTheDevicePathEqualsTheCpuPath) {
  torch::manual_seed(6);
  QMatmul matmul;
  matmul.set_layer_name("attn");
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(6, 8));
  const at::Tensor a = torch::randn({2, 3, 4, 5}), b = torch::randn({2, 3, 5, 6});
  const at::Tensor on_cpu = matmul.forward(a, b, plan);
  device_quant::ScopedCpuEmulation emulation;
  expect_bitwise(matmul.forward(a, b, plan), on_cpu, "quantized matmul");
}

TEST(DeviceQuantize, AModelsTrainingStepAndEvaluationEqualTheCpuPathBitForBit) {
  torch::manual_seed(7);
  auto cpu_model = create_model("resnet8", ModelInputSpec{1, 12, 12, 10});
  torch::manual_seed(7);
  auto device_model = create_model("resnet8", ModelInputSpec{1, 12, 12, 10});
  const PrecisionPlan plan = make_static_plan(*cpu_model, Precision::fw_bw(8, 8), {});
  const at::Tensor x = torch::randn({6, 1, 12, 12}), labels = torch::randint(0, 10, {6}, torch::kLong);
  auto step = [&](auto& model) {
    model->train();
    model->zero_grad();
    at::Tensor loss = torch::cross_entropy_loss(model->forward(x, plan), labels);
    loss.backward();
    return loss.detach();
  };
  const at::Tensor loss_cpu = step(cpu_model);
  at::Tensor loss_device;
  {
    device_quant::ScopedCpuEmulation emulation;
    loss_device = step(device_model);
  }
  expect_bitwise(loss_device, loss_cpu, "loss");
  const auto cpu_parameters = cpu_model->named_parameters();
  for (const auto& item : device_model->named_parameters())
    expect_bitwise(item.value().grad(), cpu_parameters[item.key()].grad(), "gradient of " + item.key());
  const auto cpu_buffers = cpu_model->named_buffers();
  for (const auto& item : device_model->named_buffers())
    if (item.value().scalar_type() == at::kFloat)
      expect_bitwise(item.value(), cpu_buffers[item.key()], "buffer " + item.key());
  cpu_model->eval();
  device_model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor eval_cpu = cpu_model->forward(x, plan);
  device_quant::ScopedCpuEmulation emulation;
  expect_bitwise(device_model->forward(x, plan), eval_cpu, "evaluation");
}
