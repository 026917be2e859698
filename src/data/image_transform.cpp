#include "fractrain/data/image_transform.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

// Keeps the crop draws apart from the shuffle, the CIFAR augmentation and every other user of the run seed.
constexpr uint64_t kCropPurpose = 0x5252436f70212121ull;  // "RRCop!!!"
constexpr int kCropTries = 10;                              // torchvision's
constexpr uint64_t kFlipBlock = kCropTries;                 // the Philox block after the tries' blocks

// Python's round(): half to even (the default floating-point rounding mode).
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// The filter taps of one output pixel along one axis: input positions [first, first + weights.size()).
struct Taps {
  int64_t first = 0;
  std::vector<float> weights;
};

// Antialiased bilinear taps for output positions [out_begin, out_end) of an axis of `in_size` source pixels
// (starting at `in_offset`) resized to `out_size`: a triangle filter centred on the output pixel's centre in
// source coordinates, widened by the downscale factor so that every source pixel contributes, normalised to
// sum to 1, and cut at the ends of the source range.
std::vector<Taps> axis_taps(int64_t in_offset, int64_t in_size, int64_t out_size, int64_t out_begin,
                            int64_t out_end) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double widen = std::max(scale, 1.0);
  const double support = widen;  // the triangle's half-width is 1 source pixel, times the widening
  std::vector<Taps> taps;
  taps.reserve(static_cast<size_t>(out_end - out_begin));
  for (int64_t o = out_begin; o < out_end; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(center - support + 0.5)));
    const int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(std::floor(center + support + 0.5)));
    Taps t;
    t.first = in_offset + lo;
    double total = 0.0;
    std::vector<double> w;
    for (int64_t i = lo; i < hi; ++i) {
      const double distance = std::fabs((static_cast<double>(i) + 0.5 - center) / widen);
      const double weight = distance < 1.0 ? 1.0 - distance : 0.0;
      w.push_back(weight);
      total += weight;
    }
    for (double x : w) t.weights.push_back(static_cast<float>(total > 0.0 ? x / total : 0.0));
    taps.push_back(std::move(t));
  }
  return taps;
}

std::string box_text(const PixelBox& b) {
  return "rows " + std::to_string(b.top) + ".." + std::to_string(b.top + b.height) + ", columns " +
         std::to_string(b.left) + ".." + std::to_string(b.left + b.width);
}

}  // namespace

void check_transform_config(const ImageTransformConfig& t) {
  if (t.crop_size < 1 || t.crop_size > 4096)
    throw Error("data.image_size = " + std::to_string(t.crop_size) + " is out of range: use 1..4096 (224 for ImageNet)");
  if (t.resize_size < t.crop_size)
    throw Error("data.resize_size = " + std::to_string(t.resize_size) + " is smaller than data.image_size = " +
                std::to_string(t.crop_size) + ": evaluation resizes the shorter side to resize_size and then "
                "center-crops image_size, so use resize_size >= image_size (256 for 224)");
  if (!(t.min_scale > 0.0 && t.min_scale <= t.max_scale && t.max_scale <= 1.0))
    throw Error("random-resized-crop scale range [" + std::to_string(t.min_scale) + ", " +
                std::to_string(t.max_scale) + "] must satisfy 0 < min <= max <= 1");
  if (!(t.min_ratio > 0.0 && t.min_ratio <= t.max_ratio && std::isfinite(t.max_ratio)))
    throw Error("random-resized-crop ratio range [" + std::to_string(t.min_ratio) + ", " +
                std::to_string(t.max_ratio) + "] must satisfy 0 < min <= max");
  for (size_t c = 0; c < 3; ++c)
    if (!(t.stddev[c] > 0.0f)) throw Error("normalisation stddev[" + std::to_string(c) + "] must be positive");
}

TrainCropDraw draw_train_crop(const ImageTransformConfig& t, int64_t height, int64_t width, uint64_t seed,
                              uint64_t epoch, int64_t sample_index) {
  const PhiloxStream rng{seed, mix_stream(mix_stream(epoch, kCropPurpose), static_cast<uint64_t>(sample_index))};
  TrainCropDraw draw;
  if (t.horizontal_flip) draw.flip = PhiloxStream::word_to_uniform(rng.block(kFlipBlock).v[0]) < 0.5f;
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_min = std::log(t.min_ratio), log_max = std::log(t.max_ratio);
  for (int attempt = 0; attempt < kCropTries; ++attempt) {
    const Philox4x32 r = rng.block(static_cast<uint64_t>(attempt));
    const double target_area =
        area * (t.min_scale + (t.max_scale - t.min_scale) * PhiloxStream::word_to_uniform(r.v[0]));
    const double ratio = std::exp(log_min + (log_max - log_min) * PhiloxStream::word_to_uniform(r.v[1]));
    const int64_t w = round_half_even(std::sqrt(target_area * ratio));
    const int64_t h = round_half_even(std::sqrt(target_area / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      draw.box = {static_cast<int64_t>(r.v[2] % static_cast<uint64_t>(height - h + 1)),
                  static_cast<int64_t>(r.v[3] % static_cast<uint64_t>(width - w + 1)), h, w};
      return draw;
    }
  }
  // No try fitted (a very elongated image): the largest central crop whose ratio is inside the range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < t.min_ratio) {
    h = std::max<int64_t>(1, round_half_even(static_cast<double>(w) / t.min_ratio));
  } else if (in_ratio > t.max_ratio) {
    w = std::max<int64_t>(1, round_half_even(static_cast<double>(h) * t.max_ratio));
  }
  draw.box = {(height - h) / 2, (width - w) / 2, h, w};
  return draw;
}

EvalGeometry eval_geometry(const ImageTransformConfig& t, int64_t height, int64_t width) {
  EvalGeometry g;
  const int64_t shorter = std::min(height, width), longer = std::max(height, width);
  const int64_t resized_longer = static_cast<int64_t>(static_cast<double>(t.resize_size) * longer / shorter);
  g.resized_height = height <= width ? t.resize_size : resized_longer;
  g.resized_width = height <= width ? resized_longer : t.resize_size;
  const int64_t s = t.crop_size;
  g.crop = {round_half_even((g.resized_height - s) / 2.0), round_half_even((g.resized_width - s) / 2.0), s, s};
  return g;
}

void resample_normalized(const RgbImage& image, const PixelBox& box, int64_t out_height, int64_t out_width,
                         const PixelBox& window, bool flip, const ImageTransformConfig& t, float* out) {
  if (box.top < 0 || box.left < 0 || box.height < 1 || box.width < 1 || box.top + box.height > image.height ||
      box.left + box.width > image.width)
    throw Error("resample: source box " + box_text(box) + " is not inside the " + std::to_string(image.width) + "x" +
                std::to_string(image.height) + " image");
  if (window.top < 0 || window.left < 0 || window.height < 1 || window.width < 1 ||
      window.top + window.height > out_height || window.left + window.width > out_width)
    throw Error("resample: output window " + box_text(window) + " is not inside the " + std::to_string(out_width) +
                "x" + std::to_string(out_height) + " output");
  const std::vector<Taps> rows = axis_taps(box.top, box.height, out_height, window.top, window.top + window.height);
  const std::vector<Taps> cols = axis_taps(box.left, box.width, out_width, window.left, window.left + window.width);
  // Horizontal pass over just the source rows the vertical taps read, into floats [row][column][channel].
  const int64_t row_lo = rows.front().first;
  const int64_t row_hi = rows.back().first + static_cast<int64_t>(rows.back().weights.size());
  const int64_t W = window.width;
  std::vector<float> horizontal(static_cast<size_t>((row_hi - row_lo) * W * 3));
  for (int64_t y = row_lo; y < row_hi; ++y) {
    const uint8_t* src = image.pixels.data() + y * image.width * 3;
    float* dst = horizontal.data() + (y - row_lo) * W * 3;
    for (int64_t x = 0; x < W; ++x) {
      const Taps& tap = cols[static_cast<size_t>(x)];
      float r = 0.0f, g = 0.0f, b = 0.0f;
      const uint8_t* p = src + tap.first * 3;
      for (size_t k = 0; k < tap.weights.size(); ++k, p += 3) {
        r += tap.weights[k] * p[0];
        g += tap.weights[k] * p[1];
        b += tap.weights[k] * p[2];
      }
      dst[3 * x] = r;
      dst[3 * x + 1] = g;
      dst[3 * x + 2] = b;
    }
  }
  // Vertical pass, then (v / 255 - mean) / stddev into the planar output.
  const int64_t plane = window.height * W;
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * t.stddev[c]);
    shift[c] = -t.mean[c] / t.stddev[c];
  }
  for (int64_t y = 0; y < window.height; ++y) {
    const Taps& tap = rows[static_cast<size_t>(y)];
    for (int64_t x = 0; x < W; ++x) {
      float acc[3] = {0.0f, 0.0f, 0.0f};
      const float* p = horizontal.data() + ((tap.first - row_lo) * W + x) * 3;
      for (size_t k = 0; k < tap.weights.size(); ++k, p += W * 3) {
        acc[0] += tap.weights[k] * p[0];
        acc[1] += tap.weights[k] * p[1];
        acc[2] += tap.weights[k] * p[2];
      }
      const int64_t ox = flip ? W - 1 - x : x;
      for (int c = 0; c < 3; ++c) out[c * plane + y * W + ox] = acc[c] * scale[c] + shift[c];
    }
  }
}

void train_transform(const RgbImage& image, const ImageTransformConfig& t, uint64_t seed, uint64_t epoch,
                     int64_t sample_index, float* out) {
  const TrainCropDraw d = draw_train_crop(t, image.height, image.width, seed, epoch, sample_index);
  const int64_t s = t.crop_size;
  resample_normalized(image, d.box, s, s, PixelBox{0, 0, s, s}, d.flip, t, out);
}

void eval_transform(const RgbImage& image, const ImageTransformConfig& t, float* out) {
  const EvalGeometry g = eval_geometry(t, image.height, image.width);
  resample_normalized(image, PixelBox{0, 0, image.height, image.width}, g.resized_height, g.resized_width, g.crop,
                      /*flip=*/false, t, out);
}

}  // namespace fractrain
