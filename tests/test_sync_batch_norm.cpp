// SyncBatchNorm2d: bit-identical to torch::nn::BatchNorm2d in one process, and across ranks equal to one
// BatchNorm2d over the concatenated batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/model_registry.h"
#include "fractrain/nn/batch_norm.h"
#include "test_support.h"
#include "thread_communicator.h"

namespace fractrain {
namespace {

constexpr int64_t kChannels = 3;

// Random affine parameters so that weight and bias matter; the same on every copy.
void set_affine(torch::nn::Module& bn) {
  torch::NoGradGuard no_grad;
  for (auto& p : bn.named_parameters()) {
    if (p.key() == "weight") p.value().copy_(torch::tensor({0.5f, 1.5f, -2.0f}));
    if (p.key() == "bias") p.value().copy_(torch::tensor({0.1f, -0.3f, 0.7f}));
  }
}

// Inputs with a mean of several standard deviations, as post-ReLU activations can have.
torch::Tensor batch(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, kChannels, 4, 5}) * 2 + 3;
}

TEST(SyncBatchNorm, SameNamesAsTorchBatchNorm2d) {
  torch::nn::BatchNorm2d reference(kChannels);
  SyncBatchNorm2d bn(kChannels);
  EXPECT_EQ(reference->named_parameters().keys(), bn.named_parameters().keys());
  EXPECT_EQ(reference->named_buffers().keys(), bn.named_buffers().keys());
  for (const auto& b : reference->named_buffers()) EXPECT_TRUE(torch::equal(b.value(), bn.named_buffers()[b.key()]));
  for (const auto& p : reference->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), bn.named_parameters()[p.key()]));
}

// Without a communicator, and with a world-size-1 one, every number is torch's own.
TEST(SyncBatchNorm, OneProcessIsBitIdenticalToTorchBatchNorm2d) {
  for (bool with_single_communicator : {false, true}) {
    torch::nn::BatchNorm2d reference(kChannels);
    SyncBatchNorm2d bn(kChannels);
    if (with_single_communicator) bn.set_communicator(make_single_process_communicator());
    set_affine(*reference);
    set_affine(bn);
    for (int step = 0; step < 3; ++step) {
      const bool train = step < 2;
      reference->train(train);
      bn.train(train);
      const torch::Tensor x = batch(6, 10 + static_cast<uint64_t>(step));
      const torch::Tensor x_ref = x.clone().requires_grad_(true), x_bn = x.clone().requires_grad_(true);
      const torch::Tensor y_ref = reference->forward(x_ref), y_bn = bn.forward(x_bn);
      EXPECT_TRUE(torch::equal(y_ref, y_bn)) << "step " << step;
      const torch::Tensor dy = torch::randn_like(y_ref);
      y_ref.backward(dy);
      y_bn.backward(dy);
      EXPECT_TRUE(torch::equal(x_ref.grad(), x_bn.grad())) << "step " << step;
      EXPECT_TRUE(torch::equal(reference->weight.grad(), bn.weight.grad())) << "step " << step;
      EXPECT_TRUE(torch::equal(reference->bias.grad(), bn.bias.grad())) << "step " << step;
      EXPECT_TRUE(torch::equal(reference->running_mean, bn.running_mean));
      EXPECT_TRUE(torch::equal(reference->running_var, bn.running_var));
      EXPECT_TRUE(torch::equal(reference->num_batches_tracked, bn.num_batches_tracked));
    }
  }
}

struct RankResult {
  torch::Tensor y, dx, dweight, dbias, running_mean, running_var, num_batches_tracked;
};

// One BatchNorm2d over the whole batch, against `sizes.size()` ranks each running SyncBatchNorm2d on its slice
// (two training steps, so running statistics are updated twice, then an eval forward).
void expect_ranks_match_one_batch_norm(const std::vector<int64_t>& sizes) {
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  const int world = static_cast<int>(sizes.size());
  const std::vector<torch::Tensor> inputs = {batch(total, 1), batch(total, 2)};
  torch::manual_seed(3);
  const torch::Tensor upstream = torch::randn({total, kChannels, 4, 5});  // dL/dy: loss = sum(y * upstream)
  const torch::Tensor eval_input = batch(4, 4);

  torch::nn::BatchNorm2d reference(kChannels);
  set_affine(*reference);
  std::vector<torch::Tensor> ref_y, ref_dx, ref_dw, ref_db;
  for (const torch::Tensor& input : inputs) {
    const torch::Tensor x = input.clone().requires_grad_(true);
    reference->zero_grad();
    const torch::Tensor y = reference->forward(x);
    (y * upstream).sum().backward();
    ref_y.push_back(y.detach());
    ref_dx.push_back(x.grad());
    ref_dw.push_back(reference->weight.grad().clone());
    ref_db.push_back(reference->bias.grad().clone());
  }
  reference->eval();
  const torch::Tensor ref_eval = reference->forward(eval_input);

  std::vector<std::vector<RankResult>> results(static_cast<size_t>(world));
  std::vector<torch::Tensor> eval_outputs(static_cast<size_t>(world));
  test_support::run_ranks(world, [&](Communicator& comm) {
    const auto r = static_cast<size_t>(comm.rank());
    int64_t begin = 0;
    for (size_t q = 0; q < r; ++q) begin += sizes[q];
    SyncBatchNorm2d bn(kChannels);
    set_affine(bn);
    bn.set_communicator(std::shared_ptr<Communicator>(&comm, [](Communicator*) {}));
    for (const torch::Tensor& input : inputs) {
      const torch::Tensor x = input.slice(0, begin, begin + sizes[r]).clone().requires_grad_(true);
      bn.zero_grad();
      const torch::Tensor y = bn.forward(x);
      (y * upstream.slice(0, begin, begin + sizes[r])).sum().backward();
      results[r].push_back({y.detach(), x.grad(), bn.weight.grad().clone(), bn.bias.grad().clone(),
                            bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()});
    }
    bn.eval();
    eval_outputs[r] = bn.forward(eval_input);  // no collective: ranks need not even agree to call it
  });

  // Tolerances. The ranks normalise in float32 like BatchNorm2d, with statistics summed in float64 and in another
  // order; the float64 part differs by ~1e-15 relative, so what remains is float32 rounding of the output
  // (|x| up to ~11, |y| up to ~6: a few ulp, ~1e-6) and, in backward, of BatchNorm2d's float32 arithmetic,
  // against which our float64 dx is the more exact one. 1e-5 absolute and relative covers both with a margin
  // of ~5x over what is measured (1.9e-6, printed below), and is far below any real error (a wrong count or a
  // local instead of global statistic moves outputs by >1e-2).
  const double tol = 1e-5;
  double worst = 0;
  auto check = [&](const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
    ASSERT_EQ(got.sizes(), want.sizes()) << what;
    if (got.numel() == 0) return;
    worst = std::max(worst, (got - want).abs().max().item<double>());
    EXPECT_TRUE(torch::allclose(got, want, tol, tol)) << what << ": max diff " << (got - want).abs().max().item<double>();
  };
  for (size_t step = 0; step < inputs.size(); ++step) {
    std::vector<torch::Tensor> ys, dxs;
    torch::Tensor dw = torch::zeros({kChannels}), db = torch::zeros({kChannels});
    for (size_t r = 0; r < results.size(); ++r) {
      ys.push_back(results[r][step].y);
      dxs.push_back(results[r][step].dx);
      dw += results[r][step].dweight;  // each rank's share; gradient averaging adds them up
      db += results[r][step].dbias;
      // Every rank derives the running statistics from the same reduced sums: identical bits.
      EXPECT_TRUE(torch::equal(results[r][step].running_mean, results[0][step].running_mean));
      EXPECT_TRUE(torch::equal(results[r][step].running_var, results[0][step].running_var));
      EXPECT_EQ(results[r][step].num_batches_tracked.item<int64_t>(), static_cast<int64_t>(step + 1));
    }
    check(torch::cat(ys), ref_y[step], "output");
    check(torch::cat(dxs), ref_dx[step], "input gradient");
    check(dw, ref_dw[step], "weight gradient");
    check(db, ref_db[step], "bias gradient");
  }
  check(results[0].back().running_mean, reference->running_mean, "running_mean");
  check(results[0].back().running_var, reference->running_var, "running_var");
  for (const auto& y : eval_outputs) check(y, ref_eval, "eval output");
  std::cout << sizes.size() << " ranks: max abs difference to one BatchNorm2d " << worst << "\n";
}

TEST(SyncBatchNorm, TwoRanksEqualOneBatchNormOnTheWholeBatch) { expect_ranks_match_one_batch_norm({4, 4}); }
TEST(SyncBatchNorm, ThreeRanksEqualOneBatchNormOnTheWholeBatch) { expect_ranks_match_one_batch_norm({3, 3, 3}); }
TEST(SyncBatchNorm, UnevenSlicesEqualOneBatchNormOnTheWholeBatch) { expect_ranks_match_one_batch_norm({5, 2}); }
TEST(SyncBatchNorm, ARankWithNoSamplesStillTakesPart) { expect_ranks_match_one_batch_norm({4, 0, 3}); }

TEST(SyncBatchNorm, TooFewValuesOverAllRanksIsAClearError) {
  const std::string message = test_support::error_of([] {
    test_support::run_ranks(2, [](Communicator& comm) {
      SyncBatchNorm2d bn(kChannels);
      bn.set_communicator(std::shared_ptr<Communicator>(&comm, [](Communicator*) {}));
      bn.forward(torch::randn({comm.rank() == 0 ? 1 : 0, kChannels, 1, 1}));
    });
  });
  EXPECT_CONTAINS(message, "more than 1 value per channel over all ranks");
}

TEST(SyncBatchNorm, SetCommunicatorReachesEveryBatchNormOfAModel) {
  for (const std::string name : {"resnet20", "mobilenetv2"}) {
    auto model = create_model(name, ModelInputSpec{});
    const int count = set_batch_norm_communicator(*model, make_single_process_communicator());
    int expected = 0;
    for (const auto& module : model->modules()) expected += dynamic_cast<SyncBatchNorm2d*>(module.get()) ? 1 : 0;
    EXPECT_GT(count, 0) << name;
    EXPECT_EQ(count, expected) << name;
  }
}

}  // namespace
}  // namespace fractrain
