// Data-parallel runs that are interrupted or fail: SIGTERM to the launcher checkpoints every rank at one step and a
// resume ends with the uninterrupted run's weights; a rank killed outright takes the others down, the launcher
// exits non-zero, and the last checkpoint resumes to the same weights; a missing peer, an unreachable master, a
// busy port and a batch that does not split end with a message naming the cause, within the timeout.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "fractrain/dist/launch.h"
#include "gloo_support.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::write_config_file;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

// ResNet-8 on 512 samples, global batch 32, 24 steps, a checkpoint every 4 steps.
RunConfig resumable_run(const std::string& dir) {
  RunConfig c = test_support::short_run(dir, "resnet8", 512, 32, 24);
  c.train.checkpoint_every = 4;
  return c;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The pids of a process's children (the launcher's ranks).
std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t child; in >> child;) out.push_back(child);
  return out;
}

bool has_checkpoint(const RunConfig& c) { return fs::exists(last_checkpoint_path(c.output.dir)); }

void expect_equal_weights(const RunConfig& a, const RunConfig& b) {
  const auto wa = test_support::final_weights(a), wb = test_support::final_weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(at::equal(t, wb.at(name))) << name;
}

// Interrupts a 2-rank run with `interrupt(launcher pid)` once it has a checkpoint, checks how the launcher ended,
// resumes it, and compares its final weights with an uninterrupted 2-rank run's, bit for bit.
template <class Interrupt>
void interrupt_resume_and_compare(const std::string& name, Interrupt interrupt, bool expect_failure) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_" + name);
  const RunConfig whole = resumable_run(temp.str() + "/whole");
  const RunConfig cut = resumable_run(temp.str() + "/cut");
  const auto r = test_support::run_cli("train -q -c " + write_config_file(whole) + " --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string log = temp.str() + "/cut.log";
  const pid_t launcher = test_support::start_cli("train -q -c " + write_config_file(cut) + " --nproc 2", log);
  ASSERT_TRUE(test_support::wait_for([&] { return has_checkpoint(cut); }, 120s)) << test_support::read_file(log);
  interrupt(launcher);
  const int code = wait_exit_code(launcher);
  const std::string output = test_support::read_file(log);
  if (expect_failure) {
    EXPECT_NE(code, 0) << output;
    EXPECT_CONTAINS(output, "was killed by signal 9");
  }
  const auto resumed = test_support::run_cli("train -q -c " + write_config_file(cut) + " --nproc 2 --resume");
  ASSERT_EQ(resumed.exit_code, 0) << output << resumed.output;
  EXPECT_CONTAINS(resumed.output, "resumed from");
  expect_equal_weights(whole, cut);
}

// A free loopback port, and one held busy by a listening socket for as long as the object lives.
struct BusyPort {
  int fd = -1, port = 0;
  BusyPort() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd, 1);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~BusyPort() { close(fd); }
};

// One rank of a 2-rank group started by hand (as torchrun would), with a 3 s timeout.
test_support::CommandResult lone_rank(const RunConfig& c, int rank, int port) {
  return test_support::run_shell("WORLD_SIZE=2 RANK=" + std::to_string(rank) +
                                 " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
                                 FRACTRAIN_CLI_PATH + " train -q -c " + write_config_file(c) +
                                 " --set train.comm_timeout_s=3");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST(DataParallelFailures, SigtermToTheLauncherCheckpointsAndTheResumeEndsLikeAnUninterruptedRun) {
  SKIP_WITHOUT_GLOO();
  interrupt_resume_and_compare("sigterm", [](pid_t launcher) { kill(launcher, SIGTERM); }, false);
}

TEST(DataParallelFailures, ARankKilledStopsTheOthersAndTheLastCheckpointResumesToTheSameWeights) {
  SKIP_WITHOUT_GLOO();
  interrupt_resume_and_compare(
      "sigkill",
      [](pid_t launcher) {
        const auto ranks = children_of(launcher);
        ASSERT_EQ(ranks.size(), 2u);
        kill(ranks[1], SIGKILL);
      },
      true);
}

// A rank stopped mid-run (SIGSTOP: alive, connected, silent) while its peer waits by polling: the peer's
// collective still ends at the timeout (the poll gives way to the blocking, timed wait after 20 ms), and the
// launcher ends the run.
TEST(DataParallelFailures, AStoppedPeerEndsTheRunWithinTheTimeoutWhileTheOtherSpins) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_stopped");
  RunConfig c = resumable_run(temp.str() + "/run");
  c.train.comm_wait = "spin";
  c.train.comm_timeout_s = 3;
  const std::string log = temp.str() + "/run.log";
  const pid_t launcher = test_support::start_cli("train -q -c " + write_config_file(c) + " --nproc 2", log);
  ASSERT_TRUE(test_support::wait_for([&] { return has_checkpoint(c); }, 120s)) << test_support::read_file(log);
  const auto ranks = children_of(launcher);
  ASSERT_EQ(ranks.size(), 2u);
  const auto stopped = std::chrono::steady_clock::now();
  kill(ranks[1], SIGSTOP);
  const int code = wait_exit_code(launcher);
  const double seconds = seconds_since(stopped);
  kill(ranks[1], SIGKILL);  // in case the launcher left it (it must not)
  const std::string output = test_support::read_file(log);
  EXPECT_NE(code, 0) << output;
  EXPECT_LT(seconds, 60.0) << output;
  EXPECT_CONTAINS(output, "rank 0: ");
  EXPECT_CONTAINS(output, "failed after");
}

// How a rank waits (polling or blocking) changes when it sees a collective finish, never what it computes.
TEST(DataParallelWaiting, SpinningAndBlockingRanksEndWithTheSameWeights) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_wait");
  RunConfig spin = test_support::short_run(temp.str() + "/spin", "resnet8", 256, 32, 8);
  RunConfig block = test_support::short_run(temp.str() + "/block", "resnet8", 256, 32, 8);
  spin.train.comm_wait = "spin";
  block.train.comm_wait = "block";
  for (const RunConfig* c : {&spin, &block}) {
    const auto r = test_support::run_cli("train -q -c " + write_config_file(*c) + " --nproc 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  expect_equal_weights(spin, block);
}

TEST(DataParallelFailures, APeerThatNeverArrivesEndsTheRunWithinTheTimeout) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_missing_peer");
  const auto start = std::chrono::steady_clock::now();
  const auto r = lone_rank(resumable_run(temp.str() + "/run"), 0, pick_free_loopback_port());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "rank 0");
  EXPECT_CONTAINS(r.output, "1 of 2 ranks");
  EXPECT_LT(seconds_since(start), 30.0);
  EXPECT_FALSE(fs::exists(temp.str() + "/run/checkpoints")) << "nothing is written before the group is complete";
}

TEST(DataParallelFailures, AnUnreachableMasterEndsTheRunWithinTheTimeout) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_no_master");
  const auto start = std::chrono::steady_clock::now();
  const auto r = lone_rank(resumable_run(temp.str() + "/run"), 1, pick_free_loopback_port());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "rank 1");
  EXPECT_CONTAINS(r.output, "master");
  EXPECT_LT(seconds_since(start), 30.0);
}

TEST(DataParallelFailures, ABusyMasterPortIsAClearError) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_busy_port");
  BusyPort busy;
  const RunConfig c = resumable_run(temp.str() + "/run");
  const auto r = test_support::run_cli("train -q -c " + write_config_file(c) +
                                       " --set train.comm_timeout_s=3 --nproc 2 --master 127.0.0.1:" +
                                       std::to_string(busy.port));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, std::to_string(busy.port));
  EXPECT_CONTAINS(r.output, "in use");
}

TEST(DataParallelFailures, ABatchThatDoesNotSplitOverTheRanksIsRefusedBeforeAnyRankStarts) {
  SKIP_WITHOUT_GLOO();
  test_support::TempDir temp("fractrain_dp_batch");
  const RunConfig c = resumable_run(temp.str() + "/run");
  const auto r = test_support::run_cli("train -q -c " + write_config_file(c) + " --nproc 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "train.batch_size = 32 does not split over 3 ranks");
  EXPECT_FALSE(fs::exists(c.output.dir));
}

// The checkpoint of a 2-rank run resumes in one process (the global batch is the config's, so the samples are the
// same), saying so, and in 2 ranks again; another global batch is refused as for any resume.
TEST(DataParallelFailures, ACheckpointOfTwoRanksResumesWithAnotherNumberOfRanks) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dp_world_size");
  const RunConfig c = resumable_run(temp.str() + "/run");
  const std::string config = write_config_file(c);
  const auto first = test_support::run_cli("train -q -c " + config + " --nproc 2 --stop-at 8");
  ASSERT_EQ(first.exit_code, 130) << first.output;
  const auto alone = test_support::run_cli("train -q -c " + config + " --resume --stop-at 16");
  ASSERT_EQ(alone.exit_code, 130) << alone.output;
  EXPECT_CONTAINS(alone.output, "written by 2 rank(s), this run has 1");
  const auto again = test_support::run_cli("train -q -c " + config + " --nproc 2 --resume");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_CONTAINS(again.output, "written by 1 rank(s), this run has 2");
  const auto other_batch = test_support::run_cli("train -q -c " + config + " --nproc 2 --resume --set train.batch_size=64");
  EXPECT_EQ(other_batch.exit_code, 2) << other_batch.output;
  EXPECT_CONTAINS(other_batch.output, "train.batch_size");
}
