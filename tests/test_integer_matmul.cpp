// Attention's matmuls on integer codes (include/fractrain/integer/integer_matmul.h, QMatmul under integer
// execution): the products against their float64 specification and the simulated FP32 product on the same
// quantization, the codes against the fake quantizer, the int32 worst case, and the layer against the simulated
// layer. The products are plain loops of fractrain's own, so all of it runs on every CPU. Tolerances as in
// test_integer_conv.cpp: 1e-6 of the largest magnitude against the reference, 1e-4 against FP32.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>

#include "fractrain/integer/integer_matmul.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/nn/qmatmul.h"
#include "fractrain/quant/fake_quantize.h"
#include "integer_test_support.h"

namespace fractrain::integer {
// Its own namespace: the unity build compiles this file with the other integer tests, whose helpers share names.
namespace matmul_test {
namespace {

using namespace test_support;  // integer_test_support.h

TEST(IntegerMatmul, CodesStandForTheFakeQuantizersValues) {
  torch::manual_seed(15);
  const PhiloxStream noise{6, 3};
  for (int bits : {2, 5, 8}) {
    const at::Tensor x = torch::randn({2, 3, 4, 7});
    const QuantRange range = tensor_range(x);
    const MatrixCodes nearest = quantize_matrix(x, bits, range);
    ASSERT_EQ(nearest.codes.sizes(), (std::vector<int64_t>{6, 4, 7}));
    expect_close(dequantize_matrix(nearest).view(x.sizes()), fake_quantize(x, bits, range, snapped()), 1e-6,
                 "nearest, " + std::to_string(bits) + " bits");
    // Stochastic rounding draws each element's noise at its index from noise_first_index on.
    const MatrixCodes stochastic = quantize_matrix(x, bits, range, &noise, 1000);
    QuantizeOptions o = snapped(Rounding::Stochastic, noise);
    o.noise_first_index = 1000;
    expect_close(dequantize_matrix(stochastic).view(x.sizes()), fake_quantize(x, bits, range, o), 1e-6,
                 "stochastic, " + std::to_string(bits) + " bits");
    EXPECT_EQ(transposed(nearest).codes.sizes(), (std::vector<int64_t>{6, 7, 4}));
    EXPECT_TRUE(at::equal(transposed(nearest).codes, nearest.codes.transpose(1, 2)));
  }
}

TEST(IntegerMatmul, DotProductsEqualReferenceAndSimulated) {
  torch::manual_seed(16);
  struct Shape {
    int64_t batch, rows, cols, length;
  };
  for (const Shape s : {Shape{3, 5, 7, 9}, Shape{1, 1, 1, 2}, Shape{4, 16, 16, 32}, Shape{2, 33, 17, 64}}) {
    for (int xbits : {2, 8}) {
      for (int ybits : {3, 8}) {
        const at::Tensor x = torch::rand({s.batch, s.rows, s.length}) - 0.25;  // ranges that exclude 0, and not
        const at::Tensor y = torch::randn({s.batch, s.cols, s.length});
        const MatrixCodes xc = quantize_matrix(x, xbits, tensor_range(x));
        const MatrixCodes yc = quantize_matrix(y, ybits, tensor_range(y));
        const at::Tensor out = dot_products(xc, yc);
        // The weight gradient's kernel forms the same exact integers (its portable form on CPUs without VNNI).
        EXPECT_TRUE(at::equal(out, dot_products(xc, yc, CodeProduct::DotKernel)));
        const std::string what = std::to_string(s.batch) + "x" + std::to_string(s.rows) + "x" +
                                 std::to_string(s.cols) + "x" + std::to_string(s.length) + " at " +
                                 std::to_string(xbits) + "/" + std::to_string(ybits) + " bits";
        expect_close(out, reference::dot_products(xc, yc), 1e-6, what);
        const at::Tensor xq = fake_quantize(x, xbits, tensor_range(x), snapped());
        const at::Tensor yq = fake_quantize(y, ybits, tensor_range(y), snapped());
        expect_close(out, at::bmm(xq, yq.transpose(1, 2)), 1e-4, what + " vs simulated");
      }
    }
  }
}

// Every code at -128 (8 bits): 140,000 products of 128 x 128 overflow int32 (131,071 fit), so the sums are cut
// into int32 chunks and added in int64.
TEST(IntegerMatmul, SumsCannotOverflowInt32) {
  const int64_t length = 140000;
  ASSERT_GT(length * 128 * 128, int64_t{std::numeric_limits<int32_t>::max()});
  const at::Tensor x = torch::zeros({1, 1, length});  // all at lo: code 0, -128 stored
  const MatrixCodes xc = quantize_matrix(x, 8, {0.0f, 1.0f});
  ASSERT_EQ(xc.codes.min().item<int>(), -128);
  const at::Tensor ones = torch::ones({1, 1, length});
  const MatrixCodes yc = quantize_matrix(ones, 8, {0.0f, 1.0f});  // all at hi: 255, stored 127
  // x is 0 everywhere: the corrections must cancel the large code product exactly.
  EXPECT_EQ(dot_products(xc, yc).item<float>(), 0.0f);
  EXPECT_EQ(dot_products(xc, yc, CodeProduct::DotKernel).item<float>(), 0.0f);
  const MatrixCodes top = quantize_matrix(ones, 8, {-1.0f, 1.0f});  // the same large code everywhere
  const int64_t code = top.codes.min().item<int>();
  ASSERT_EQ(code, top.codes.max().item<int>());
  ASSERT_GT(code * code * length, int64_t{std::numeric_limits<int32_t>::max()});
  expect_close(dot_products(top, top), reference::dot_products(top, top), 1e-6, "a large code, 140,000 times");
  EXPECT_EQ(max_exact_terms(128, 128), 131071);
}

QuantizerSettings settings_for(ExecutionMode mode) {
  QuantizerSettings s;
  s.noise_seed = 23;
  s.snap_zero_point = true;
  s.execution = mode;
  return s;
}

struct MatmulRun {
  at::Tensor y, da, db;
};

MatmulRun run(QMatmul& matmul, const at::Tensor& a_value, const at::Tensor& b_value, const at::Tensor& g,
              const PrecisionPlan& plan) {
  const at::Tensor a = a_value.clone().requires_grad_(true), b = b_value.clone().requires_grad_(true);
  const at::Tensor y = matmul.forward(a, b, plan);
  y.backward(g);
  return {y.detach(), a.grad(), b.grad()};
}

// QMatmul under integer execution against the simulated QMatmul on the same quantization: the scores' shape
// (Q K^T) and the context's (A V), at FW-8/BW-8 and FW-4/BW-6; a 16-bit gradient runs the backward simulated.
TEST(IntegerMatmul, AttentionLayerMatchesSimulated) {
  const AssumeIntegerSupportForTests assume;  // no oneDNN product runs here
  torch::manual_seed(17);
  QMatmul integer, simulated;
  integer.set_layer_name("attn");
  simulated.set_layer_name("attn");
  integer.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  simulated.set_quantizer_settings(settings_for(ExecutionMode::Simulated));
  struct Operands {
    at::Tensor a, b;
  };
  const Operands scores{torch::randn({2, 3, 5, 4}), torch::randn({2, 3, 4, 5})};
  const Operands context{torch::softmax(torch::randn({2, 3, 5, 5}), -1), torch::randn({2, 3, 5, 4})};
  for (const Operands& o : {scores, context}) {
    for (auto [fw, bw] : {std::pair{8, 8}, std::pair{4, 6}}) {
      const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(fw, bw));
      std::vector<int64_t> y_sizes = o.a.sizes().vec();
      y_sizes.back() = o.b.size(-1);
      const at::Tensor g = torch::randn(y_sizes);
      const std::string what = c10::str(o.a.sizes()) + " FW" + std::to_string(fw) + "/BW" + std::to_string(bw);
      const MatmulRun x = run(integer, o.a, o.b, g, plan), s = run(simulated, o.a, o.b, g, plan);
      expect_close(x.y, s.y, 1e-4, what + " y");
      expect_close(x.da, s.da, 1e-4, what + " da");
      expect_close(x.db, s.db, 1e-4, what + " db");
    }
  }
  ExecutionCounts counts = integer.execution_counts();
  EXPECT_EQ(counts.forward.integer, 4);
  EXPECT_EQ(counts.error_backward.integer, 4);
  EXPECT_EQ(counts.weight_gradient.integer, 4);
  EXPECT_EQ(counts.forward.simulated + counts.error_backward.simulated + counts.weight_gradient.simulated, 0)
      << counts.last_fallback;

  const PrecisionPlan wide = PrecisionPlan::uniform(Precision::fw_bw(8, 16));
  const at::Tensor g = torch::randn({2, 3, 5, 5});
  const MatmulRun x = run(integer, scores.a, scores.b, g, wide), s = run(simulated, scores.a, scores.b, g, wide);
  expect_close(x.y, s.y, 1e-4, "FW8/BW16 y");
  expect_close(x.da, s.da, 1e-6, "FW8/BW16 da (simulated backward)");
  expect_close(x.db, s.db, 1e-6, "FW8/BW16 db (simulated backward)");
  counts = integer.execution_counts();
  EXPECT_EQ(counts.forward.integer, 5);
  EXPECT_EQ(counts.error_backward.simulated, 1);
  EXPECT_EQ(counts.weight_gradient.simulated, 1);
  EXPECT_NE(counts.last_fallback.find("16-bit gradient"), std::string::npos) << counts.last_fallback;

  // Evaluation: the forward alone, on integers.
  integer.eval();
  simulated.eval();
  torch::NoGradGuard no_grad;
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  expect_close(integer.forward(context.a, context.b, plan), simulated.forward(context.a, context.b, plan), 1e-4,
               "evaluation");
  EXPECT_EQ(integer.execution_counts().forward.integer, 6);
}

}  // namespace
}  // namespace matmul_test
}  // namespace fractrain::integer
