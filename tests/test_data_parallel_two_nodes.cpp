// Multi-machine data parallelism across a real network: two network namespaces joined by a veth pair stand for
// two machines, each running one rank with --nnodes 2 --node-rank R --master ADDR:PORT on its own address. The
// run must equal the single-machine 2-rank run (--nproc 2) bit for bit: with two ranks every sum over ranks adds
// the same two numbers, whichever machine holds them. Skipped, saying why, where namespaces cannot be created
// (not root, no CAP_NET_ADMIN, no iproute2).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "gloo_support.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::write_config_file;
using namespace std::chrono_literals;

namespace {

// Two namespaces "<tag>a" (10.231.0.1) and "<tag>b" (10.231.0.2) on one veth pair; removed on destruction.
class NamespacePair {
 public:
  NamespacePair() : tag_("fr" + std::to_string(getpid()) + "_") {
    const std::string a = tag_ + "a", b = tag_ + "b";
    const auto r = test_support::run_shell(
        "set -e; ip netns add " + a + "; ip netns add " + b + "; ip link add " + tag_ + "va type veth peer name " +
        tag_ + "vb; ip link set " + tag_ + "va netns " + a + "; ip link set " + tag_ + "vb netns " + b +
        "; ip -n " + a + " addr add 10.231.0.1/24 dev " + tag_ + "va; ip -n " + b + " addr add 10.231.0.2/24 dev " +
        tag_ + "vb; ip -n " + a + " link set " + tag_ + "va up; ip -n " + b + " link set " + tag_ +
        "vb up; ip -n " + a + " link set lo up; ip -n " + b + " link set lo up");
    ok_ = r.exit_code == 0;
    error_ = r.output;
  }
  ~NamespacePair() { test_support::run_shell("ip netns del " + tag_ + "a; ip netns del " + tag_ + "b"); }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string exec(char node) const { return "ip netns exec " + tag_ + node + " "; }

 private:
  std::string tag_;
  bool ok_ = false;
  std::string error_;
};

RunConfig two_node_run(const std::string& dir) { return test_support::short_run(dir, "resnet8", 320, 32, 10); }

}  // namespace

TEST(DataParallelTwoNodes, TwoMachinesOnAVethPairTrainLikeTwoRanksOnOne) {
  SKIP_WITHOUT_GLOO();
  ASSERT_FASHION_MNIST_INSTALLED();
  NamespacePair net;
  if (!net.ok()) GTEST_SKIP() << "cannot create network namespaces here (needs root and iproute2): " << net.error();
  test_support::TempDir temp("fractrain_dp_two_nodes");
  const RunConfig local = two_node_run(temp.str() + "/local");
  const RunConfig nodes = two_node_run(temp.str() + "/nodes");
  const auto r = test_support::run_cli("train -q -c " + write_config_file(local) + " --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // Node 1 (rank 1) writes nothing; node 0 writes the run. Both read the same config file.
  const std::string flags =
      "train -q -c " + write_config_file(nodes) + " --nnodes 2 --master 10.231.0.1:29411 --node-rank ";
  const std::string log0 = temp.str() + "/node0.log", log1 = temp.str() + "/node1.log";
  const auto node = [&](char ns, int rank, const std::string& log) {
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string command = "exec " + net.exec(ns) + FRACTRAIN_CLI_PATH + " " + flags + std::to_string(rank) +
                                  " > " + log + " 2>&1";
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  const pid_t p1 = node('b', 1, log1);  // the non-master first: it must wait for the master to come up
  const pid_t p0 = node('a', 0, log0);
  int s0 = 0, s1 = 0;
  waitpid(p0, &s0, 0);
  waitpid(p1, &s1, 0);
  ASSERT_TRUE(WIFEXITED(s0) && WEXITSTATUS(s0) == 0) << test_support::read_file(log0);
  ASSERT_TRUE(WIFEXITED(s1) && WEXITSTATUS(s1) == 0) << test_support::read_file(log1);

  const auto a = test_support::final_weights(local), b = test_support::final_weights(nodes);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
}
