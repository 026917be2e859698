// A run's output directory as a new user meets it: a directory that cannot be created or written, the directory
// of a finished run, and two runs started into one directory. Each ends before any training with one
// `fractrain: error:` line naming the path and the fix, and exit code 2; nothing already saved is touched.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include "fractrain/train/run_directory.h"
#include "fractrain/util/directory_lock.h"
#include "run_test_support.h"
#include "test_support.h"

using fractrain::test_support::read_file;
using fractrain::test_support::run_cli;
using fractrain::test_support::TempDir;
using fractrain::test_support::wait_for;
namespace fs = std::filesystem;

namespace {

const std::string kTinyRun = "train -q --set model.name=resnet8 --set data.train_subset=128 --set data.test_subset=64 "
                             "--set train.batch_size=32 --set train.threads=1 ";

void expect_refused(const fractrain::test_support::CommandResult& r, const std::string& path, const std::string& fix) {
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "fractrain: error: ");
  EXPECT_CONTAINS(r.output, path);
  EXPECT_CONTAINS(r.output, fix);
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step "), std::string::npos) << "training started: " << r.output;
}

}  // namespace

TEST(DirectoryLock, ASecondWriterIsRefusedAndNamesTheFirst) {
  TempDir temp("fractrain_lock_twice");
  std::optional<fractrain::DirectoryLock> first;
  first.emplace(temp.str(), "fractrain run", "--set output.dir=PATH");
  const std::string message =
      fractrain::test_support::error_of([&] { fractrain::DirectoryLock(temp.str(), "fractrain run", "--set output.dir=PATH"); });
  EXPECT_CONTAINS(message, temp.str() + " is in use by another fractrain run");
  EXPECT_CONTAINS(message, "process " + std::to_string(::getpid()));
  EXPECT_CONTAINS(message, "--set output.dir=PATH");
  first.reset();  // released: the next writer gets it
  EXPECT_NO_THROW(fractrain::DirectoryLock(temp.str(), "fractrain run", "--set output.dir=PATH"));
}

TEST(DirectoryLock, ALockFileWithoutALiveHolderDoesNotBlock) {
  TempDir temp("fractrain_lock_stale");
  // What a killed run leaves behind: the file, naming a process that no longer holds it.
  std::ofstream(temp.file(fractrain::DirectoryLock::kFileName)) << "process 999999 on elsewhere, since 2020-01-01\n";
  fractrain::DirectoryLock lock(temp.str(), "fractrain run", "--set output.dir=PATH");
  EXPECT_CONTAINS(read_file(lock.lock_path()), "process " + std::to_string(::getpid()));
}

TEST(RunDirectory, OverwriteRemovesTheRunButKeepsTheSweepsFiles) {
  TempDir temp("fractrain_run_dir_overwrite");
  fs::create_directories(temp.file("checkpoints"));
  for (const char* name : {"config.toml", "metrics.jsonl", "summary.json", "checkpoints/last.ckpt", "sweep_run.toml",
                           "train.log", "events.out.tfevents.1.host"})
    std::ofstream(temp.file(name)) << "x";
  EXPECT_TRUE(fractrain::holds_run(temp.str()));
  EXPECT_CONTAINS(fractrain::test_support::error_of(
                      [&] { fractrain::claim_run_directory(temp.str(), fractrain::RunDirectoryUse::Fresh); }),
                  "holds a run already: continue it with --resume, replace it with --overwrite");
  EXPECT_TRUE(fs::exists(temp.file("summary.json")));  // refused: nothing removed
  {
    const auto lock = fractrain::claim_run_directory(temp.str(), fractrain::RunDirectoryUse::Replace);
    std::set<std::string> left;
    for (const auto& entry : fs::directory_iterator(temp.str())) left.insert(entry.path().filename().string());
    EXPECT_EQ(left, (std::set<std::string>{fractrain::DirectoryLock::kFileName, "sweep_run.toml", "train.log"}));
  }
  EXPECT_FALSE(fractrain::holds_run(temp.str()));
  EXPECT_NO_THROW(fractrain::claim_run_directory(temp.str(), fractrain::RunDirectoryUse::Fresh));
}

TEST(RunDirectory, AnOutputDirUnderARegularFileEndsWithItsPathAndExitCode2) {
  TempDir temp("fractrain_run_dir_under_file");
  std::ofstream(temp.file("notes.txt")) << "a file, not a directory\n";
  expect_refused(run_cli(kTinyRun + "--set output.dir=" + temp.file("notes.txt/run")), temp.file("notes.txt/run"),
                 "--set output.dir=PATH");
  expect_refused(run_cli(kTinyRun + "--set output.dir=" + temp.file("notes.txt")), "is a file, not a directory",
                 "--set output.dir=PATH");
}

TEST(RunDirectory, AnOutputDirOnAReadOnlyFileSystemEndsWithItsPathAndExitCode2) {
  TempDir mount_point("fractrain_run_dir_read_only");
  if (::mount("tmpfs", mount_point.str().c_str(), "tmpfs", MS_RDONLY, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount(path.c_str()); }
  } unmount{mount_point.str()};
  // The directory cannot be created, and the existing mount point cannot be written.
  const std::string below = mount_point.file("run");
  auto r = run_cli(kTinyRun + "--set output.dir=" + below);
  expect_refused(r, below, "--set output.dir=PATH");
  EXPECT_CONTAINS(r.output, "Read-only file system");
  r = run_cli(kTinyRun + "--set output.dir=" + mount_point.str());
  expect_refused(r, "cannot write in " + mount_point.str(), "--set output.dir=PATH");
  EXPECT_CONTAINS(r.output, "Read-only file system");
}

TEST(RunDirectory, AFreshRunRefusesAFinishedRunsDirectoryUntilToldToResumeOrOverwrite) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_run_dir_finished");
  const std::string run = kTinyRun + "--set train.iterations=2 --set output.dir=" + temp.str();
  ASSERT_EQ(run_cli(run).exit_code, 0);
  const std::string summary = read_file(temp.file("summary.json"));
  const std::string checkpoint = read_file(temp.file("checkpoints/last.ckpt"));
  const std::string metrics = read_file(temp.file("metrics.jsonl"));

  expect_refused(run_cli(run), temp.str() + "' holds a run already", "continue it with --resume, replace it with --overwrite");
  EXPECT_EQ(read_file(temp.file("summary.json")), summary);
  EXPECT_EQ(read_file(temp.file("checkpoints/last.ckpt")), checkpoint);
  EXPECT_EQ(read_file(temp.file("metrics.jsonl")), metrics);

  // --resume continues it (two more steps), --overwrite replaces it; both together make no sense.
  auto resumed = run_cli(kTinyRun + "--set train.iterations=4 --set output.dir=" + temp.str() + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_CONTAINS(resumed.output, "resumed from");
  auto both = run_cli(run + " --overwrite --resume");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_CONTAINS(both.output, "excludes");
  // A resume may go into a new directory, not over another run.
  TempDir other("fractrain_run_dir_other");
  ASSERT_EQ(run_cli(kTinyRun + "--set train.iterations=2 --set output.dir=" + other.str()).exit_code, 0);
  expect_refused(run_cli("train -q --resume " + other.file("checkpoints/last.ckpt") + " --set train.iterations=4 " +
                         "--set output.dir=" + temp.str()),
                 temp.str() + "' holds another run than the one --resume continues", "resume into that run's directory");
  EXPECT_EQ(fractrain::test_support::read_metrics(temp.str()).back()["step"], 4);  // still the resumed run
  auto replaced = run_cli(run + " --overwrite");
  ASSERT_EQ(replaced.exit_code, 0) << replaced.output;
  EXPECT_CONTAINS(replaced.output, "replacing the run in " + temp.str());
  EXPECT_EQ(fractrain::test_support::read_metrics(temp.str()).back()["step"], 2);
}

// The README's demo command, run twice in a row, replaces its own run (scripts/demo.sh passes --overwrite).
TEST(RunDirectory, TheDemoCommandRunsTwiceInARow) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_run_dir_demo");
  const std::string demo = std::string("train --config ") + FRACTRAIN_SOURCE_DIR +
                           "/configs/fashion_mnist_fw8bw8.toml --overwrite -q --set model.name=resnet8 "
                           "--set data.train_subset=128 --set data.test_subset=64 --set train.iterations=2 "
                           "--set output.dir=" + temp.str();
  for (int i = 0; i < 2; ++i) {
    auto r = run_cli(demo);
    ASSERT_EQ(r.exit_code, 0) << "run " << i + 1 << ": " << r.output;
  }
}

TEST(RunDirectory, ASecondRunIntoALiveRunsDirectoryIsRefusedAndADeadRunsLockDoesNotBlock) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_run_dir_two_writers");
  // The first run trains far longer than the test lasts; it is killed below.
  const std::string first_log = temp.str() + ".first.log";
  const pid_t first = fractrain::test_support::start_cli(
      kTinyRun + "--set train.iterations=1000000 --set output.dir=" + temp.str(), first_log);
  struct Kill {
    pid_t pid;
    ~Kill() {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  } kill_at_exit{first};
  const std::string lock_path = temp.file(fractrain::DirectoryLock::kFileName);
  ASSERT_TRUE(wait_for([&] { return read_file(lock_path).find("process " + std::to_string(first)) != std::string::npos; },
                       std::chrono::minutes(2)))
      << read_file(first_log);

  auto second = run_cli(kTinyRun + "--set train.iterations=2 --set output.dir=" + temp.str());
  expect_refused(second, temp.str() + " is in use by another fractrain run (process " + std::to_string(first),
                 "wait for it to end");
  // Not even --overwrite or --resume takes a live run's directory.
  expect_refused(run_cli(kTinyRun + "--set train.iterations=2 --overwrite --set output.dir=" + temp.str()),
                 "is in use by another fractrain run", "wait for it to end");

  // Killed without a chance to clean up, the first run leaves its lock file; it no longer blocks.
  ::kill(first, SIGKILL);
  ASSERT_EQ(::waitpid(first, nullptr, 0), first);  // gone: its files, and so its lock, are closed
  kill_at_exit.pid = 0;
  EXPECT_TRUE(fs::exists(lock_path));
  auto after = run_cli(kTinyRun + "--set train.iterations=2 --overwrite --set output.dir=" + temp.str());
  EXPECT_EQ(after.exit_code, 0) << after.output;
  fs::remove(first_log);
}

// A run refused for its config (here a malformed --inject-nan) writes nothing, so fixing the config and starting
// again needs neither --resume nor --overwrite.
TEST(RunDirectory, ARunRefusedForItsConfigLeavesTheDirectoryWithoutARun) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_run_dir_refused_config");
  const std::string run = kTinyRun + "--set train.iterations=2 --set output.dir=" + temp.str();
  auto refused = run_cli(run + " --inject-nan x");
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_CONTAINS(refused.output, "STEP:LAYER");
  EXPECT_FALSE(fractrain::holds_run(temp.str()));
  auto fixed = run_cli(run);
  EXPECT_EQ(fixed.exit_code, 0) << fixed.output;
}
