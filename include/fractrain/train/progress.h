#pragma once
// The per-iteration progress line: step, epoch, loss, accuracy, throughput and ETA. On a terminal the line is
// redrawn in place; otherwise (logs, CI) one line is printed every `every` steps.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace fractrain {

class ProgressLine {
 public:
  ProgressLine(int64_t total_steps, int64_t every, std::FILE* out = stdout);
  // Called after each training step; `step` counts completed steps (1-based). Counts the step, then shows it.
  void update(int64_t step, double epoch, double loss, double accuracy, double lr, int64_t samples);
  // The two halves of update, for a trainer that reads losses only now and then (train.host_reads = deferred):
  // count every step as it completes (throughput and ETA), show the values whenever they are read. `show`
  // prints only at the steps `every` asks for (every one on a terminal).
  void count_step(int64_t step, int64_t samples);
  void show(int64_t step, double epoch, double loss, double accuracy, double lr);
  // Ends an in-place line before other output.
  void break_line();
  double images_per_second() const;
  static std::string format_duration(double seconds);

 private:
  int64_t total_, every_;
  std::FILE* out_;
  bool tty_;
  bool line_open_ = false;
  std::chrono::steady_clock::time_point start_;
  int64_t first_step_ = -1, samples_ = 0;
};

}  // namespace fractrain
