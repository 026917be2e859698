// Attention's matmuls (QMatmul) under integer execution against the simulated FP32 path, side by side in one run:
// the Transformer recipes' shapes (configs/wordnet_transformer_*.toml: batch 16, 4 heads, 64 tokens, head width
// 32; and 8 heads of 64 for a wider model). Each pass includes quantizing its operands, as the layer does; the
// integer products are fractrain's own loops (integer/integer_matmul.h), so this runs on any CPU.
//
//   bench_integer_matmul [--threads 2] [--reps 21]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_support.h"
#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_matmul.h"
#include "fractrain/quant/fake_quantize.h"

using namespace fractrain;
using namespace fractrain::integer;

int main(int argc, char** argv) {
  int threads = 2, reps = 21;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads") threads = std::stoi(argv[i + 1]);
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  std::printf("attention matmuls, %d threads, 8-bit operands and gradient; ms per pass (median of %d), each with the\n"
              "quantization of its operands; ratio = integer / simulated\n", threads, reps);
  std::printf("%-30s %10s %10s %7s | %10s %10s %7s | %12s\n", "shape [B*H, M, K] x [K, N]", "sim fwd", "int fwd",
              "ratio", "sim bwd", "int bwd", "ratio", "VNNI kernel");
  std::printf("(int: the int8 loops the layer runs; VNNI kernel: the products alone, from kept codes, where the CPU "
              "has AVX-512 VNNI)\n");
  struct Shape {
    int64_t matrices, m, k, n;
    const char* what;
  };
  for (const Shape s : {Shape{64, 64, 32, 64, "scores 16x4, T 64, d 32"}, Shape{64, 64, 64, 32, "context"},
                        Shape{128, 128, 64, 128, "scores 16x8, T 128, d 64"}, Shape{128, 128, 128, 64, "context"}}) {
    const at::Tensor a = torch::randn({s.matrices, s.m, s.k}), b = torch::randn({s.matrices, s.k, s.n});
    const at::Tensor g = torch::randn({s.matrices, s.m, s.n});
    const PhiloxStream noise{1, 2};
    QuantizeOptions nearest, stochastic;
    nearest.snap_zero_point = stochastic.snap_zero_point = true;
    stochastic.rounding = Rounding::Stochastic;
    stochastic.noise = noise;
    // Simulated: fake-quantize both operands, FP32 matmul; backward: the gradient, then both products.
    const double sim_fwd = bench::median_seconds(reps, [&] {
      at::bmm(fake_quantize(a, 8, tensor_range(a), nearest), fake_quantize(b, 8, tensor_range(b), nearest));
    });
    const at::Tensor aq = fake_quantize(a, 8, tensor_range(a), nearest);
    const at::Tensor bq = fake_quantize(b, 8, tensor_range(b), nearest);
    const double sim_bwd = bench::median_seconds(reps, [&] {
      const at::Tensor gq = fake_quantize(g, 8, tensor_range(g), stochastic);
      at::bmm(gq, bq.transpose(1, 2));
      at::bmm(aq.transpose(1, 2), gq);
    });
    const double int_fwd = bench::median_seconds(reps, [&] {
      dot_products(quantize_matrix(a, 8, tensor_range(a)), transposed(quantize_matrix(b, 8, tensor_range(b))));
    });
    const MatrixCodes ac = quantize_matrix(a, 8, tensor_range(a)), bc = quantize_matrix(b, 8, tensor_range(b));
    const double int_bwd = bench::median_seconds(reps, [&] {
      const MatrixCodes gc = quantize_matrix(g, 8, tensor_range(g), &noise);
      dot_products(gc, bc);
      dot_products(transposed(ac), transposed(gc));
    });
    // The weight gradient's VNNI kernel on the same products (integer_matmul.h, CodeProduct::DotKernel): measured
    // before the layers may choose it; its portable form elsewhere would only measure the emulation.
    std::string kernel_fwd = "-";
    if (cpu_has_avx512_vnni()) {
      const MatrixCodes bt = transposed(bc);
      char cell[32];
      std::snprintf(cell, sizeof cell, "%.3f",
                    1e3 * bench::median_seconds(reps, [&] { dot_products(ac, bt, CodeProduct::DotKernel); }));
      kernel_fwd = cell;
    }
    char name[64];
    std::snprintf(name, sizeof name, "%lld x %lldx%lld x %lld", (long long)s.matrices, (long long)s.m,
                  (long long)s.k, (long long)s.n);
    std::printf("%-30s %10.3f %10.3f %7.2f | %10.3f %10.3f %7.2f | %12s   %s\n", name, sim_fwd * 1e3, int_fwd * 1e3,
                int_fwd / sim_fwd, sim_bwd * 1e3, int_bwd * 1e3, int_bwd / sim_bwd, kernel_fwd.c_str(), s.what);
  }
  return 0;
}
