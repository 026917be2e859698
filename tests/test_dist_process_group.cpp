// connect_process_group over real Gloo: two processes on 127.0.0.1, the test process as rank 0 and a fork()ed
// child as rank 1 (which reports through its exit code), and every rendezvous and collective failure the
// launcher and the trainer must turn into a message: a rank that never arrives, a busy port, a master that is not
// there, a peer that dies or hangs mid-run.
#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>

#include "fractrain/dist/launch.h"
#include "fractrain/dist/process_group.h"
#include "gloo_support.h"
#include "test_support.h"

namespace fractrain {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::error_of;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

ProcessGroupOptions options_for(int rank, int port, std::chrono::milliseconds timeout = 10s, int world_size = 2) {
  ProcessGroupOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.local_rank = rank;
  options.master_addr = "127.0.0.1";
  options.master_port = port;
  options.timeout = timeout;
  return options;
}

// A forked process; killed and reaped when the test is done with it, whatever happened.
class Child {
 public:
  // Runs `body` in a child process, which exits with its return value (2 when it throws).
  explicit Child(const std::function<int()>& body) {
    std::cout.flush();
    std::fflush(nullptr);  // or the child repeats what is buffered
    pid_ = ::fork();
    if (pid_ == 0) {
      int code = 2;
      try {
        code = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      std::fflush(nullptr);
      _exit(code);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The child's exit code (-1 when killed by a signal, or still running after `timeout`).
  int exit_code(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = Clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(10ms);
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void kill_now() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// A store on 127.0.0.1:port that the test hosts, as torchrun's agent does; ranks with agent_store connect to it.
std::unique_ptr<c10d::TCPStore> host_store(int port) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = 10s;
  return std::make_unique<c10d::TCPStore>("127.0.0.1", options);
}

// Runs `body` as rank 1 in a child and as rank 0 here; body returns whether its checks held.
void run_two_ranks(const std::function<bool(Communicator&)>& body) {
  const int port = pick_free_loopback_port();
  Child child([&] { return body(*connect_process_group(options_for(1, port))) ? 0 : 1; });
  const auto communicator = connect_process_group(options_for(0, port));
  EXPECT_TRUE(body(*communicator));
  EXPECT_EQ(child.exit_code(), 0) << "rank 1's checks failed (1) or it threw (2; see stderr)";
}

bool same_tensor(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && a.equal(b); }

TEST(DistProcessGroup, AllReduceSumMinMaxOnFloatAndIntTensors) {
  SKIP_WITHOUT_GLOO();
  run_two_ranks([](Communicator& c) {
    const int r = c.rank();
    auto f = at::tensor({r + 1.0f, -(r + 1.0f), 0.5f * static_cast<float>(r)});
    auto i_max = at::tensor({r, 10 - r}, at::kInt);
    auto i_min = at::tensor({r, 10 - r}, at::kInt);
    auto l = at::tensor({int64_t{1} << (40 + r)}, at::kLong);
    c.all_reduce({f, l}, ReduceOp::Sum, "sum");
    c.all_reduce({i_max}, ReduceOp::Max, "max");
    c.all_reduce({i_min}, ReduceOp::Min, "min");
    return c.world_size() == 2 && c.backend_name() == "gloo" && c.distributed() &&
           same_tensor(f, at::tensor({3.0f, -3.0f, 0.5f})) && same_tensor(i_max, at::tensor({1, 10}, at::kInt)) &&
           same_tensor(i_min, at::tensor({0, 9}, at::kInt)) && l.item<int64_t>() == (int64_t{3} << 40);
  });
}

TEST(DistProcessGroup, BroadcastFromEitherRootAndAllGatherInRankOrder) {
  SKIP_WITHOUT_GLOO();
  run_two_ranks([](Communicator& c) {
    const int r = c.rank();
    auto a = at::full({2, 3}, static_cast<float>(r + 5));
    auto b = at::tensor({r * 7}, at::kInt);
    c.broadcast({a, b}, 1, "from rank 1");
    auto z = at::tensor({static_cast<double>(r) + 0.25});
    c.broadcast({z}, 0, "from rank 0");
    const auto gathered = c.all_gather(at::tensor({r, r * 10}, at::kLong), "gather");
    c.barrier("barrier");
    return same_tensor(a, at::full({2, 3}, 6.0f)) && same_tensor(b, at::tensor({7}, at::kInt)) &&
           same_tensor(z, at::tensor({0.25}, at::kDouble)) && gathered.size() == 2 &&
           same_tensor(gathered[0], at::tensor({0, 0}, at::kLong)) && same_tensor(gathered[1], at::tensor({1, 10}, at::kLong));
  });
}

TEST(DistProcessGroup, SeveralAllReducesInFlightAreWaitedInAnyOrder) {
  SKIP_WITHOUT_GLOO();
  run_two_ranks([](Communicator& c) {
    const float r = static_cast<float>(c.rank());
    std::vector<at::Tensor> tensors;
    std::vector<std::unique_ptr<PendingCollective>> pending;
    for (int k = 0; k < 4; ++k) {
      // Different sizes per bucket, as gradient buckets have.
      tensors.push_back(at::full({1000 * (k + 1) + k}, r + static_cast<float>(k)));
      pending.push_back(c.start_all_reduce({tensors.back()}, ReduceOp::Sum, "bucket " + std::to_string(k)));
    }
    for (int k = 3; k >= 0; --k) pending[k]->wait();
    pending[0]->wait();  // waiting twice is allowed
    bool ok = true;
    for (int k = 0; k < 4; ++k) ok = ok && same_tensor(tensors[k], at::full({1000 * (k + 1) + k}, 1.0f + 2.0f * k));
    return ok;
  });
}

TEST(DistProcessGroup, Bfloat16IsRefusedWithTheFixAndTheGroupStaysUsable) {
  SKIP_WITHOUT_GLOO();
  run_two_ranks([](Communicator& c) {
    std::string message;
    try {
      c.all_reduce({at::ones({4}, at::kBFloat16)}, ReduceOp::Sum, "gradients");
    } catch (const Error& e) {
      message = e.what();
    }
    auto x = at::ones({4});
    c.all_reduce({x}, ReduceOp::Sum, "after");
    if (c.rank() == 0) {
      EXPECT_CONTAINS(message, "Gloo cannot all-reduce bfloat16");
    }
    return message.find("rank " + std::to_string(c.rank()) + ": gradients: Gloo cannot all-reduce bfloat16") !=
               std::string::npos &&
           same_tensor(x, at::full({4}, 2.0f));
  });
}

TEST(DistProcessGroup, MeasuresRendezvousAndOneMegabyteAllReduce) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();
  auto body = [](Communicator& c) {
    auto x = at::full({256 * 1024}, static_cast<float>(c.rank() + 1));  // 1 MB of float32
    c.all_reduce({x}, ReduceOp::Sum, "warm-up");
    x.fill_(static_cast<float>(c.rank() + 1));
    const auto start = Clock::now();
    constexpr int kRepeats = 20;
    for (int k = 0; k < kRepeats; ++k) c.all_reduce({x}, ReduceOp::Sum, "1 MB");
    const double ms = 1000.0 * seconds_since(start) / kRepeats;
    // 3 * 2^20 after 20 sums: (1 + 2) doubled 20 times would overflow nothing in float32 at this size.
    const bool ok = x[0].item<float>() == 3.0f * static_cast<float>(1 << kRepeats) / 2.0f;
    if (c.rank() == 0) std::cout << "1 MB allreduce: " << ms << " ms (mean of " << kRepeats << ")\n";
    return ok;
  };
  Child child([&] { return body(*connect_process_group(options_for(1, port))) ? 0 : 1; });
  const auto start = Clock::now();
  const auto communicator = connect_process_group(options_for(0, port));
  std::cout << "rendezvous + Gloo connect: " << 1000.0 * seconds_since(start) << " ms\n";
  EXPECT_TRUE(body(*communicator));
  EXPECT_EQ(child.exit_code(), 0);
}

TEST(DistProcessGroup, AgentStoreRanksAreClientsUnderTheAttemptPrefix) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();
  // The test plays torchrun's agent: it hosts the store, and both ranks (rank 0 included) connect to it.
  const auto hosted = host_store(port);
  c10d::TCPStore& agent = *hosted;
  auto agent_options = [&](int rank) {
    auto options = options_for(rank, port);
    options.agent_store = true;
    options.restart_count = 3;
    return options;
  };
  auto body = [](Communicator& c) {
    auto x = at::tensor({c.rank() + 1});
    c.all_reduce({x}, ReduceOp::Sum, "sum");
    return x.item<int64_t>() == 3;
  };
  Child child([&] { return body(*connect_process_group(agent_options(1))) ? 0 : 1; });
  EXPECT_TRUE(body(*connect_process_group(agent_options(0))));
  EXPECT_EQ(child.exit_code(), 0);
  EXPECT_EQ(agent.add("/worker/attempt_3/fractrain/joined", 0), 2);
}

TEST(DistProcessGroup, RankThatNeverArrivesFailsWithinTheTimeout) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();
  const auto start = Clock::now();
  const std::string message = error_of([&] { connect_process_group(options_for(0, port, 3s)); });
  const double elapsed = seconds_since(start);
  std::cout << message << "\n";  // what a user sees
  EXPECT_CONTAINS(message, "rank 0: only 1 of 2 ranks joined within 3 s at 127.0.0.1:" + std::to_string(port) +
                               "; start the missing ranks or check --master / MASTER_ADDR");
  EXPECT_GE(elapsed, 2.9);
  EXPECT_LT(elapsed, 3.0 + 2.0);
}

TEST(DistProcessGroup, BusyPortOnRankZeroIsNamed) {
  SKIP_WITHOUT_GLOO();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  const auto start = Clock::now();
  const std::string message = error_of([&] { connect_process_group(options_for(0, port, 3s)); });
  ::close(fd);
  std::cout << message << "\n";
  EXPECT_CONTAINS(message, "rank 0: port " + std::to_string(port) + " on 127.0.0.1 is in use: pick another --master port");
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(DistProcessGroup, UnreachableMasterFailsWithinTheTimeout) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();  // nobody listens there: connections are refused
  const auto start = Clock::now();
  const std::string message = error_of([&] { connect_process_group(options_for(1, port, 3s)); });
  const double elapsed = seconds_since(start);
  std::cout << message << "\n";
  EXPECT_CONTAINS(message, "rank 1: could not reach the master at 127.0.0.1:" + std::to_string(port) + " within 3 s");
  EXPECT_LT(elapsed, 3.0 + 2.0);
}

TEST(DistProcessGroup, PeerThatDiesFailsTheSurvivorsCollectiveAtOnce) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();
  Child child([&] {
    auto c = connect_process_group(options_for(1, port));
    auto x = at::ones({8});
    c->all_reduce({x}, ReduceOp::Sum, "first");
    ::pause();  // until the test kills it
    return 0;
  });
  ::signal(SIGPIPE, SIG_DFL);  // as a fresh process has it
  const auto communicator = connect_process_group(options_for(0, port, 10s));
  // Writing to the dead peer must fail the collective with an error, not end this process with SIGPIPE.
  struct sigaction pipe_action {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &pipe_action), 0);
  EXPECT_NE(pipe_action.sa_handler, SIG_DFL);
  EXPECT_NE(pipe_action.sa_handler, SIG_IGN) << "a handler, so that programs started later get the default back";
  auto x = at::ones({8});
  communicator->all_reduce({x}, ReduceOp::Sum, "first");
  child.kill_now();
  const auto start = Clock::now();
  const std::string message = error_of([&] { communicator->all_reduce({x}, ReduceOp::Sum, "gradients"); });
  std::cout << message << "\n";
  EXPECT_CONTAINS(message, "rank 0: gradients failed after ");
  EXPECT_CONTAINS(message, "(a peer died or is stuck; see its output)");
  EXPECT_LT(seconds_since(start), 2.0) << "a dead peer must not wait for the 10 s timeout";
}

TEST(DistProcessGroup, StuckPeerFailsTheSurvivorsCollectiveAtTheTimeout) {
  SKIP_WITHOUT_GLOO();
  const int port = pick_free_loopback_port();
  Child child([&] {
    auto c = connect_process_group(options_for(1, port, 3s));
    auto x = at::ones({8});
    c->all_reduce({x}, ReduceOp::Sum, "first");
    ::pause();  // alive, never joins the next collective
    return 0;
  });
  const auto communicator = connect_process_group(options_for(0, port, 3s));
  auto x = at::ones({8});
  communicator->all_reduce({x}, ReduceOp::Sum, "first");
  const auto start = Clock::now();
  const std::string message = error_of([&] { communicator->all_reduce({x}, ReduceOp::Sum, "gradients"); });
  const double elapsed = seconds_since(start);
  std::cout << message << "\n";
  EXPECT_CONTAINS(message, "rank 0: gradients failed after 3");
  EXPECT_CONTAINS(message, "Timed out");
  EXPECT_GE(elapsed, 2.9);
  EXPECT_LT(elapsed, 3.0 + 3.0);
}

TEST(DistProcessGroup, InvalidOptionsAndWorldSizeOne) {
  EXPECT_CONTAINS(error_of([] { connect_process_group(options_for(2, 29500)); }),
                  "rank 2 is out of range for world size 2: ranks are 0..1");
  auto mpi = options_for(0, 29500);
  mpi.backend = "mpi";
  EXPECT_CONTAINS(error_of([&] { connect_process_group(mpi); }), "backend 'mpi' is unknown: use gloo");
  EXPECT_CONTAINS(error_of([] { connect_process_group(options_for(0, 70000)); }), "master port 70000 is out of range");
  auto nccl = options_for(0, 29500);
  nccl.backend = "nccl";
  if (!process_group_backend_available("nccl")) {
    EXPECT_CONTAINS(error_of([&] { connect_process_group(nccl); }), "this LibTorch has no NCCL");
    // Debian's CPU LibTorch: Gloo is its only backend, so the build must have found its headers. (A CUDA LibTorch
    // from a pip wheel ships none: that build is NCCL only.)
    EXPECT_TRUE(process_group_backend_available("gloo")) << "this build found no Gloo headers (libgloo-dev)";
  } else if (!torch::cuda::is_available()) {
    // A CUDA LibTorch on a machine without a GPU (scripts/torch2_test.sh): both ranks meet in the store, then the
    // NCCL branch stops at its device check with the count, rather than inside NCCL. The test hosts the store (as
    // torchrun's agent would), so that rank 0's failure cannot take it away while rank 1 still polls it.
    const int port = pick_free_loopback_port();
    const auto agent = host_store(port);
    auto nccl_rank = [&](int rank) {
      auto options = options_for(rank, port, 10s);
      options.backend = "nccl";
      options.agent_store = true;
      return error_of([&] { connect_process_group(options); });
    };
    Child child([&] {
      return nccl_rank(1).find("rank 1: local rank 1 needs cuda:1, but this machine has 0 CUDA device(s)") !=
                     std::string::npos
                 ? 0
                 : 1;
    });
    EXPECT_CONTAINS(nccl_rank(0), "rank 0: local rank 0 needs cuda:0, but this machine has 0 CUDA device(s)");
    EXPECT_EQ(child.exit_code(), 0) << "rank 1 did not stop at the device check (see stderr)";
  }
  const auto single = connect_process_group(options_for(0, 29500, 1s, 1));
  EXPECT_EQ(single->world_size(), 1);
  EXPECT_EQ(single->backend_name(), "single");
}

}  // namespace
}  // namespace fractrain
