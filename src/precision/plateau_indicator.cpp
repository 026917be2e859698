#include "fractrain/precision/plateau_indicator.h"

#include <algorithm>
#include <cmath>

namespace fractrain {

PlateauIndicator::PlateauIndicator(PlateauSettings settings) : settings_(settings), eps_(settings.eps) {}

// A run whose loss is exactly 0 has nothing to normalise by; differences are then absolute.
double PlateauIndicator::scale() const {
  const double s = scale_windows_ > 0 ? scale_sum_ / scale_windows_ : 0.0;
  return s > 0.0 ? s : 1.0;
}

bool PlateauIndicator::observe(double mean_loss) {
  differences_.clear();
  if (finished()) return false;
  if (scale_windows_ < kScaleWindows) {  // the scale freezes after the first 10 windows of the run
    scale_sum_ += mean_loss;
    ++scale_windows_;
  }
  history_.push_back(mean_loss);
  if (history_.size() > kHistory) history_.erase(history_.begin());
  if (history_.size() < kHistory) return false;
  const double now = history_.back(), s = scale();
  for (size_t j = 0; j + 1 < history_.size(); ++j) differences_.push_back(std::abs(history_[j] - now) / s);
  const bool plateau = std::all_of(differences_.begin(), differences_.end(), [&](double d) { return d <= eps_; });
  if (!plateau) return false;
  ++fired_;
  history_.clear();
  if (fired_ <= kDecays) eps_ *= settings_.alpha;
  return true;
}

nlohmann::json PlateauIndicator::state() const {
  return {{"eps", eps_},
          {"history", history_},
          {"scale_sum", scale_sum_},
          {"scale_windows", scale_windows_},
          {"turning_points", fired_}};
}

void PlateauIndicator::restore(const nlohmann::json& state) {
  eps_ = state.at("eps").get<double>();
  history_ = state.at("history").get<std::vector<double>>();
  scale_sum_ = state.at("scale_sum").get<double>();
  scale_windows_ = state.at("scale_windows").get<int>();
  fired_ = state.at("turning_points").get<int>();
  differences_.clear();
}

}  // namespace fractrain
