// Faults a long run must survive: SIGKILL at random points (resuming from the last atomic checkpoint each time
// ends with the weights of an uninterrupted run, bitwise), and a full disk (the save fails loudly, the previous
// checkpoint stays loadable).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::final_weights;
using test_support::quiet;
using test_support::run_cli;

namespace {

const std::string kArgs =
    " --set model.name=resnet8 --set data.train_subset=256 --set data.test_subset=64 --set train.batch_size=32"
    " --set train.iterations=48 --set train.eval_every=16 --set train.checkpoint_every=1 --set train.threads=1";

// Starts `fractrain train` in a child process; returns its pid.
// Resumes from the last checkpoint when there is one. Without one, starts over with --overwrite: a kill that lands
// after the run wrote its config but before its first checkpoint leaves a directory that holds a run (more often
// where start-up is slow, e.g. a LibTorch that loads the CUDA libraries), and a plain start would refuse it.
pid_t start_training(const std::string& dir, bool resume) {
  const std::string command = std::string(FRACTRAIN_CLI_PATH) + " train -q" + kArgs + " --set output.dir=" + dir +
                              (resume ? " --resume" : " --overwrite") + " > " + dir + ".log 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

}  // namespace

TEST(FaultInjection, SigkillAtRandomPointsThenResumeEqualsAnUninterruptedRunBitwise) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir whole("fractrain_kill_whole"), killed("fractrain_kill_split");
  const auto r = run_cli("train -q" + kArgs + " --set output.dir=" + whole.str());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  std::mt19937 rng(2026);  // fixed: the kill points are random but the same on every run of the test
  std::uniform_int_distribution<int> delay_ms(300, 1500);
  int interrupted = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const bool resume = std::filesystem::exists(last_checkpoint_path(killed.str()));
    const pid_t pid = start_training(killed.str(), resume);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++interrupted;
  }
  EXPECT_GE(interrupted, 1) << "no kill landed during training; the runs finished too fast";
  const pid_t pid = start_training(killed.str(), std::filesystem::exists(last_checkpoint_path(killed.str())));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test_support::read_file(killed.str() + ".log");

  const RunConfig a = load_run_config(whole.str() + "/config.toml"), b = load_run_config(killed.str() + "/config.toml");
  const auto wa = final_weights(a), wb = final_weights(b);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, tensor] : wa) EXPECT_TRUE(torch::equal(tensor, wb.at(name))) << name;
  std::printf("%d of 4 kills interrupted training\n", interrupted);
}

TEST(FaultInjection, FullDiskFailsTheSaveLoudlyAndKeepsThePreviousCheckpoint) {
  ASSERT_FASHION_MNIST_INSTALLED();
  // The size of one checkpoint of this run.
  test_support::TempDir probe("fractrain_disk_probe");
  RunConfig c = test_support::small_run(probe.str(), "resnet8", 128, 32);
  c.train.iterations = 1;
  train_run(c, quiet());
  const auto checkpoint_bytes = std::filesystem::file_size(last_checkpoint_path(probe.str()));

  // A tmpfs with room for one checkpoint and a half: the second save cannot write its temporary file.
  test_support::TempDir mount_point("fractrain_disk_full");
  const std::string size = "size=" + std::to_string((checkpoint_bytes * 3 / 2 / 4096 + 1) * 4096);
  if (mount("tmpfs", mount_point.str().c_str(), "tmpfs", 0, size.c_str()) != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { umount(path.c_str()); }
  } unmount{mount_point.str()};

  c.output.dir = mount_point.str() + "/run";
  c.train.iterations = 4;
  c.train.checkpoint_every = 1;
  c.train.eval_every = 100;
  const std::string message = error_of([&] { train_run(c, quiet()); });
  EXPECT_CONTAINS(message, "cannot write");
  EXPECT_CONTAINS(message, "last.ckpt");
  EXPECT_CONTAINS(message, "No space left on device");
  // The checkpoint of step 1 is intact and resumable; no temporary file is left behind.
  auto model = build_model(c, ModelInputSpec{1, 28, 28, 10}, c10::kCPU);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  EXPECT_EQ(load_run_checkpoint(last_checkpoint_path(c.output.dir), *model, sgd).step, 1);
  for (const auto& entry : std::filesystem::directory_iterator(c.output.dir + "/checkpoints"))
    EXPECT_EQ(entry.path().filename(), "last.ckpt") << entry.path();
}

TEST(FaultInjection, KeepsTheLastNCheckpointsAndEachOneLoads) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_keep");
  RunConfig c = test_support::small_run(temp.str(), "resnet8", 128, 32);
  c.train.iterations = 6;
  c.train.checkpoint_every = 1;
  c.train.eval_every = 100;
  c.train.keep_checkpoints = 3;
  train_run(c, quiet());
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(temp.str() + "/checkpoints"))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"best.ckpt", "last.ckpt", "step-00000004.ckpt", "step-00000005.ckpt",
                                             "step-00000006.ckpt"}));
  auto model = build_model(c, ModelInputSpec{1, 28, 28, 10}, c10::kCPU);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  EXPECT_EQ(load_run_checkpoint(temp.str() + "/checkpoints/step-00000004.ckpt", *model, sgd).step, 4);
  EXPECT_EQ(load_run_checkpoint(temp.str() + "/checkpoints/last.ckpt", *model, sgd).step, 6);
}
