// Op-level throughput of each integer pass (whole pass: codes, oneDNN product, corrections, layout changes)
// next to oneDNN's FP32 convolution of the same shape, measured side by side in one run: ResNet-20's conv
// shapes at batch 128. GOPS counts 2 x MACs per pass. A second table times each of the weight gradient's
// integer products alone (docs/integer.md): im2col patches, fractrain's own AVX-512 VNNI kernel (where the CPU has
// it), and the choice the layers make among them and oneDNN's swapped convolution.
//
//   bench_integer_ops [--threads 2] [--reps 5] [--bits 8]
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_conv.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/util/allocator_tuning.h"
#include "bench_support.h"

using namespace fractrain;
using namespace fractrain::integer;

int main(int argc, char** argv) {
  int threads = 2, reps = 5, bits = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads") threads = std::stoi(argv[i + 1]);
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else if (k == "--bits") bits = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!integer_support().available) {
    std::fprintf(stderr, "integer execution unavailable: %s\n", integer_support().detail.c_str());
    return 1;
  }
  at::set_num_threads(threads);
  tune_allocator_for_training();  // as the fractrain CLI does
  std::printf("integer kernels: %s, %d threads, %d-bit operands; ms per pass (GOPS), median of %d\n",
              integer_support().detail.c_str(), threads, bits, reps);
  std::printf("%-26s %18s %18s %18s | %18s %18s %18s | %9s %9s\n", "shape (N C->O HxW k s)", "fp32 fwd", "fp32 dX",
              "fp32 dW", "int fwd", "int dX", "int dW", "codes x", "codes dy");
  struct Shape {
    int64_t in, out, size, kernel, stride;
  };
  std::vector<std::string> weight_rows;
  for (const Shape s : {Shape{16, 16, 32, 3, 1}, Shape{16, 32, 32, 3, 2}, Shape{32, 32, 16, 3, 1},
                        Shape{32, 64, 16, 3, 2}, Shape{64, 64, 8, 3, 1}, Shape{16, 32, 32, 1, 2}}) {
    ConvGeometry g;
    g.batch = 128;
    g.in_channels = s.in;
    g.out_channels = s.out;
    g.height = g.width = s.size;
    g.kernel = s.kernel;
    g.stride = s.stride;
    g.padding = s.kernel / 2;
    const double ops = 2.0 * g.batch * g.out_height() * g.out_width() * s.out * s.in * s.kernel * s.kernel;
    const at::Tensor x = torch::relu(torch::randn({g.batch, s.in, s.size, s.size}));
    const at::Tensor w = torch::randn({s.out, s.in, s.kernel, s.kernel});
    const at::Tensor dy = torch::randn({g.batch, s.out, g.out_height(), g.out_width()});
    const std::vector<int> widths(static_cast<size_t>(g.batch), bits);
    const PhiloxStream noise{1, 2};
    auto x_codes = [&] {
      FeatureQuantization q;
      q.sample_bits = widths;
      q.range = tensor_range(x);
      return quantize_features(x, FeatureLayout::ChannelsFirst, q);
    };
    auto dy_codes = [&] {
      FeatureQuantization q;
      q.sample_bits = widths;
      q.range = tensor_range(dy);
      q.noise = &noise;
      q.signed_codes = true;  // as the layers ask: no channel-major copy
      return quantize_features(dy, FeatureLayout::ChannelsFirst, q);
    };
    const std::array<int64_t, 2> stride{s.stride, s.stride}, padding{g.padding, g.padding};
    const double f_fwd = bench::median_seconds(reps, [&] { torch::conv2d(x, w, {}, stride, padding); });
    const double f_dx = bench::median_seconds(reps, [&] {
      at::convolution_backward(dy, x, w, at::nullopt, stride, padding, {1, 1}, false, {0, 0}, 1, {true, false, false});
    });
    const double f_dw = bench::median_seconds(reps, [&] {
      at::convolution_backward(dy, x, w, at::nullopt, stride, padding, {1, 1}, false, {0, 0}, 1, {false, true, false});
    });
    const FeatureCodes xc = x_codes(), gc = dy_codes();
    const double i_fwd = bench::median_seconds(reps, [&] {
      conv_forward(g, x_codes(), quantize_weight(w, bits, 0), {}, FeatureLayout::ChannelsFirst);
    });
    const double i_dx = bench::median_seconds(reps, [&] {
      conv_backward_data(g, dy_codes(), quantize_weight(w, bits, 1), FeatureLayout::ChannelsFirst);
    });
    const double i_dw = bench::median_seconds(reps, [&] { conv_backward_weight(g, xc, gc); });
    // The share of the integer passes that quantizing their inputs takes (x nearest; dy stochastic, with the
    // channel-major copy for the weight gradient).
    const double q_x = bench::median_seconds(reps, [&] { x_codes(); });
    const double q_dy = bench::median_seconds(reps, [&] { dy_codes(); });
    auto cell = [&](double t) { return std::to_string(t * 1e3).substr(0, 6) + " (" + std::to_string(int(ops / t / 1e9)) + ")"; };
    char name[64];
    std::snprintf(name, sizeof name, "%lld %lld->%lld %lldx%lld k%lld s%lld", (long long)g.batch, (long long)s.in,
                  (long long)s.out, (long long)s.size, (long long)s.size, (long long)s.kernel, (long long)s.stride);
    std::printf("%-26s %18s %18s %18s | %18s %18s %18s | %9.3f %9.3f\n", name, cell(f_fwd).c_str(),
                cell(f_dx).c_str(), cell(f_dw).c_str(), cell(i_fwd).c_str(), cell(i_dx).c_str(), cell(i_dw).c_str(),
                q_x * 1e3, q_dy * 1e3);
    auto patch_product = [&] { conv_backward_weight(g, xc, gc, WeightGradientProduct::Patches); };
    const double patches = bench::median_seconds(reps, patch_product);
    auto own_kernel = [&] { conv_backward_weight(g, xc, gc, WeightGradientProduct::Direct); };
    const std::string own =
        cpu_has_avx512_vnni() ? cell(bench::median_seconds(reps, own_kernel)) : std::string("no AVX-512 VNNI");
    char row[256];
    std::snprintf(row, sizeof row, "%-26s %18s %18s %18s %18s", name, cell(f_dw).c_str(), cell(i_dw).c_str(),
                  cell(patches).c_str(), own.c_str());
    weight_rows.push_back(row);
  }
  std::printf("\nweight gradient, ms (GOPS), each integer product with its corrections, from the kept codes:\n");
  std::printf("%-26s %18s %18s %18s %18s\n", "shape (N C->O HxW k s)", "fp32 dW", "int dW (chosen)", "int dW patches",
              "int dW own kernel");
  for (const std::string& row : weight_rows) std::printf("%s\n", row.c_str());
  std::printf("int fwd and int dX include quantizing their operands; int dW starts from the kept codes; codes x and\n"
              "codes dy: ms to quantize the forward's input and the error pass's gradient alone.\n");
  return 0;
}
