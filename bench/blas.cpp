// What the BLAS LibTorch loaded is worth: GFLOP/s of Linear layers (forward + backward) at the shapes fractrain's
// models use, and the step time of a Transformer-LM training step. The library comes from the dynamic loader
// (libblas.so.3), so this binary measures whichever BLAS it is given; bench/blas_compare.sh runs it alternately
// under the reference BLAS and OpenBLAS and reports the ratios. It prints the library it actually loaded, so a
// comparison cannot measure the same library twice without saying so.
//
//   bench_blas [--threads 1] [--repeats 5] [--min-seconds 0.3] [--only linear|lm]
// Output: one "blas,<kind>,<path>" line, then CSV rows "case,threads,metric,value".
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_support.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/precision.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/util/allocator_tuning.h"
#include "fractrain/util/blas_library.h"

using namespace fractrain;
using namespace fractrain::bench;

namespace {

struct Args {
  int threads = 1;
  int repeats = 5;            // timings per case; the median is reported
  double min_seconds = 0.3;   // each timing runs the case at least this long
  std::string only;           // "linear", "lm" or "" (both)
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--repeats") a.repeats = std::stoi(v);
    else if (k == "--min-seconds") a.min_seconds = std::stod(v);
    else if (k == "--only") a.only = v;
    else {
      std::fprintf(stderr, "bench_blas: unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "bench_blas: option %s needs a value\n", argv[argc - 1]);
    std::exit(2);
  }
  if (a.threads < 1 || a.repeats < 1 || (a.only != "" && a.only != "linear" && a.only != "lm")) {
    std::fprintf(stderr, "bench_blas: --threads and --repeats must be >= 1, --only linear or lm\n");
    std::exit(2);
  }
  return a;
}

// Median seconds per call of `fn` over `repeats` timings, each long enough (min_seconds) to average out the
// clock and scheduler noise of short calls.
template <class Fn>
double median_seconds(const Args& a, Fn&& fn) {
  fn();  // warm-up: allocator, BLAS thread start
  int calls = 1;
  while (time_per_step(calls, fn).seconds * calls < a.min_seconds && calls < (1 << 20)) calls *= 2;
  std::vector<double> times;
  for (int r = 0; r < a.repeats; ++r) times.push_back(time_per_step(calls, fn).seconds);
  return median(times);
}

// A Linear layer of the models, run as in training: y = x W^T + b, then the backward pass, which computes the
// gradients of the input and of the weight: three GEMMs of 2*rows*in*out FLOPs each.
struct LinearShape {
  const char* name;
  int64_t rows, in, out;  // rows: batch (images) or batch * sequence length (tokens)
};

const LinearShape kLinearShapes[] = {
    {"resnet20_cifar_classifier", 128, 64, 10},       // batch 128, 64 features, 10 classes
    {"resnet18_imagenet_classifier", 128, 512, 1000},  // batch 128
    {"lm_wordnet_qkv", 1024, 128, 384},                // configs/wordnet_transformer_*: 16 x 64 tokens, width 128
    {"lm_wordnet_ffn_in", 1024, 128, 512},
    {"lm_wordnet_ffn_out", 1024, 512, 128},
    {"lm_wordnet_head", 1024, 128, 11000},             // tied output projection, ~11k words
    {"lm_base_ffn_in", 2048, 512, 2048},               // configs/wikitext103_transformer_*: width 512, FFN 2048
    {"square_512", 512, 512, 512},                     // issue 16 measured torch::mm at this shape
};

void bench_linear(const Args& a) {
  for (const LinearShape& s : kLinearShapes) {
    torch::manual_seed(0);
    torch::nn::Linear linear(torch::nn::LinearOptions(s.in, s.out));
    const at::Tensor x = torch::randn({s.rows, s.in}).requires_grad_(true);
    const at::Tensor grad_y = torch::randn({s.rows, s.out});
    const double seconds = median_seconds(a, [&] {
      x.mutable_grad() = at::Tensor();
      linear->zero_grad();
      linear->forward(x).backward(grad_y);
    });
    const double flops = 3.0 * 2.0 * static_cast<double>(s.rows) * static_cast<double>(s.in) * static_cast<double>(s.out);
    std::printf("linear_%s,%d,gflops,%.3f\n", s.name, a.threads, flops / seconds / 1e9);
    std::printf("linear_%s,%d,ms,%.4f\n", s.name, a.threads, seconds * 1e3);
  }
}

// One training step (forward, loss, backward, Adam) of configs/wordnet_transformer_fp32.toml's model and batch:
// 2 layers, width 128, 4 heads, FFN 512, 16 sequences of 64 tokens, ~11k words; FP32 and FW-8/BW-8.
void bench_lm_step(const Args& a) {
  const int64_t vocabulary = 11000, sequence = 64, batch = 16;
  ModelInputSpec input;
  input.num_classes = vocabulary;
  input.sequence_length = sequence;
  TransformerLmOptions options;
  options.layers = 2;
  options.width = 128;
  options.heads = 4;
  options.ffn_width = 512;
  torch::manual_seed(0);
  auto model = create_model("transformer-lm", input, options);
  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3).betas({0.9, 0.98}).eps(1e-9));
  const at::Tensor tokens = torch::randint(0, vocabulary, {batch, sequence + 1}, torch::kLong);
  const at::Tensor inputs = tokens.narrow(1, 0, sequence), targets = tokens.narrow(1, 1, sequence);
  const std::vector<std::pair<const char*, Precision>> precisions = {{"fp32", Precision::full()},
                                                                      {"fw8bw8", Precision::fw_bw(8, 8)}};
  for (const auto& [label, precision] : precisions) {
    PrecisionPlan plan = make_static_plan(*model, precision, QuantizationPolicy{});
    const double seconds = median_seconds(a, [&] {
      ++plan.noise_step;
      const at::Tensor logits = model->forward(inputs, plan);
      const at::Tensor loss = torch::cross_entropy_loss(logits.reshape({-1, vocabulary}), targets.reshape({-1}));
      adam.zero_grad();
      loss.backward();
      adam.step();
    });
    std::printf("lm_wordnet_step_%s,%d,ms,%.3f\n", label, a.threads, seconds * 1e3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator_for_training();  // as the fractrain CLI does
  const Args a = parse(argc, argv);
  at::set_num_threads(a.threads);
  const std::optional<BlasLibrary> blas = loaded_blas_library();
  std::printf("blas,%s,%s\n", blas ? to_string(blas->kind) : "none", blas ? blas->path.c_str() : "");
  std::printf("case,threads,metric,value\n");
  if (a.only != "lm") bench_linear(a);
  if (a.only != "linear") bench_lm_step(a);
  return 0;
}
