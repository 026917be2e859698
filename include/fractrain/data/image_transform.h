#pragma once
// The ImageNet transforms, as torchvision defines them, from a decoded RGB image to a normalised float
// [3, S, S] sample:
//   training:   RandomResizedCrop(S, scale, ratio) then RandomHorizontalFlip;
//   evaluation: Resize(R) of the shorter side then CenterCrop(S).
// Resampling is antialiased bilinear (a triangle filter widened by the downscale factor, as PIL's and
// torchvision's antialiased resize), kept in float until the normalisation (no rounding to uint8 between
// the passes). Every random choice is a pure function of (seed, epoch, sample index), so a batch is the same
// whatever the number of decoding threads and after a resume.
#include <array>
#include <cstdint>

#include "fractrain/data/image_codec.h"

namespace fractrain {

struct ImageTransformConfig {
  int64_t crop_size = 224;    // S: the side of every output sample
  int64_t resize_size = 256;  // R: evaluation resizes the shorter side to this before the center crop (R >= S)
  double min_scale = 0.08, max_scale = 1.0;       // RandomResizedCrop: share of the image area
  double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;  // RandomResizedCrop: width / height
  bool horizontal_flip = true;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // ImageNet statistics, in pixel / 255 units
  std::array<float, 3> stddev{0.229f, 0.224f, 0.225f};
};

// A rectangle of pixels: rows [top, top + height), columns [left, left + width).
struct PixelBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// The random choices of the training transform for one sample in one epoch.
struct TrainCropDraw {
  PixelBox box;  // the region of the source image that is resized to S x S
  bool flip = false;
};
// torchvision's RandomResizedCrop.get_params: up to 10 tries of an area share in [min_scale, max_scale] and a
// log-uniform aspect ratio, then a center crop clamped to the ratio range.
TrainCropDraw draw_train_crop(const ImageTransformConfig& t, int64_t height, int64_t width, uint64_t seed,
                              uint64_t epoch, int64_t sample_index);

// Evaluation geometry: the size the shorter side is resized to R (the longer one scaled and truncated, as
// torchvision does) and the S x S center crop within it (offsets rounded half to even, as Python's round).
struct EvalGeometry {
  int64_t resized_height = 0, resized_width = 0;
  PixelBox crop;  // in resized-image pixels
};
EvalGeometry eval_geometry(const ImageTransformConfig& t, int64_t height, int64_t width);

// The general resampler both transforms use: the source region `box` is resized to out_height x out_width
// (the filter never reads outside `box`), and only the output pixels inside `window` are computed, mirrored
// left-right within the window when `flip`, normalised with mean/stddev, and written as planar float
// [3, window.height, window.width] to `out`. Computing only a window is exactly resize-then-crop.
void resample_normalized(const RgbImage& image, const PixelBox& box, int64_t out_height, int64_t out_width,
                         const PixelBox& window, bool flip, const ImageTransformConfig& t, float* out);

// The whole transforms, each writing [3, S, S] floats to `out`.
void train_transform(const RgbImage& image, const ImageTransformConfig& t, uint64_t seed, uint64_t epoch,
                     int64_t sample_index, float* out);
void eval_transform(const RgbImage& image, const ImageTransformConfig& t, float* out);

// Throws fractrain::Error naming the field when a size, scale or ratio range is unusable.
void check_transform_config(const ImageTransformConfig& t);

}  // namespace fractrain
