#pragma once
// The loss-plateau indicator of auto PFQ (the paper's Algorithm 1, DESIGN.md 4.4). At the end of every window
// the trainer hands it the window's mean training loss; it keeps the last 5. With 5 present it computes
// d_j = |L_j - L_now| / scale for the 4 older ones, scale being the mean window loss over the first 10 windows
// (the running mean until then, the current window included). When every d_j <= eps a turning point has come:
// the history is cleared (the next test needs 5 fresh windows) and eps *= alpha after the 1st and 2nd turning
// points only. After `turning_points` of them it stops testing.
#include <nlohmann/json.hpp>

#include <vector>

namespace fractrain {

struct PlateauSettings {
  double eps = 0.05;
  double alpha = 0.3;
  int turning_points = 3;  // = stages - 1
};

class PlateauIndicator {
 public:
  static constexpr size_t kHistory = 5;
  static constexpr int kScaleWindows = 10;
  static constexpr int kDecays = 2;  // eps decays after the 1st and 2nd turning points, not later

  explicit PlateauIndicator(PlateauSettings settings = {});

  // Records one window's mean loss; true when this window is a turning point.
  bool observe(double mean_loss);

  double eps() const { return eps_; }  // the threshold of the next test
  double scale() const;
  // The d_j of the last test, oldest first (empty when the last window ran no test).
  const std::vector<double>& differences() const { return differences_; }
  const std::vector<double>& history() const { return history_; }
  int turning_points() const { return fired_; }
  bool finished() const { return fired_ >= settings_.turning_points; }

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // nlohmann::json::exception when damaged

 private:
  PlateauSettings settings_;
  double eps_;
  std::vector<double> history_, differences_;
  double scale_sum_ = 0.0;
  int scale_windows_ = 0;
  int fired_ = 0;
};

}  // namespace fractrain
