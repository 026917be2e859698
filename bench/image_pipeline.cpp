// Micro benchmarks of the image-folder pipeline per ImageNet-sized image (500 x 375, the typical ILSVRC size):
// JPEG decoding, the training transform (random-resized crop to 224 + flip) and the evaluation transform
// (resize 256 + center crop 224). Their sum bounds the images per second one decoding worker can feed.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "fractrain/data/image_codec.h"
#include "fractrain/data/image_transform.h"

using namespace fractrain;

namespace {

// A photograph-like test image: smooth colour fields with some texture, so the JPEG has realistic entropy.
std::vector<uint8_t> photo_like(int64_t h, int64_t w) {
  std::vector<uint8_t> p(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 80 * std::sin(0.013 * x * (c + 1) + 0.021 * y) + 30 * std::sin(0.37 * x * y / (c + 5));
        p[(y * w + x) * 3 + c] = static_cast<uint8_t>(std::fmin(255.0, std::fmax(0.0, v)));
      }
  return p;
}

const std::vector<uint8_t>& imagenet_sized_jpeg() {
  static const std::vector<uint8_t> jpeg = [] {
    const auto pixels = photo_like(375, 500);
    return encode_jpeg(pixels.data(), 375, 500, 3, 90);
  }();
  return jpeg;
}

void BM_DecodeJpeg500x375(benchmark::State& state) {
  const auto& jpeg = imagenet_sized_jpeg();
  for (auto _ : state) benchmark::DoNotOptimize(decode_image(jpeg, "bench.jpg").pixels.data());
  state.SetItemsProcessed(state.iterations());
}

void BM_TrainTransform224(benchmark::State& state) {
  const RgbImage image = decode_image(imagenet_sized_jpeg(), "bench.jpg");
  const ImageTransformConfig t;
  std::vector<float> out(3 * 224 * 224);
  int64_t sample = 0;
  for (auto _ : state) {
    train_transform(image, t, 1, 0, sample++, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_EvalTransform224(benchmark::State& state) {
  const RgbImage image = decode_image(imagenet_sized_jpeg(), "bench.jpg");
  const ImageTransformConfig t;
  std::vector<float> out(3 * 224 * 224);
  for (auto _ : state) {
    eval_transform(image, t, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_DecodeJpeg500x375)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainTransform224)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EvalTransform224)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
