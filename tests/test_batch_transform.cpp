// Batch assembly: the fused loop equals the per-sample tensor-op reference bit for bit, the augmentation draws
// have the intended distribution, and nothing depends on the thread count.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <string>
#include <vector>

#include "fractrain/data/batch_transform.h"
#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"
#include "test_support.h"

namespace fractrain {
namespace {

using namespace test_support;

// n random images of c x h x w drawn from Philox (so the test data is the same everywhere).
ImageDataset random_dataset(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  ImageDataset data;
  data.name = "random";
  data.images = at::empty({n, c, h, w}, at::kByte);
  uint8_t* p = data.images.data_ptr<uint8_t>();
  const PhiloxStream rng{seed, 1};
  for (int64_t i = 0; i < data.images.numel(); ++i) p[i] = static_cast<uint8_t>(rng.word(i));
  data.labels = at::arange(n, at::kLong).remainder(10);
  data.num_classes = 10;
  for (int64_t k = 0; k < c; ++k) {
    data.mean.push_back(0.3f + 0.1f * k);
    data.stddev.push_back(0.2f + 0.05f * k);
  }
  return data;
}

std::vector<int64_t> random_indices(int64_t count, int64_t n, uint64_t seed) {
  const PhiloxStream rng{seed, 2};
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(static_cast<int64_t>(rng.below(i, n)));
  return out;
}

TEST(BatchTransform, FusedEqualsReferenceExactly) {
  struct Shape { int64_t c, h, w; };
  for (const Shape s : {Shape{3, 7, 5}, Shape{1, 28, 28}, Shape{3, 32, 32}, Shape{2, 1, 9}}) {
    const ImageDataset data = random_dataset(41, s.c, s.h, s.w, 7);
    for (const int64_t batch : {1, 13}) {
      const std::vector<int64_t> indices = random_indices(batch, data.size(), 100 + batch);
      for (const int padding : {0, 1, 4, 9}) {  // 9 pads more than the 7x5 image is tall
        for (const bool flip : {false, true}) {
          for (const bool augment : {false, true}) {
            const AugmentConfig aug{padding, flip};
            for (const uint64_t epoch : {0, 3}) {
              const at::Tensor fused = assemble_batch(data, indices, aug, augment, 11, epoch);
              const at::Tensor ref = assemble_batch_reference(data, indices, aug, augment, 11, epoch);
              ASSERT_EQ(fused.scalar_type(), at::kFloat);
              ASSERT_EQ(fused.sizes(), (std::vector<int64_t>{batch, s.c, s.h, s.w}));
              ASSERT_TRUE(at::equal(fused, ref)) << "shape " << s.c << "x" << s.h << "x" << s.w << " batch " << batch
                                                 << " padding " << padding << " flip " << flip << " augment "
                                                 << augment << " max diff " << (fused - ref).abs().max().item<float>();
            }
          }
        }
      }
    }
  }
}

TEST(BatchTransform, NormalisesWithThePublishedFormula) {
  const ImageDataset data = random_dataset(5, 3, 4, 6, 3);
  const at::Tensor out = assemble_batch(data, {4, 0}, AugmentConfig{4, true}, /*augment=*/false, 1, 0);
  const auto o = out.accessor<float, 4>();
  const auto im = data.images.accessor<uint8_t, 4>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 6; ++x) {
        EXPECT_FLOAT_EQ(o[0][c][y][x], (im[4][c][y][x] / 255.0f - data.mean[c]) / data.stddev[c]);
        EXPECT_FLOAT_EQ(o[1][c][y][x], (im[0][c][y][x] / 255.0f - data.mean[c]) / data.stddev[c]);
      }
}

TEST(BatchTransform, CropShiftsAndFlipMoveThePixels) {
  // Find a sample whose draw has a known shift and flip, then check single pixels by hand.
  const ImageDataset data = random_dataset(200, 1, 8, 8, 5);
  const AugmentConfig aug{2, true};
  for (int64_t i = 0; i < data.size(); ++i) {
    const AugmentDraw d = draw_augment(aug, 9, 1, i);
    ASSERT_GE(d.shift_y, -2);
    ASSERT_LE(d.shift_y, 2);
    ASSERT_GE(d.shift_x, -2);
    ASSERT_LE(d.shift_x, 2);
    const at::Tensor out = assemble_batch(data, {i}, aug, true, 9, 1);
    const auto o = out.accessor<float, 4>();
    const auto im = data.images.accessor<uint8_t, 4>();
    const float zero = (0.0f - data.mean[0]) / data.stddev[0];
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        const int64_t sy = y + d.shift_y, sx = (d.flip ? 7 - x : x) + d.shift_x;
        const bool inside = sy >= 0 && sy < 8 && sx >= 0 && sx < 8;
        const float expected = inside ? (im[i][0][sy][sx] / 255.0f - data.mean[0]) / data.stddev[0] : zero;
        ASSERT_EQ(o[0][0][y][x], expected) << "sample " << i << " y " << y << " x " << x;
      }
  }
}

TEST(BatchTransform, FlipsAboutHalfTheTimeAndShiftsUniformly) {
  const AugmentConfig aug{4, true};
  const int64_t n = 20000;
  int64_t flips = 0;
  std::vector<int64_t> shift_counts(9, 0);
  for (int64_t i = 0; i < n; ++i) {
    const AugmentDraw d = draw_augment(aug, 123, 2, i);
    flips += d.flip;
    ++shift_counts[d.shift_x + 4];
  }
  // Binomial standard deviation is sqrt(n/4) ~ 71; allow 5 sigma.
  EXPECT_NEAR(flips, n / 2, 360);
  for (const int64_t count : shift_counts) EXPECT_NEAR(count, n / 9.0, 5 * std::sqrt(n / 9.0));

  const AugmentDraw none = draw_augment(AugmentConfig{}, 123, 2, 5);
  EXPECT_EQ(none.shift_x, 0);
  EXPECT_EQ(none.shift_y, 0);
  EXPECT_FALSE(none.flip);
}

TEST(BatchTransform, DrawsDependOnSeedEpochAndSampleOnly) {
  const AugmentConfig aug{4, true};
  int64_t same_epoch_other = 0, same_seed_other = 0;
  for (int64_t i = 0; i < 1000; ++i) {
    const AugmentDraw a = draw_augment(aug, 1, 0, i), b = draw_augment(aug, 1, 0, i);
    EXPECT_EQ(a.shift_x, b.shift_x);
    EXPECT_EQ(a.shift_y, b.shift_y);
    EXPECT_EQ(a.flip, b.flip);
    const AugmentDraw e = draw_augment(aug, 1, 1, i), s = draw_augment(aug, 2, 0, i);
    same_epoch_other += (a.shift_x == e.shift_x && a.shift_y == e.shift_y && a.flip == e.flip);
    same_seed_other += (a.shift_x == s.shift_x && a.shift_y == s.shift_y && a.flip == s.flip);
  }
  // Identical draws by chance have probability 1/162 per sample.
  EXPECT_LT(same_epoch_other, 30);
  EXPECT_LT(same_seed_other, 30);
}

TEST(BatchTransform, IdenticalForOneAndTwoThreads) {
  const ImageDataset data = random_dataset(300, 3, 32, 32, 17);
  const std::vector<int64_t> indices = random_indices(128, data.size(), 4);
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = assemble_batch(data, indices, AugmentConfig{4, true}, true, 5, 6);
  at::set_num_threads(2);
  const at::Tensor two = assemble_batch(data, indices, AugmentConfig{4, true}, true, 5, 6);
  at::set_num_threads(saved);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(BatchTransform, BadInputsThrowClearErrors) {
  ImageDataset data = random_dataset(10, 3, 4, 4, 1);
  EXPECT_NE(error_of([&] { assemble_batch(data, {10}, {}, false, 0, 0); }).find("sample index 10"),
            std::string::npos);
  EXPECT_NE(error_of([&] { assemble_batch(data, {0}, AugmentConfig{-1, false}, true, 0, 0); }).find("crop_padding"),
            std::string::npos);
  data.mean.pop_back();
  EXPECT_NE(error_of([&] { assemble_batch(data, {0}, {}, false, 0, 0); }).find("3 channel(s) but 2 mean"),
            std::string::npos);
  EXPECT_EQ(assemble_batch(random_dataset(3, 1, 2, 2, 1), {}, {}, false, 0, 0).sizes(),
            (std::vector<int64_t>{0, 1, 2, 2}));
}

}  // namespace
}  // namespace fractrain
