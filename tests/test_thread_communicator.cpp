// The test-only thread communicator: results reduced in rank order and identical on every rank, mismatched
// collectives and timeouts reported as errors rather than hangs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>

#include "test_support.h"
#include "thread_communicator.h"

namespace fractrain {
namespace {

using test_support::make_thread_communicators;
using test_support::run_ranks;

TEST(ThreadCommunicator, AllReduceBroadcastGatherAgreeOnEveryRank) {
  std::vector<at::Tensor> sums(3), mins(3), maxs(3), broadcasts(3);
  std::vector<std::vector<at::Tensor>> gathers(3);
  run_ranks(3, [&](Communicator& comm) {
    const int r = comm.rank();
    EXPECT_EQ(comm.world_size(), 3);
    EXPECT_EQ(comm.backend_name(), "threads");
    at::Tensor s = at::full({4}, 0.1 * (r + 1), at::kFloat);
    at::Tensor lo = at::tensor({r, 10 - r}, at::kInt), hi = lo.clone();
    // Two reductions in flight at once, waited for in reverse order.
    auto first = comm.start_all_reduce({s}, ReduceOp::Sum, "sum");
    auto second = comm.start_all_reduce({lo}, ReduceOp::Min, "min");
    second->wait();
    first->wait();
    first->wait();  // waiting twice is allowed
    comm.all_reduce({hi}, ReduceOp::Max, "max");
    at::Tensor b = at::full({2}, static_cast<float>(r), at::kFloat);
    comm.broadcast({b}, 2, "broadcast");
    gathers[static_cast<size_t>(r)] = comm.all_gather(at::full({1}, r * r, at::kLong), "gather");
    comm.barrier("end");
    sums[static_cast<size_t>(r)] = s;
    mins[static_cast<size_t>(r)] = lo;
    maxs[static_cast<size_t>(r)] = hi;
    broadcasts[static_cast<size_t>(r)] = b;
  });
  // Rank order: ((0.1 + 0.2) + 0.3) in float.
  const float expected = (0.1f + 0.2f) + 0.3f;
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(at::equal(sums[static_cast<size_t>(r)], at::full({4}, expected, at::kFloat)));
    EXPECT_TRUE(at::equal(mins[static_cast<size_t>(r)], at::tensor({0, 8}, at::kInt)));
    EXPECT_TRUE(at::equal(maxs[static_cast<size_t>(r)], at::tensor({2, 10}, at::kInt)));
    EXPECT_TRUE(at::equal(broadcasts[static_cast<size_t>(r)], at::full({2}, 2.0f, at::kFloat)));
    ASSERT_EQ(gathers[static_cast<size_t>(r)].size(), 3u);
    for (int q = 0; q < 3; ++q) EXPECT_EQ(gathers[static_cast<size_t>(r)][static_cast<size_t>(q)].item<int64_t>(), q * q);
  }
}

TEST(ThreadCommunicator, MismatchedCollectivesThrowInsteadOfMixingData) {
  const std::string message = test_support::error_of([] {
    run_ranks(2, [](Communicator& comm) {
      at::Tensor t = at::zeros({comm.rank() == 0 ? 3 : 4});
      comm.all_reduce({t}, ReduceOp::Sum, comm.rank() == 0 ? "three" : "four");
    });
  });
  EXPECT_CONTAINS(message, "differs between ranks");
  EXPECT_CONTAINS(message, "three");
  EXPECT_CONTAINS(message, "four");
}

TEST(ThreadCommunicator, AMissingRankTimesOut) {
  const std::string message = test_support::error_of([] {
    run_ranks(make_thread_communicators(2, std::chrono::milliseconds(200)), [](Communicator& comm) {
      if (comm.rank() == 1) return;  // never joins
      comm.barrier("lonely barrier");
    });
  });
  EXPECT_CONTAINS(message, "lonely barrier");
  EXPECT_CONTAINS(message, "only 1 of 2 ranks arrived");
}

TEST(ThreadCommunicator, AFailingRankReleasesTheOthersAtOnce) {
  const auto start = std::chrono::steady_clock::now();
  const std::string message = test_support::error_of([] {
    run_ranks(make_thread_communicators(3, std::chrono::seconds(60)), [](Communicator& comm) {
      if (comm.rank() == 2) throw Error("rank 2 broke");
      comm.barrier("waiting for rank 2");
    });
  });
  EXPECT_CONTAINS(message, "rank 2 broke");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace fractrain
