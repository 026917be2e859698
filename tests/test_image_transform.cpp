// The ImageNet transforms: torchvision's RandomResizedCrop geometry and seeding, the evaluation
// resize-and-center-crop checked against hand computations, and the antialiased resampler's exact properties.
#include <gtest/gtest.h>

#include <cmath>

#include "fractrain/data/image_transform.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

// Source pixel value = its column (a horizontal ramp 0..w-1), the same in every channel and row.
RgbImage column_ramp(int64_t h, int64_t w) {
  RgbImage image;
  image.height = h;
  image.width = w;
  image.pixels.resize(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) image.pixels[(y * w + x) * 3 + c] = static_cast<uint8_t>(x);
  return image;
}

RgbImage constant_image(int64_t h, int64_t w, std::array<uint8_t, 3> colour) {
  RgbImage image;
  image.height = h;
  image.width = w;
  for (int64_t p = 0; p < h * w; ++p) image.pixels.insert(image.pixels.end(), colour.begin(), colour.end());
  return image;
}

float normalised(const ImageTransformConfig& t, int c, double value) {
  return static_cast<float>((value / 255.0 - t.mean[c]) / t.stddev[c]);
}

}  // namespace

TEST(ImageTransform, EvalGeometryFollowsTorchvision) {
  const ImageTransformConfig t;  // 256 then 224
  // 500 wide, 375 high: the shorter side (height) becomes 256, the width int(256 * 500 / 375) = 341.
  const EvalGeometry g = eval_geometry(t, 375, 500);
  EXPECT_EQ(g.resized_height, 256);
  EXPECT_EQ(g.resized_width, 341);
  EXPECT_EQ(g.crop.top, 16);   // round((256 - 224) / 2)
  EXPECT_EQ(g.crop.left, 58);  // round(58.5) = 58: Python rounds half to even
  EXPECT_EQ(g.crop.height, 224);
  EXPECT_EQ(g.crop.width, 224);
  const EvalGeometry portrait = eval_geometry(t, 640, 480);
  EXPECT_EQ(portrait.resized_width, 256);
  EXPECT_EQ(portrait.resized_height, 341);  // int(256 * 640 / 480) = int(341.33)
  EXPECT_EQ(portrait.crop.top, 58);
}

TEST(ImageTransform, EvalIsTheCenterCropOfTheResizedImage) {
  // A 128 x 256 ramp resized to 64 x 128 (a factor 2), then the center 56 x 56 (rows 4.., columns 36..).
  // Downscaling by 2 widens the triangle filter to 4 taps, weights 1/8, 3/8, 3/8, 1/8 on source columns
  // 2c-1 .. 2c+2 of resized column c; on a ramp (value = column) that is 2c + 0.5.
  ImageTransformConfig t;
  t.resize_size = 64;
  t.crop_size = 56;
  const RgbImage ramp = column_ramp(128, 256);
  std::vector<float> out(3 * 56 * 56);
  eval_transform(ramp, t, out.data());
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 56; y += 11)
      for (int64_t x = 0; x < 56; ++x) {
        const double resized_column = 36 + x;
        EXPECT_NEAR(out[(c * 56 + y) * 56 + x], normalised(t, c, 2 * resized_column + 0.5), 1e-4)
            << "channel " << c << " row " << y << " column " << x;
      }
}

TEST(ImageTransform, ConstantImagesStayConstantUnderEveryCrop) {
  ImageTransformConfig t;
  t.crop_size = 32;
  t.resize_size = 40;
  const RgbImage image = constant_image(50, 70, {10, 128, 250});
  std::vector<float> out(3 * 32 * 32);
  for (int64_t sample = 0; sample < 20; ++sample) {
    train_transform(image, t, /*seed=*/3, /*epoch=*/1, sample, out.data());
    for (int c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 32 * 32; p += 37)
        ASSERT_NEAR(out[c * 32 * 32 + p], normalised(t, c, image.pixels[c]), 1e-4);
  }
  eval_transform(image, t, out.data());
  EXPECT_NEAR(out[0], normalised(t, 0, 10), 1e-4);
  EXPECT_NEAR(out.back(), normalised(t, 2, 250), 1e-4);
}

TEST(ImageTransform, RandomResizedCropDrawsAreSeededAndInRange) {
  const ImageTransformConfig t;
  int flips = 0, differing = 0;
  const int64_t H = 300, W = 400;
  for (int64_t sample = 0; sample < 400; ++sample) {
    const TrainCropDraw d = draw_train_crop(t, H, W, 7, 2, sample);
    const TrainCropDraw again = draw_train_crop(t, H, W, 7, 2, sample);
    EXPECT_EQ(d.box.top, again.box.top);
    EXPECT_EQ(d.box.left, again.box.left);
    EXPECT_EQ(d.flip, again.flip);
    ASSERT_GE(d.box.top, 0);
    ASSERT_GE(d.box.left, 0);
    ASSERT_LE(d.box.top + d.box.height, H);
    ASSERT_LE(d.box.left + d.box.width, W);
    const double share = static_cast<double>(d.box.height * d.box.width) / (H * W);
    const double ratio = static_cast<double>(d.box.width) / d.box.height;
    EXPECT_GT(share, 0.07);  // 0.08 up to rounding of the sides
    EXPECT_LT(ratio, 4.0 / 3.0 * 1.05);
    EXPECT_GT(ratio, 3.0 / 4.0 / 1.05);
    flips += d.flip;
    const TrainCropDraw next_epoch = draw_train_crop(t, H, W, 7, 3, sample);
    differing += next_epoch.box.top != d.box.top || next_epoch.box.width != d.box.width;
  }
  EXPECT_NEAR(flips, 200, 40);
  EXPECT_GT(differing, 390);  // a new epoch draws new crops
}

TEST(ImageTransform, ElongatedImagesFallBackToAClampedCenterCrop) {
  // 10 x 1000: no try of area share >= 0.08 with a ratio <= 4/3 fits 10 rows, so the central 13 x 10 box.
  const TrainCropDraw d = draw_train_crop(ImageTransformConfig{}, 10, 1000, 1, 0, 0);
  EXPECT_EQ(d.box.height, 10);
  EXPECT_EQ(d.box.width, 13);  // round(10 * 4/3)
  EXPECT_EQ(d.box.left, (1000 - 13) / 2);
  EXPECT_EQ(d.box.top, 0);
}

TEST(ImageTransform, FlipMirrorsTheWindowAndUpscalingInterpolatesLinearly) {
  ImageTransformConfig t;
  const RgbImage ramp = column_ramp(4, 8);
  // Upscaling 8 -> 16 columns: no widening, output column o samples source position (o + 0.5) / 2 - 0.5.
  std::vector<float> plain(3 * 4 * 16), mirrored(3 * 4 * 16);
  resample_normalized(ramp, PixelBox{0, 0, 4, 8}, 4, 16, PixelBox{0, 0, 4, 16}, false, t, plain.data());
  resample_normalized(ramp, PixelBox{0, 0, 4, 8}, 4, 16, PixelBox{0, 0, 4, 16}, true, t, mirrored.data());
  for (int64_t o = 1; o < 15; ++o) {  // inside the edges, where the filter is not cut
    EXPECT_NEAR(plain[o], normalised(t, 0, (o + 0.5) / 2 - 0.5), 1e-4) << "column " << o;
    EXPECT_FLOAT_EQ(mirrored[15 - o], plain[o]);
  }
}

TEST(ImageTransform, RejectsUnusableSettings) {
  ImageTransformConfig t;
  t.resize_size = 200;
  EXPECT_CONTAINS(error_of([&] { check_transform_config(t); }), "data.resize_size = 200 is smaller than data.image_size");
  t = ImageTransformConfig{};
  t.min_scale = 0.0;
  EXPECT_CONTAINS(error_of([&] { check_transform_config(t); }), "scale range");
  const RgbImage image = constant_image(4, 4, {0, 0, 0});
  std::vector<float> out(3 * 4 * 4);
  EXPECT_CONTAINS(error_of([&] {
                    resample_normalized(image, PixelBox{0, 0, 5, 4}, 4, 4, PixelBox{0, 0, 4, 4}, false,
                                        ImageTransformConfig{}, out.data());
                  }),
                  "is not inside the 4x4 image");
}
