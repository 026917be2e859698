#include "fractrain/train/progress.h"

#include <unistd.h>

#include <cmath>

namespace fractrain {

ProgressLine::ProgressLine(int64_t total_steps, int64_t every, std::FILE* out)
    : total_(total_steps), every_(every), out_(out), tty_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()) {}

std::string ProgressLine::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

double ProgressLine::images_per_second() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return elapsed > 0 ? samples_ / elapsed : 0.0;
}

void ProgressLine::update(int64_t step, double epoch, double loss, double accuracy, double lr, int64_t samples) {
  count_step(step, samples);
  show(step, epoch, loss, accuracy, lr);
}

void ProgressLine::count_step(int64_t step, int64_t samples) {
  if (first_step_ < 0) {
    // Rate and ETA count from the first step of this process (a resumed run starts mid-way).
    first_step_ = step - 1;
    start_ = std::chrono::steady_clock::now();
  }
  samples_ += samples;
}

void ProgressLine::show(int64_t step, double epoch, double loss, double accuracy, double lr) {
  const bool due = tty_ || (every_ > 0 && (step % every_ == 0)) || step == total_;
  if (!due || every_ == 0) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = elapsed / std::max<int64_t>(1, step - first_step_);
  const double eta = per_step * static_cast<double>(total_ - step);
  const int width = 20;
  const int filled = static_cast<int>(width * static_cast<double>(step) / std::max<int64_t>(1, total_));
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  std::fprintf(out_, "%s%s step %lld/%lld  epoch %.2f  loss %.4f  acc %.2f%%  lr %.4g  %.0f img/s  ETA %s%s",
               tty_ ? "\r" : "", bar.c_str(), (long long)step, (long long)total_, epoch, loss, 100.0 * accuracy, lr,
               images_per_second(), format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  line_open_ = tty_;
  std::fflush(out_);
}

void ProgressLine::break_line() {
  if (line_open_) std::fputc('\n', out_);
  line_open_ = false;
}

}  // namespace fractrain
