#include "fractrain/util/stop_signal.h"

#include <time.h>

#include <csignal>

namespace fractrain {
namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_first_stop_second = 0;  // CLOCK_MONOTONIC seconds of the first request

long monotonic_seconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return static_cast<long>(now.tv_sec);
}

// A second SIGINT exits at once, but only a deliberate one: `timeout -s INT` and process supervisors signal the
// process and then its whole group, which delivers two SIGINTs within the same moment.
void on_signal(int signal) {
  if (g_stop && signal == SIGINT && monotonic_seconds() - g_first_stop_second >= 2) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  if (!g_stop) g_first_stop_second = static_cast<std::sig_atomic_t>(monotonic_seconds());
  g_stop = 1;
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool stop_requested() { return g_stop != 0; }
void clear_stop_request() { g_stop = 0; }

}  // namespace fractrain
