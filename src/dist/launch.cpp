// The local launcher: one process per rank, torchrun's environment, and whole-group failure handling: a rank that
// fails takes the others down (a survivor would otherwise wait in a collective until the timeout), and the
// launcher's own SIGINT/SIGTERM reach every rank exactly once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "fractrain/dist/launch.h"
#include "fractrain/util/error.h"

extern char** environ;

namespace fractrain {
namespace {

using Clock = std::chrono::steady_clock;

// Written by the signal handler, read by the wait loop; the pipe wakes the loop's poll().
volatile sig_atomic_t g_received_signal = 0;
volatile sig_atomic_t g_signal_count = 0;
int g_wake_pipe[2] = {-1, -1};

extern "C" void on_launcher_signal(int signal) {
  const int saved_errno = errno;
  g_received_signal = signal;
  g_signal_count = g_signal_count + 1;
  const char byte = 1;
  if (g_wake_pipe[1] >= 0) (void)!::write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

extern "C" void on_child_exit(int) {
  const int saved_errno = errno;
  const char byte = 1;
  if (g_wake_pipe[1] >= 0) (void)!::write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

std::string signal_name(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  return abbreviation ? std::string("SIG") + abbreviation : "unknown signal";
}

// SIGINT, SIGTERM and SIGCHLD handlers for the launcher's lifetime, restored afterwards (the launcher may run
// inside a test process).
class SignalScope {
 public:
  SignalScope() {
    if (::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw Error(fmt::format("launch: could not create a pipe: {}", std::strerror(errno)));
    }
    g_received_signal = 0;
    g_signal_count = 0;
    struct sigaction action {};
    action.sa_handler = on_launcher_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
    struct sigaction child_action {};
    child_action.sa_handler = on_child_exit;  // only wakes the wait loop
    child_action.sa_flags = SA_NOCLDSTOP;
    sigemptyset(&child_action.sa_mask);
    ::sigaction(SIGCHLD, &child_action, &old_chld_);
  }
  ~SignalScope() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGCHLD, &old_chld_, nullptr);
    ::close(g_wake_pipe[0]);
    ::close(g_wake_pipe[1]);
    g_wake_pipe[0] = g_wake_pipe[1] = -1;
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  struct sigaction old_chld_ {};
};

// argv or envp for execve, built before fork (the child may only call async-signal-safe functions).
class CStrings {
 public:
  explicit CStrings(std::vector<std::string> strings) : strings_(std::move(strings)) {
    for (auto& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char* const* get() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

std::vector<std::string> rank_environment(const std::vector<std::pair<std::string, std::string>>& ours) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [key, value] : ours) replaced = replaced || key == name;
    if (!replaced) env.push_back(entry);
  }
  for (const auto& [key, value] : ours) env.push_back(key + "=" + value);
  return env;
}

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
};

void say(const std::string& line) {
  std::fflush(stdout);
  std::fprintf(stderr, "fractrain: %s\n", line.c_str());
  std::fflush(stderr);
}

void signal_running(std::vector<Rank>& ranks, int signal) {
  for (const auto& r : ranks) {
    if (r.running) ::kill(r.pid, signal);
  }
}

}  // namespace

MasterAddress parse_master_address(const std::string& text) {
  const std::string form = "HOST:PORT (for example 10.0.0.1:29500 or [fe80::1]:29500)";
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw Error(fmt::format("--master '{}' is not {}", text, form));
  }
  MasterAddress address;
  address.host = text.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  } else if (address.host.find(':') != std::string::npos) {
    throw Error(fmt::format("--master '{}': an IPv6 host needs brackets: {}", text, form));
  }
  const std::string port = text.substr(colon + 1);
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || value > 65535) {
      throw Error(fmt::format("--master '{}': port '{}' is not a number in 1..65535", text, port));
    }
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) {
    throw Error(fmt::format("--master '{}': port {} is out of range: use 1..65535", text, port));
  }
  address.port = value;
  return address;
}

void validate_launch_request(const LaunchRequest& request) {
  if (request.nproc < 1) throw Error(fmt::format("--nproc {} is invalid: start at least 1 rank per node", request.nproc));
  if (request.nnodes < 1) throw Error(fmt::format("--nnodes {} is invalid: it must be at least 1", request.nnodes));
  if (request.node_rank < 0 || request.node_rank >= request.nnodes) {
    throw Error(fmt::format("--node-rank {} is out of range for --nnodes {}: use 0..{}", request.node_rank,
                            request.nnodes, request.nnodes - 1));
  }
  if (request.master.empty()) {
    if (request.nnodes > 1) {
      throw Error(fmt::format("--nnodes {} needs --master HOST:PORT, an address of node 0 that every node reaches "
                              "(a free loopback port is picked only for a single node)",
                              request.nnodes));
    }
    return;
  }
  parse_master_address(request.master);
}

int pick_free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(fmt::format("launch: could not create a socket: {}", std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // the kernel picks a free one
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) {
    throw Error(fmt::format("launch: could not find a free port on 127.0.0.1: {}: pass --master 127.0.0.1:PORT",
                            std::strerror(error)));
  }
  return ntohs(address.sin_port);
}

int run_local_ranks(const LaunchRequest& request, const std::vector<std::string>& argv_for_ranks,
                    int threads_per_rank, const LaunchOptions& options) {
  validate_launch_request(request);
  if (argv_for_ranks.empty()) throw Error("launch: the ranks' command line is empty (argv[0] at least)");
  if (threads_per_rank < 1) {
    throw Error(fmt::format("launch: {} threads per rank is invalid: use at least 1", threads_per_rank));
  }
  MasterAddress master;
  if (request.master.empty()) {
    master.host = "127.0.0.1";
    master.port = pick_free_loopback_port();
  } else {
    master = parse_master_address(request.master);
  }
  const int world_size = request.nproc * request.nnodes;

  SignalScope signals;
  std::vector<Rank> ranks;
  for (int local = 0; local < request.nproc; ++local) {
    Rank r;
    r.rank = request.node_rank * request.nproc + local;
    const std::string threads = std::to_string(threads_per_rank);
    CStrings envp(rank_environment({{"RANK", std::to_string(r.rank)},
                                    {"WORLD_SIZE", std::to_string(world_size)},
                                    {"LOCAL_RANK", std::to_string(local)},
                                    {"LOCAL_WORLD_SIZE", std::to_string(request.nproc)},
                                    {"MASTER_ADDR", master.host},
                                    {"MASTER_PORT", std::to_string(master.port)},
                                    {"OMP_NUM_THREADS", threads},
                                    {"FRACTRAIN_THREADS", threads}}));
    CStrings argv(argv_for_ranks);
    const pid_t launcher = ::getpid();
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);  // or the child would repeat what is buffered
    const pid_t pid = ::fork();
    if (pid == 0) {
      // A rank of its own process group: a terminal's Ctrl-C reaches it once, through the launcher, not twice.
      ::setpgid(0, 0);
      // The ranks must not outlive a launcher that was killed outright.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) _exit(1);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execve(options.executable.c_str(), argv.get(), envp.get());
      const char message[] = "fractrain: could not execute the rank's program\n";
      (void)!::write(2, message, sizeof(message) - 1);
      _exit(127);
    }
    if (pid < 0) {
      const int error = errno;
      signal_running(ranks, SIGKILL);
      for (auto& started : ranks) ::waitpid(started.pid, nullptr, 0);
      throw Error(fmt::format("launch: could not start rank {}: fork failed: {}", r.rank, std::strerror(error)));
    }
    r.pid = pid;
    r.running = true;
    ranks.push_back(r);
  }

  int result = 0;
  bool stopped = false;  // some rank exited with options.stopped_status
  int handled_signals = 0;
  // Set once the others were asked to stop after a failure (a bool beside the time: GCC 12 warns, wrongly, that an
  // optional<time_point> may be read uninitialized).
  bool kill_pending = false;
  Clock::time_point kill_at{};
  auto running = [&] {
    int n = 0;
    for (const auto& r : ranks) n += r.running ? 1 : 0;
    return n;
  };
  while (running() > 0) {
    for (auto& r : ranks) {
      if (!r.running) continue;
      int status = 0;
      const pid_t done = ::waitpid(r.pid, &status, WNOHANG);
      if (done != r.pid) continue;
      r.running = false;
      int code = 0;
      if (WIFEXITED(status) && options.stopped_status != 0 && WEXITSTATUS(status) == options.stopped_status) {
        // Stopped on request (a signal, --stop-at) with its checkpoint written: the others stop at the same step
        // on their own. The launcher reports the status, but it is not a failure to act on.
        if (result == 0) stopped = true;
        continue;
      }
      if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        code = WEXITSTATUS(status);
        say(fmt::format("rank {} (pid {}) exited with status {}", r.rank, r.pid, code));
      } else if (WIFSIGNALED(status)) {
        code = 128 + WTERMSIG(status);
        say(fmt::format("rank {} (pid {}) was killed by signal {} ({})", r.rank, r.pid, WTERMSIG(status),
                        signal_name(WTERMSIG(status))));
      }
      if (code != 0 && result == 0) {
        result = code;
        // After a forwarded SIGINT/SIGTERM the others are stopping already: a second signal could cut short the
        // checkpoint they are writing.
        if (!kill_pending && handled_signals == 0 && running() > 0) {
          say(fmt::format("stopping the other {} rank(s) (SIGTERM; SIGKILL after {} s)", running(),
                          std::chrono::duration<double>(options.grace_period).count()));
          signal_running(ranks, SIGTERM);
          kill_at = Clock::now() + options.grace_period;
          kill_pending = true;
        }
      }
    }
    const int signal_count = g_signal_count;
    if (signal_count > handled_signals) {
      const int signal = g_received_signal;
      if (handled_signals == 0 && signal_count == 1) {
        say(fmt::format("received {}: passing it on to the {} running rank(s)", signal_name(signal), running()));
        signal_running(ranks, signal);
      } else {
        say(fmt::format("received {} again: killing the {} running rank(s)", signal_name(signal), running()));
        signal_running(ranks, SIGKILL);
      }
      handled_signals = signal_count;
    }
    if (kill_pending && Clock::now() >= kill_at) {
      for (const auto& r : ranks) {
        if (r.running) {
          say(fmt::format("rank {} (pid {}) did not stop within {} s of SIGTERM: sending SIGKILL", r.rank, r.pid,
                          std::chrono::duration<double>(options.grace_period).count()));
        }
      }
      signal_running(ranks, SIGKILL);
      kill_pending = false;
    }
    if (running() == 0) break;
    pollfd wake{g_wake_pipe[0], POLLIN, 0};
    ::poll(&wake, 1, 50);  // SIGCHLD or SIGINT/SIGTERM wake it early; 50 ms bounds a missed wake-up
    char drain[64];
    while (::read(g_wake_pipe[0], drain, sizeof(drain)) > 0) {
    }
  }
  return result == 0 && stopped ? options.stopped_status : result;
}

}  // namespace fractrain
