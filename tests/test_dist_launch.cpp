// The rank environment (torchrun's variables) and the local launcher. The launcher runs inside
// dist_launch_probe (tests/probes), whose ranks are the probe again: they write the environment they got and
// fail, wait or ignore SIGTERM as told, so the launcher's part is tested without the trainer.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "fractrain/dist/launch.h"
#include "test_support.h"

namespace fractrain {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::error_of;

std::optional<DistributedEnvironment> parse(const std::map<std::string, std::string>& vars) {
  return distributed_environment_from([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistEnvironment, UnsetWorldSizeIsASingleProcessRun) { EXPECT_FALSE(parse({{"RANK", "3"}}).has_value()); }

TEST(DistEnvironment, TorchrunVariablesAreParsed) {
  const auto env = parse({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                          {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29400"},
                          {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->local_world_size, 4);
  EXPECT_EQ(env->master_addr, "10.0.0.1");
  EXPECT_EQ(env->master_port, 29400);
  EXPECT_TRUE(env->agent_store);
  EXPECT_EQ(env->restart_count, 2);
  const auto options = env->process_group_options(7s, "gloo");
  EXPECT_EQ(options.rank, 5);
  EXPECT_EQ(options.world_size, 8);
  EXPECT_EQ(options.master_addr, "10.0.0.1");
  EXPECT_EQ(options.timeout, 7s);
  EXPECT_TRUE(options.agent_store);
  EXPECT_EQ(options.restart_count, 2);

  const auto minimal = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}});
  ASSERT_TRUE(minimal.has_value());
  EXPECT_EQ(minimal->local_rank, 1);  // one node: the local rank is the rank
  EXPECT_EQ(minimal->local_world_size, 2);
  EXPECT_EQ(minimal->master_port, 29500);
  EXPECT_FALSE(minimal->agent_store);
  const auto one = parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}});  // no master needed alone
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->world_size, 1);
}

TEST(DistEnvironment, MalformedVariablesAreNamedWithTheirValue) {
  const std::map<std::string, std::string> good{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}};
  auto with = [&](const std::string& name, const std::string& value) {
    auto vars = good;
    vars[name] = value;
    return error_of([&] { parse(vars); });
  };
  EXPECT_CONTAINS(with("RANK", "one"), "RANK='one' is not a whole number");
  EXPECT_CONTAINS(with("RANK", "2"), "RANK=2 is out of range: it must be this process's rank, 0..1 (WORLD_SIZE=2)");
  EXPECT_CONTAINS(with("RANK", "-1"), "RANK=-1 is out of range");
  EXPECT_CONTAINS(with("WORLD_SIZE", "2x"), "WORLD_SIZE='2x' is not a whole number");
  EXPECT_CONTAINS(with("WORLD_SIZE", "0"), "WORLD_SIZE=0 is out of range");
  EXPECT_CONTAINS(with("MASTER_PORT", "70000"), "MASTER_PORT=70000 is out of range: it must be a TCP port, 1..65535");
  EXPECT_CONTAINS(with("MASTER_PORT", ""), "MASTER_PORT='' is not a whole number");
  EXPECT_CONTAINS(with("MASTER_ADDR", ""), "WORLD_SIZE=2 but MASTER_ADDR is empty: set MASTER_ADDR");
  EXPECT_CONTAINS(with("LOCAL_RANK", "3"), "LOCAL_RANK=3 is out of range");
  EXPECT_CONTAINS(with("TORCHELASTIC_USE_AGENT_STORE", "yes"), "TORCHELASTIC_USE_AGENT_STORE='yes' is not a boolean");
  EXPECT_CONTAINS(with("TORCHELASTIC_RESTART_COUNT", "-2"), "TORCHELASTIC_RESTART_COUNT=-2 is out of range");
  EXPECT_CONTAINS(error_of([] { parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}}); }),
                  "WORLD_SIZE=2 but MASTER_ADDR is unset: set MASTER_ADDR to the host of rank 0");
  EXPECT_CONTAINS(error_of([] { parse({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}); }),
                  "WORLD_SIZE=2 is set but RANK is not");
  EXPECT_CONTAINS(error_of([&] {
                    auto vars = good;
                    vars["LOCAL_WORLD_SIZE"] = "2";
                    parse(vars);
                  }),
                  "LOCAL_WORLD_SIZE=2 is set but LOCAL_RANK is not");
}

TEST(DistLaunchRequest, ImpossibleRequestsAreRefused) {
  LaunchRequest request;
  request.nproc = 2;
  EXPECT_NO_THROW(validate_launch_request(request));
  request.nnodes = 2;
  EXPECT_CONTAINS(error_of([&] { validate_launch_request(request); }), "--nnodes 2 needs --master HOST:PORT");
  request.master = "10.0.0.1:29500";
  EXPECT_NO_THROW(validate_launch_request(request));
  request.node_rank = 2;
  EXPECT_CONTAINS(error_of([&] { validate_launch_request(request); }),
                  "--node-rank 2 is out of range for --nnodes 2: use 0..1");
  request.node_rank = 0;
  request.nproc = 0;
  EXPECT_CONTAINS(error_of([&] { validate_launch_request(request); }), "--nproc 0 is invalid");
  EXPECT_CONTAINS(error_of([] { parse_master_address("10.0.0.1"); }), "--master '10.0.0.1' is not HOST:PORT");
  EXPECT_CONTAINS(error_of([] { parse_master_address("h:0"); }), "port 0 is out of range");
  EXPECT_CONTAINS(error_of([] { parse_master_address("h:65536"); }), "out of range");
  EXPECT_CONTAINS(error_of([] { parse_master_address("h:29x"); }), "port '29x' is not a number");
  EXPECT_CONTAINS(error_of([] { parse_master_address("fe80::1:29500"); }), "an IPv6 host needs brackets");
  const auto v6 = parse_master_address("[fe80::1]:29500");
  EXPECT_EQ(v6.host, "fe80::1");
  EXPECT_EQ(v6.port, 29500);
  const int port = pick_free_loopback_port();
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
}

// The probe as a shell command: `launch NPROC GRACE_MS rank DIR MODE`.
std::string probe_launch(int nproc, int grace_ms, const std::string& dir, const std::string& mode) {
  return std::string(FRACTRAIN_DIST_LAUNCH_PROBE_PATH) + " launch " + std::to_string(nproc) + " " +
         std::to_string(grace_ms) + " rank " + dir + " " + mode;
}

std::map<std::string, std::string> env_file(const std::string& path) {
  std::map<std::string, std::string> vars;
  std::istringstream in(test_support::read_file(path));
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return vars;
}

TEST(DistLaunch, EveryRankGetsItsEnvironment) {
  test_support::TempDir dir("dist_launch");
  const auto result = test_support::run_shell(probe_launch(3, 10000, dir.str(), "ok"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  std::string port;
  for (int r = 0; r < 3; ++r) {
    auto vars = env_file(dir.file("env_" + std::to_string(r)));
    EXPECT_EQ(vars["RANK"], std::to_string(r));
    EXPECT_EQ(vars["WORLD_SIZE"], "3");
    EXPECT_EQ(vars["LOCAL_RANK"], std::to_string(r));
    EXPECT_EQ(vars["LOCAL_WORLD_SIZE"], "3");
    EXPECT_EQ(vars["MASTER_ADDR"], "127.0.0.1");
    EXPECT_EQ(vars["OMP_NUM_THREADS"], "2");
    EXPECT_EQ(vars["FRACTRAIN_THREADS"], "2");
    if (r == 0) port = vars["MASTER_PORT"];
    EXPECT_EQ(vars["MASTER_PORT"], port) << "every rank must meet at the same port";
  }
  EXPECT_GT(std::stoi(port.empty() ? "0" : port), 0);
}

TEST(DistLaunch, FailingRankStopsTheOthersAndFailsTheLaunch) {
  test_support::TempDir dir("dist_launch");
  const auto start = Clock::now();
  // A long grace period: the launcher must be back well before it, because the waiting rank stops on SIGTERM.
  const auto result = test_support::run_shell(probe_launch(2, 60000, dir.str(), "fail1"));
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_CONTAINS(result.output, "fractrain: rank 1 (pid ");
  EXPECT_CONTAINS(result.output, ") exited with status 3");
  EXPECT_CONTAINS(result.output, "fractrain: stopping the other 1 rank(s)");
  EXPECT_TRUE(std::filesystem::exists(dir.file("term_0"))) << "rank 0 did not receive SIGTERM\n" << result.output;
  EXPECT_LT(elapsed, 30.0);
}

TEST(DistLaunch, RankThatIgnoresSigtermIsKilledAfterTheGracePeriod) {
  test_support::TempDir dir("dist_launch");
  const auto result = test_support::run_shell(probe_launch(2, 300, dir.str(), "fail1-stuck"));
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_CONTAINS(result.output, ") exited with status 3");
  EXPECT_CONTAINS(result.output, "did not stop within 0.3 s of SIGTERM: sending SIGKILL");
  EXPECT_CONTAINS(result.output, "fractrain: rank 0 (pid ");
  EXPECT_CONTAINS(result.output, ") was killed by signal 9 (SIGKILL)");
}

TEST(DistLaunch, SigtermToTheLauncherReachesEveryRank) {
  test_support::TempDir dir("dist_launch");
  const std::string log = dir.file("launcher.log");
  std::fflush(nullptr);
  const pid_t launcher = fork();
  if (launcher == 0) {
    const std::string command = "exec " + probe_launch(2, 10000, dir.str(), "wait") + " > " + log + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(launcher, 0);
  // Both ranks up (and handling SIGTERM): a loaded machine may take seconds to start them.
  const bool ready = test_support::wait_for(
      [&] { return std::filesystem::exists(dir.file("ready_0")) && std::filesystem::exists(dir.file("ready_1")); },
      60s);
  EXPECT_TRUE(ready);
  ::kill(launcher, SIGTERM);
  int status = 0;
  bool reaped = false;  // wait_for asks once more at the end: the condition must stay true once reaped
  const bool exited = test_support::wait_for(
      [&] { return reaped || (reaped = ::waitpid(launcher, &status, WNOHANG) == launcher); }, 30s);
  if (!exited) {
    ::kill(launcher, SIGKILL);
    ::waitpid(launcher, &status, 0);
  }
  ASSERT_TRUE(exited) << test_support::read_file(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test_support::read_file(log);
  EXPECT_TRUE(std::filesystem::exists(dir.file("term_0")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("term_1")));
  EXPECT_CONTAINS(test_support::read_file(log), "fractrain: received SIGTERM: passing it on to the 2 running rank(s)");
}

}  // namespace
}  // namespace fractrain
