#pragma once
// What the tests of integer execution's passes share (test_integer_conv.cpp, test_integer_depthwise.cpp,
// test_integer_weight_kernel.cpp, test_integer_layers.cpp): integer support assumed on any CPU, convolution shapes
// as table rows, a tolerance check relative to the expected result's largest magnitude, DFQ-like per-sample
// widths, and the fake quantizer's options for integer execution's quantization.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "fractrain/integer/integer_conv.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/fake_quantize.h"

// Integer support, assumed where this machine lacks it: the int8 products then run on exact plain loops
// (integer_support.h), so that the tests of the passes run on every CPU, and on oneDNN where the CPU adds 8-bit
// products exactly.
#define ASSUME_INTEGER_SUPPORT() const ::fractrain::AssumeIntegerSupportForTests assume_integer_support

namespace fractrain::integer::test_support {

// A convolution's shape, written as one row of a table of test cases.
struct ConvCase {
  int64_t batch, in, out, height, width, kernel, stride, padding;
};

inline ConvGeometry geometry(const ConvCase& c) {
  ConvGeometry g;
  g.batch = c.batch;
  g.in_channels = c.in;
  g.out_channels = c.out;
  g.height = c.height;
  g.width = c.width;
  g.kernel = c.kernel;
  g.stride = c.stride;
  g.padding = c.padding;
  return g;
}

// |actual - expected| <= relative * max |expected| everywhere.
inline void expect_close(const at::Tensor& actual, const at::Tensor& expected, double relative,
                         const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double scale = expected.abs().max().item<double>();
  const double error = (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(error, relative * scale + 1e-30) << what << ": max error " << error << " at magnitude " << scale;
}

// `first` bits for every sample, or per sample widths cycling through 2..8 from `first` (DFQ's groups).
inline std::vector<int> widths(int64_t batch, int first, bool per_sample) {
  std::vector<int> bits;
  for (int64_t n = 0; n < batch; ++n) bits.push_back(per_sample ? 2 + static_cast<int>((first + 3 * n) % 7) : first);
  return bits;
}

// The fake quantizer with integer execution's snapped zero points.
inline QuantizeOptions snapped(Rounding rounding = Rounding::Nearest, PhiloxStream noise = {}) {
  QuantizeOptions o;
  o.snap_zero_point = true;
  o.rounding = rounding;
  o.noise = noise;
  return o;
}

}  // namespace fractrain::integer::test_support
