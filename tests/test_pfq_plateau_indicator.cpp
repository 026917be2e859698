// The loss-plateau indicator of auto PFQ against the paper's Algorithm 1 (DESIGN.md 4.4), driven by synthetic
// window losses: it fires on exactly the window the algorithm names, with an inclusive threshold, decays eps
// after the 1st and 2nd turning points only, needs 5 fresh windows after each, normalises by the running mean
// of the first 10 windows, and stops after the last stage.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fractrain/precision/plateau_indicator.h"

using namespace fractrain;

namespace {

PlateauSettings settings(double eps, double alpha, int turning_points) {
  PlateauSettings s;
  s.eps = eps;
  s.alpha = alpha;
  s.turning_points = turning_points;
  return s;
}

// The 1-based windows at which the indicator fired.
std::vector<int> firing_windows(PlateauIndicator& indicator, const std::vector<double>& losses) {
  std::vector<int> fired;
  for (size_t i = 0; i < losses.size(); ++i)
    if (indicator.observe(losses[i])) fired.push_back(static_cast<int>(i) + 1);
  return fired;
}

}  // namespace

TEST(PfqPlateauIndicator, NeverFiresBeforeFiveWindows) {
  PlateauIndicator indicator(settings(0.05, 0.3, 3));
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(indicator.observe(1.0)) << "window " << i + 1;
    EXPECT_TRUE(indicator.differences().empty());
  }
  EXPECT_TRUE(indicator.observe(1.0)) << "5 equal losses are a plateau";
}

TEST(PfqPlateauIndicator, FiresOnTheFirstWindowWhoseFourPredecessorsAreClose) {
  // Window 5 still sees the 3.0 of window 1; window 6 is the first whose last 5 are flat.
  PlateauIndicator indicator(settings(0.05, 0.3, 3));
  EXPECT_EQ(firing_windows(indicator, {3.0, 1.0, 1.0, 1.0, 1.0, 1.0}), (std::vector<int>{6}));
  // A falling loss: d_j of the oldest value decides, and only the window where it is small enough fires.
  PlateauIndicator falling(settings(0.05, 0.3, 3));
  // Window 7 has d_0 = |1.2 - 1.03| / (8.88 / 7) = 0.134 > eps; window 8 has d_0 = 0.04 / 1.2375 = 0.032.
  EXPECT_EQ(firing_windows(falling, {2.0, 1.5, 1.2, 1.06, 1.05, 1.04, 1.03, 1.02}), (std::vector<int>{8}));
}

TEST(PfqPlateauIndicator, ThresholdIsInclusive) {
  // Chosen so that everything is exact in binary: scale = mean(2.25, 2.25, 1.75, 1.75, 2.0) = 2.0 and every
  // d_j = 0.25 / 2.0 = 0.125.
  const std::vector<double> losses = {2.25, 2.25, 1.75, 1.75, 2.0};
  PlateauIndicator at(settings(0.125, 0.3, 3));
  EXPECT_EQ(firing_windows(at, losses), (std::vector<int>{5})) << "d_j == eps is a plateau";
  PlateauIndicator below(settings(std::nextafter(0.125, 0.0), 0.3, 3));
  EXPECT_TRUE(firing_windows(below, losses).empty()) << "d_j a hair above eps is not";
  EXPECT_EQ(below.differences(), (std::vector<double>{0.125, 0.125, 0.125, 0.125}));
  EXPECT_DOUBLE_EQ(below.scale(), 2.0);
}

TEST(PfqPlateauIndicator, NeedsFiveFreshWindowsAfterATurningPoint) {
  PlateauIndicator indicator(settings(0.05, 1.0, 3));
  EXPECT_EQ(firing_windows(indicator, std::vector<double>(16, 1.0)), (std::vector<int>{5, 10, 15}));
}

TEST(PfqPlateauIndicator, EpsDecaysAfterTheFirstAndSecondTurningPointsOnly) {
  PlateauIndicator indicator(settings(0.05, 0.3, 4));  // 5 stages, to see that the 3rd does not decay it
  const double e0 = 0.05, e1 = e0 * 0.3, e2 = e1 * 0.3;
  const std::vector<double> expected_after = {e1, e2, e2, e2};
  EXPECT_DOUBLE_EQ(indicator.eps(), e0);
  for (int point = 0; point < 4; ++point) {
    for (int w = 0; w < 4; ++w) EXPECT_FALSE(indicator.observe(1.0));
    EXPECT_TRUE(indicator.observe(1.0)) << "turning point " << point + 1;
    EXPECT_DOUBLE_EQ(indicator.eps(), expected_after[point]) << "after turning point " << point + 1;
  }
  // The decayed threshold is the one tested: d_0 = 0.03 / 1.003 = 0.0299 passes eps but not eps * alpha.
  PlateauIndicator decayed(settings(0.05, 0.3, 3));
  EXPECT_EQ(firing_windows(decayed, {1.0, 1.0, 1.0, 1.0, 1.0, 1.03, 1.0, 1.0, 1.0, 1.0}), (std::vector<int>{5}));
}

TEST(PfqPlateauIndicator, ScaleIsTheRunningMeanUntilTenWindowsThenFreezes) {
  PlateauIndicator indicator(settings(1e-9, 0.3, 3));  // never fires on these
  double sum = 0.0;
  for (int w = 1; w <= 14; ++w) {
    EXPECT_FALSE(indicator.observe(static_cast<double>(w)));
    if (w <= 10) sum += w;
    EXPECT_DOUBLE_EQ(indicator.scale(), sum / std::min(w, 10)) << "window " << w;
  }
  EXPECT_DOUBLE_EQ(indicator.scale(), 5.5);
  // The differences are taken against that scale: history 10..14, frozen scale 5.5.
  const std::vector<double> d = indicator.differences();
  ASSERT_EQ(d.size(), 4u);
  for (size_t j = 0; j < 4; ++j) EXPECT_DOUBLE_EQ(d[j], (4.0 - j) / 5.5);
  // Before 10 windows the running mean is used: windows 1..5 give scale 3, d_0 = |1 - 5| / 3.
  PlateauIndicator early(settings(1e-9, 0.3, 3));
  firing_windows(early, {1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(early.differences()[0], 4.0 / 3.0);
}

TEST(PfqPlateauIndicator, StopsAfterTheLastStage) {
  PlateauIndicator two_stages(settings(0.05, 0.3, 1));
  EXPECT_EQ(firing_windows(two_stages, std::vector<double>(30, 1.0)), (std::vector<int>{5}));
  EXPECT_TRUE(two_stages.finished());
  EXPECT_EQ(two_stages.turning_points(), 1);
  PlateauIndicator four_stages(settings(0.05, 1.0, 3));
  EXPECT_EQ(firing_windows(four_stages, std::vector<double>(40, 1.0)), (std::vector<int>{5, 10, 15}));
}

TEST(PfqPlateauIndicator, RestoredStateContinuesIdentically) {
  const std::vector<double> losses = {2.0, 1.7, 1.5, 1.45, 1.44, 1.43, 1.43, 1.42, 1.3, 1.29, 1.29,
                                      1.29, 1.28, 1.28, 1.28, 1.28, 1.28, 1.28, 1.28, 1.28};
  PlateauIndicator whole(settings(0.05, 0.3, 3)), first(settings(0.05, 0.3, 3));
  const std::vector<int> expected = firing_windows(whole, losses);
  ASSERT_EQ(expected, (std::vector<int>{7, 13, 18}));  // the first one right after the split
  std::vector<int> fired;
  for (int w = 1; w <= 6; ++w)
    if (first.observe(losses[w - 1])) fired.push_back(w);
  // Through JSON text, as a checkpoint stores it.
  PlateauIndicator second(settings(0.05, 0.3, 3));
  second.restore(nlohmann::json::parse(first.state().dump()));
  for (int w = 7; w <= static_cast<int>(losses.size()); ++w)
    if (second.observe(losses[w - 1])) fired.push_back(w);
  EXPECT_EQ(fired, expected);
  EXPECT_EQ(second.state(), whole.state());
}
