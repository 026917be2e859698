// GradientSynchronizer: two ranks on halves of a batch average to one process on the whole batch; buckets go
// out in the same order everywhere; gradients undefined on every rank stay undefined; fp16 and bw stay within
// their rounding; bytes on the wire are counted per mode.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <mutex>

#include "fractrain/dist/gradient_sync.h"
#include "fractrain/quant/fake_quantize.h"
#include "test_support.h"
#include "thread_communicator.h"

namespace fractrain {
namespace {

// An MLP with two extra parameters registered first (so they land in the last bucket): `extra` is used on rank
// 0 only, `never` by nobody.
struct Net : torch::nn::Module {
  Net() {
    extra = register_parameter("extra", torch::full({16}, 0.5f));
    never = register_parameter("never", torch::ones({3}));
    fc1 = register_module("fc1", torch::nn::Linear(8, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 4));
  }
  // Mean over this batch of |fc2(relu(fc1(x)) [* extra])|^2.
  torch::Tensor loss(const torch::Tensor& x, bool use_extra) {
    torch::Tensor h = torch::relu(fc1->forward(x));
    if (use_extra) h = h * extra;
    return fc2->forward(h).pow(2).sum(1).mean();
  }
  torch::Tensor extra, never;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

std::shared_ptr<Net> copy_of(Net& source) {
  auto net = std::make_shared<Net>();
  torch::NoGradGuard no_grad;
  auto from = source.parameters(), to = net->parameters();
  for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  return net;
}

constexpr int64_t kHalfBatch = 6;
// 64 bytes: buckets [fc2.bias, fc2.weight], [fc1.bias], [fc1.weight], [never, extra].
constexpr int64_t kBucketBytes = 64;

torch::Tensor global_batch() {
  torch::manual_seed(7);
  return torch::randn({2 * kHalfBatch, 8});
}

// Each rank's loss is the mean over its half; rank 0 alone also uses `extra`. The average of the two ranks'
// gradients is the gradient of 0.5 * (rank 0's loss + rank 1's loss), which one process gets from one backward
// over the whole batch (without `extra`, that is the mean over the whole batch).
std::vector<torch::Tensor> one_process_gradients(Net& master) {
  auto net = copy_of(master);
  const torch::Tensor x = global_batch();
  (0.5 * (net->loss(x.slice(0, 0, kHalfBatch), true) + net->loss(x.slice(0, kHalfBatch), false))).backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : net->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return grads;
}

struct RankRun {
  std::vector<std::vector<torch::Tensor>> grads;  // per step
  std::vector<GradientSynchronizer::StepRecord> records;
  std::vector<std::vector<torch::Tensor>> local;  // this rank's own gradients before averaging
  int64_t total_bytes = 0;
};

std::vector<RankRun> run_two_ranks(Net& master, GradientSyncOptions options, int bits, int steps = 2,
                                   bool rank0_uses_extra = true) {
  std::vector<RankRun> runs(2);
  const torch::Tensor x = global_batch();
  std::vector<std::shared_ptr<Net>> nets = {copy_of(master), copy_of(master)};
  test_support::run_ranks(2, [&](Communicator& comm) {
    const auto r = static_cast<size_t>(comm.rank());
    Net& net = *nets[r];
    GradientSynchronizer sync(std::shared_ptr<Communicator>(&comm, [](Communicator*) {}), net.parameters(), options);
    for (int step = 0; step < steps; ++step) {
      net.zero_grad();
      for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
      if (options.comm == GradientCommunication::Bw) sync.begin_step(bits, static_cast<uint64_t>(step));
      const torch::Tensor xr = x.slice(0, static_cast<int64_t>(r) * kHalfBatch, static_cast<int64_t>(r + 1) * kHalfBatch);
      net.loss(xr, rank0_uses_extra && r == 0).backward();
      std::vector<torch::Tensor> local;
      for (const auto& p : net.parameters()) local.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
      runs[r].local.push_back(local);
      sync.finish_step(bits, static_cast<uint64_t>(step));
      std::vector<torch::Tensor> grads;
      for (const auto& p : net.parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
      runs[r].grads.push_back(grads);
      runs[r].records.push_back(sync.last_step());
    }
    runs[r].total_bytes = sync.bytes_communicated();
  });
  return runs;
}

GradientSyncOptions options_for(GradientCommunication comm, bool hooks = true) {
  GradientSyncOptions o;
  o.bucket_bytes = kBucketBytes;
  o.comm = comm;
  o.seed = 42;
  o.launch_from_hooks = hooks;
  return o;
}

// Parameter order of Net: extra, never, fc1.weight, fc1.bias, fc2.weight, fc2.bias.
constexpr size_t kNever = 1;

TEST(GradientSync, BucketsCoverParametersInReverseOrder) {
  Net net;
  GradientSynchronizer sync(make_single_process_communicator(), net.parameters(), options_for(GradientCommunication::Fp32));
  const std::vector<std::vector<int>> expected = {{5, 4}, {3}, {2}, {1, 0}};
  EXPECT_EQ(sync.buckets(), expected);
}

TEST(GradientSync, TwoRanksAverageToOneProcessOnTheWholeBatch) {
  torch::manual_seed(1);
  Net master;
  const std::vector<torch::Tensor> want = one_process_gradients(master);
  const std::vector<RankRun> runs = run_two_ranks(master, options_for(GradientCommunication::Fp32), 0);
  double worst = 0;
  for (const RankRun& run : runs) {
    for (size_t step = 0; step < run.grads.size(); ++step) {
      for (size_t i = 0; i < want.size(); ++i) {
        const torch::Tensor& got = run.grads[step][i];
        if (i == kNever) {
          EXPECT_FALSE(got.defined()) << "unused on every rank: must stay undefined";
          continue;
        }
        ASSERT_TRUE(got.defined()) << "parameter " << i;
        // Both are float32 sums of the same products in a different order (one process adds 12 samples, the
        // ranks 6 + 6 then halve): a few ulp of the largest partial sum. 1e-6 relative to the gradient's scale.
        const double scale = want[i].abs().max().item<double>();
        const double diff = (got - want[i]).abs().max().item<double>();
        worst = std::max(worst, diff / scale);
        EXPECT_LE(diff, 1e-6 * scale) << "parameter " << i;
      }
    }
    // Same bits on both ranks.
    for (size_t i = 0; i < want.size(); ++i)
      if (i != kNever) {
        EXPECT_TRUE(torch::equal(run.grads[0][i], runs[0].grads[0][i]));
      }
  }
  std::cout << "fp32: worst relative difference to one process " << worst << "\n";
  // Launch order: 0, 1, 2, 3 on both ranks; buckets 0-2 complete during backward everywhere, bucket 3 (never,
  // extra) only in finish_step.
  for (const RankRun& run : runs) {
    for (const auto& record : run.records) {
      EXPECT_EQ(record.launch_order, (std::vector<int>{0, 1, 2, 3}));
      EXPECT_EQ(record.launched_during_backward, 3);
    }
  }
}

// Without `extra`: one forward and backward over the whole batch with the mean loss, against the ranks' halves.
TEST(GradientSync, TwoRanksEqualOneForwardOverTheWholeBatch) {
  torch::manual_seed(9);
  Net master;
  auto net = copy_of(master);
  net->loss(global_batch(), false).backward();
  const auto runs = run_two_ranks(master, options_for(GradientCommunication::Fp32), 0, 1, false);
  double worst = 0;
  auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& want = params[i].grad();
    const torch::Tensor& got = runs[0].grads[0][i];
    ASSERT_EQ(got.defined(), want.defined()) << "parameter " << i;  // extra and never: undefined everywhere
    if (!want.defined()) continue;
    // float32 sums over 12 samples in one GEMM against 6 + 6 then halved: the orders differ, so a few ulp of the
    // largest partial sums; 1e-6 of the gradient's scale is ~8 ulp.
    const double scale = want.abs().max().item<double>();
    const double diff = (got - want).abs().max().item<double>();
    worst = std::max(worst, diff / scale);
    EXPECT_LE(diff, 1e-6 * scale) << "parameter " << i;
  }
  std::cout << "fp32, one forward over the whole batch: worst relative difference " << worst << "\n";
}

TEST(GradientSync, HooksAndNoHooksGiveTheSameBits) {
  torch::manual_seed(2);
  Net master;
  for (GradientCommunication comm : {GradientCommunication::Fp32, GradientCommunication::Fp16, GradientCommunication::Bw}) {
    const auto with = run_two_ranks(master, options_for(comm, true), 4);
    const auto without = run_two_ranks(master, options_for(comm, false), 4);
    for (size_t r = 0; r < 2; ++r) {
      EXPECT_EQ(without[r].records[0].launched_during_backward, 0);
      for (size_t step = 0; step < 2; ++step)
        for (size_t i = 0; i < with[r].grads[step].size(); ++i) {
          if (i == kNever) continue;
          EXPECT_TRUE(torch::equal(with[r].grads[step][i], without[r].grads[step][i]))
              << gradient_communication_name(comm) << " rank " << r << " parameter " << i;
        }
    }
  }
}

TEST(GradientSync, Fp16StaysWithinHalfPrecisionRounding) {
  torch::manual_seed(3);
  Net master;
  const auto exact = run_two_ranks(master, options_for(GradientCommunication::Fp32), 0);
  const auto half = run_two_ranks(master, options_for(GradientCommunication::Fp16), 0);
  for (size_t i = 0; i < exact[0].grads[0].size(); ++i) {
    if (i == kNever) continue;
    // Each rank's g/2 rounds to half (relative 2^-11), and so does their sum: |error| <= 2^-11 (|g0| + |g1|)/2
    // + 2^-11 |sum|, plus half's smallest subnormal 6e-8 for tiny values.
    auto local = [&](size_t r) {
      const torch::Tensor& g = half[r].local[0][i];
      return g.defined() ? g : torch::zeros_like(exact[0].grads[0][i]);
    };
    const torch::Tensor g0 = local(0), g1 = local(1);
    const torch::Tensor bound =
        std::pow(2.0, -11) * ((g0.abs() + g1.abs()) / 2 + exact[0].grads[0][i].abs()) + 1.2e-7;
    EXPECT_TRUE(((half[0].grads[0][i] - exact[0].grads[0][i]).abs() <= bound).all().item<bool>()) << "parameter " << i;
    EXPECT_TRUE(torch::equal(half[0].grads[0][i], half[1].grads[0][i]));
  }
}

TEST(GradientSync, BwIsWithinOneQuantizationStepAndUnbiased) {
  torch::manual_seed(4);
  Net master;
  const int bits = 4;
  const auto exact = run_two_ranks(master, options_for(GradientCommunication::Fp32), 0, 1);
  const auto quantized = run_two_ranks(master, options_for(GradientCommunication::Bw), bits, 1);
  // A bucket's step on rank r is (max - min)/(2^b - 1) over its values; that of all of rank r's gradients
  // (with the zeros of missing ones) bounds every bucket's. Each rank's dequantized value is within its step
  // (stochastic rounding moves to a neighbouring level), so the average is within the mean of the two steps.
  double step_bound = 0;
  for (size_t r = 0; r < 2; ++r) {
    std::vector<torch::Tensor> parts = {torch::zeros({1})};
    for (const auto& g : quantized[r].local[0]) if (g.defined()) parts.push_back(g.reshape({-1}));
    const torch::Tensor all = torch::cat(parts);
    step_bound += (all.max() - all.min()).item<double>() / ((1 << bits) - 1) / 2;
  }
  for (size_t i = 0; i < exact[0].grads[0].size(); ++i) {
    if (i == kNever) {
      EXPECT_FALSE(quantized[0].grads[0][i].defined());
      continue;
    }
    const double diff = (quantized[0].grads[0][i] - exact[0].grads[0][i]).abs().max().item<double>();
    EXPECT_LE(diff, step_bound * (1 + 1e-4) + 1e-9) << "parameter " << i;
    EXPECT_TRUE(torch::equal(quantized[0].grads[0][i], quantized[1].grads[0][i]));
  }
  double largest = 0;
  for (size_t i = 0; i < exact[0].grads[0].size(); ++i)
    if (i != kNever) largest = std::max(largest, (quantized[0].grads[0][i] - exact[0].grads[0][i]).abs().max().item<double>());
  EXPECT_GT(largest, 0.05 * step_bound) << "4-bit codes should visibly differ from fp32";
  EXPECT_EQ(quantized[0].records[0].bucket_comm,
            std::vector<GradientCommunication>(4, GradientCommunication::Bw));

  // Unbiased: the same local gradients sent at many steps (fresh noise each) average to the fp32 result.
  // Per element the rounding error has mean 0 and standard deviation <= step/2 per rank; over K steps the mean
  // is within 5 standard deviations, 5 * step_bound / (2 sqrt(K / 2)) for the two-rank average, bar a 1e-6 chance.
  const int K = 400;
  std::vector<std::vector<torch::Tensor>> mean(2);
  test_support::run_ranks(2, [&](Communicator& comm) {
    const auto r = static_cast<size_t>(comm.rank());
    auto net = copy_of(master);
    auto params = net->parameters();
    GradientSynchronizer sync(std::shared_ptr<Communicator>(&comm, [](Communicator*) {}), params,
                              options_for(GradientCommunication::Bw, false));
    std::vector<torch::Tensor> acc(params.size());
    for (int k = 0; k < K; ++k) {
      for (size_t i = 0; i < params.size(); ++i)
        params[i].mutable_grad() = quantized[r].local[0][i].defined() ? quantized[r].local[0][i].clone() : torch::Tensor();
      sync.finish_step(bits, static_cast<uint64_t>(1000 + k));
      for (size_t i = 0; i < params.size(); ++i)
        if (params[i].grad().defined()) acc[i] = acc[i].defined() ? acc[i] + params[i].grad() : params[i].grad().clone();
    }
    for (auto& a : acc) if (a.defined()) a /= K;
    mean[r] = acc;
  });
  const double bias_bound = 5 * step_bound / (2 * std::sqrt(K / 2.0));
  for (size_t i = 0; i < exact[0].grads[0].size(); ++i) {
    if (i == kNever) continue;
    const double diff = (mean[0][i] - exact[0].grads[0][i]).abs().max().item<double>();
    EXPECT_LE(diff, bias_bound) << "parameter " << i << " (one step " << step_bound << ")";
  }
}

TEST(GradientSync, BwAtZeroBitsSendsFp32) {
  torch::manual_seed(5);
  Net master;
  const auto exact = run_two_ranks(master, options_for(GradientCommunication::Fp32), 0, 1);
  const auto fallback = run_two_ranks(master, options_for(GradientCommunication::Bw), 0, 1);
  for (size_t i = 0; i < exact[0].grads[0].size(); ++i)
    if (i != kNever) {
      EXPECT_TRUE(torch::equal(exact[0].grads[0][i], fallback[0].grads[0][i]));
    }
  EXPECT_EQ(fallback[0].records[0].bucket_comm, std::vector<GradientCommunication>(4, GradientCommunication::Fp32));
  EXPECT_EQ(fallback[0].records[0].bytes, exact[0].records[0].bytes);
}

TEST(GradientSync, CountsThePayloadEachRankSends) {
  torch::manual_seed(6);
  Net master;
  int64_t numel = 0;
  for (const auto& p : master.parameters()) numel += p.numel();
  const int64_t flags = 6 * 4;  // one int32 definedness flag per parameter
  const int64_t buckets = 4;
  struct Case {
    GradientCommunication comm;
    int bits;
    int64_t expected;
  };
  const std::vector<Case> cases = {
      {GradientCommunication::Fp32, 0, numel * 4 + flags},
      {GradientCommunication::Fp16, 0, numel * 2 + flags},
      {GradientCommunication::Bw, 8, numel * 1 + buckets * 8 + flags},   // uint8 codes + (lo, s) per bucket
      {GradientCommunication::Bw, 12, numel * 2 + buckets * 8 + flags},  // int16 codes
  };
  for (const Case& c : cases) {
    const auto runs = run_two_ranks(master, options_for(c.comm), c.bits, 2);
    for (const RankRun& run : runs) {
      EXPECT_EQ(run.records[0].bytes, c.expected) << gradient_communication_name(c.comm) << " " << c.bits;
      EXPECT_EQ(run.total_bytes, 2 * c.expected);
    }
  }
}

TEST(GradientSync, WireQuantizerIsTheFakeQuantizerAtNoiseOffsetZero) {
  torch::manual_seed(8);
  const torch::Tensor x = torch::randn({1000}) * 0.01;
  const PhiloxStream noise{42, mix_stream(3, 17)};
  for (int bits : {2, 8, 12, 16}) {
    QuantizeOptions q;
    q.rounding = Rounding::Stochastic;
    q.noise = noise;
    const torch::Tensor want = fake_quantize(x, bits, tensor_range(x), q);
    const detail::WireCodes wire = detail::quantize_for_wire(x, bits, noise, 0);
    EXPECT_EQ(wire.codes.scalar_type(), bits <= 8 ? at::kByte : at::kShort);
    EXPECT_TRUE(torch::equal(detail::dequantize_from_wire(wire.codes, wire.lo, wire.s), want)) << bits << " bits";
  }
  // At an offset, element i uses noise index first + i, across Philox tile boundaries.
  const at::Tensor shifted = detail::rounding_noise_at(noise, 37, 200);
  for (int64_t i = 0; i < 200; ++i)
    ASSERT_EQ(shifted[i].item<float>(), noise.uniform(37 + static_cast<uint64_t>(i)) - 0.5f) << i;
  EXPECT_TRUE(torch::equal(detail::rounding_noise_at(noise, 0, 1000), reference::rounding_noise(x, noise)));
  EXPECT_CONTAINS(test_support::error_of([&] { detail::quantize_for_wire(x, 17, noise, 0); }), "outside 1..16");
}

TEST(GradientSync, FinishStepMustMatchBeginStep) {
  Net net;
  GradientSynchronizer sync(make_single_process_communicator(), net.parameters(), options_for(GradientCommunication::Bw));
  sync.begin_step(8, 3);
  EXPECT_CONTAINS(test_support::error_of([&] { sync.finish_step(8, 4); }), "does not match begin_step(8, 3)");
}

TEST(GradientSync, ASecondBackwardAfterItsBucketWasSentIsAnError) {
  Net net;
  GradientSynchronizer sync(make_single_process_communicator(), net.parameters(), options_for(GradientCommunication::Fp32));
  const torch::Tensor x = torch::randn({4, 8});
  net.loss(x, false).backward();
  EXPECT_CONTAINS(test_support::error_of([&] { net.loss(x, false).backward(); }), "launch_from_hooks = false");
}

}  // namespace
}  // namespace fractrain
