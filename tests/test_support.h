#pragma once
// Helpers shared by the tests: temporary directories, writing and reading whole files, catching a
// fractrain::Error's message, the real Fashion-MNIST location (and the check real-data tests start with), and
// running the CLI binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fractrain/util/error.h"

// Expects `part` to occur in `text` (both convertible to std::string); prints `text` when it does not.
#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

namespace fractrain::test_support {

// A fresh directory for the running test, named `prefix`_<test name>_<pid> under the system temp directory,
// removed with everything in it when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string test_name = info ? info->name() : "no_test";
    for (char& ch : test_name) {
      if (ch == '/') ch = '_';  // parameterised test names contain '/'
    }
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + test_name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `name` (which may contain '/') inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, replacing it, and creates the parent directories it needs.
inline void write_file(const std::string& path, const std::string& bytes) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ignored;  // a parent that cannot be made shows up as a failed write below
    std::filesystem::create_directories(parent, ignored);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << "could not write " << path;
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_file(path, std::string(bytes.begin(), bytes.end()));
}

// The whole content of `path` ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The message of the fractrain::Error `fn` throws; fails the test (and returns "") when it throws none.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a fractrain::Error";
  return "";
}


inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

inline bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte");
}

inline const char* kFashionMnistMissing =
    "Fashion-MNIST is not installed at /usr/share/datasets/fashion-mnist: run scripts/setup.sh "
    "(apt-get install dataset-fashion-mnist)";

}  // namespace fractrain::test_support

// First line of every test on the real Fashion-MNIST. The setup (scripts/setup.sh, which CI's test command runs)
// installs it, so a missing copy is a broken setup: the test fails naming the fix rather than skipping, and a run
// that checked nothing on real data cannot pass.
#define ASSERT_FASHION_MNIST_INSTALLED()                       \
  ASSERT_TRUE(::fractrain::test_support::have_fashion_mnist()) \
      << ::fractrain::test_support::kFashionMnistMissing

namespace fractrain::test_support {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command and captures its output.
inline CommandResult run_shell(const std::string& shell_command) {
  const std::string command = shell_command + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Runs the fractrain CLI with `args` (a shell fragment).
inline CommandResult run_cli(const std::string& args) { return run_shell(std::string(FRACTRAIN_CLI_PATH) + " " + args); }

// Starts the fractrain CLI with `args` (a shell fragment) in a child process that writes its stdout and stderr to
// `log_path`, and returns at once with the child's pid: the CLI itself (the shell execs it), so signals reach it.
// The caller reaps it with waitpid.
inline pid_t start_cli(const std::string& args, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = std::string("exec ") + FRACTRAIN_CLI_PATH + " " + args + " > " + log_path + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Polls `condition` every 50 ms until it holds or `timeout` has passed; returns whether it holds.
template <class Condition, class Duration>
bool wait_for(Condition condition, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return condition();
}

}  // namespace fractrain::test_support
