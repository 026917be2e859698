// JPEG and PNG decoding: every stored form comes out as RGB (grayscale replicated, CMYK converted), the
// format is recognised by its bytes rather than its name, and broken files give errors that name them.
#include <gtest/gtest.h>

#include <cstdlib>

#include "fractrain/data/image_codec.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::TempDir;

namespace {

std::vector<uint8_t> gradient_rgb(int64_t h, int64_t w) {
  std::vector<uint8_t> p(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      p[(y * w + x) * 3] = static_cast<uint8_t>(x * 255 / (w - 1));
      p[(y * w + x) * 3 + 1] = static_cast<uint8_t>(y * 255 / (h - 1));
      p[(y * w + x) * 3 + 2] = 128;
    }
  return p;
}

int max_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int(a[i]) - int(b[i])));
  return worst;
}

}  // namespace

TEST(ImageCodec, JpegRoundTripIsCloseAndKeepsTheSize) {
  const auto rgb = gradient_rgb(37, 53);
  const RgbImage image = decode_image(encode_jpeg(rgb.data(), 37, 53, 3, 100), "gradient.jpg");
  EXPECT_EQ(image.height, 37);
  EXPECT_EQ(image.width, 53);
  ASSERT_EQ(image.pixels.size(), rgb.size());
  EXPECT_LE(max_difference(image.pixels, rgb), 3);  // quality 100, 4:4:4: only rounding in the colour transform
}

TEST(ImageCodec, GrayscaleJpegBecomesThreeEqualChannels) {
  std::vector<uint8_t> gray(20 * 30);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i % 251);
  const RgbImage image = decode_image(encode_jpeg(gray.data(), 20, 30, 1, 100), "gray.jpg");
  ASSERT_EQ(image.pixels.size(), gray.size() * 3);
  int worst = 0;
  for (size_t p = 0; p < gray.size(); ++p) {
    EXPECT_EQ(image.pixels[3 * p], image.pixels[3 * p + 1]);
    EXPECT_EQ(image.pixels[3 * p], image.pixels[3 * p + 2]);
    worst = std::max(worst, std::abs(int(image.pixels[3 * p]) - int(gray[p])));
  }
  EXPECT_LE(worst, 2);
}

TEST(ImageCodec, CmykJpegConvertsToRgbByTheInkFormula) {
  // Inks (c, m, y, k) = (0, 100, 200, 50): R = 255 (1 - c)(1 - k), and so on, in 0..255 units.
  std::vector<uint8_t> cmyk(16 * 16 * 4);
  for (size_t p = 0; p < 16 * 16; ++p) {
    cmyk[4 * p] = 0;
    cmyk[4 * p + 1] = 100;
    cmyk[4 * p + 2] = 200;
    cmyk[4 * p + 3] = 50;
  }
  const RgbImage image = decode_image(encode_jpeg(cmyk.data(), 16, 16, 4, 100), "cmyk.jpg");
  const double expected[3] = {255.0 * 205 / 255, 155.0 * 205 / 255, 55.0 * 205 / 255};
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(image.pixels[c], expected[c], 3.0) << "channel " << c;
}

TEST(ImageCodec, PngIsDecodedEvenUnderAJpegName) {
  const auto rgb = gradient_rgb(9, 14);
  const RgbImage image = decode_image(encode_png_rgb(rgb.data(), 9, 14), "disguised.JPEG");
  EXPECT_EQ(image.height, 9);
  EXPECT_EQ(image.width, 14);
  EXPECT_EQ(image.pixels, rgb);  // PNG is lossless
}

TEST(ImageCodec, BrokenFilesAreErrorsNamingThem) {
  const auto rgb = gradient_rgb(64, 64);
  std::vector<uint8_t> jpeg = encode_jpeg(rgb.data(), 64, 64, 3, 90);
  std::vector<uint8_t> truncated(jpeg.begin(), jpeg.begin() + jpeg.size() / 2);
  EXPECT_CONTAINS(error_of([&] { decode_image(truncated, "cut.jpg"); }), "cut.jpg: corrupt or truncated JPEG");
  std::vector<uint8_t> scrambled = jpeg;
  for (size_t i = 2; i < 200; ++i) scrambled[i] = static_cast<uint8_t>(i * 37);
  EXPECT_CONTAINS(error_of([&] { decode_image(scrambled, "scrambled.jpg"); }), "scrambled.jpg");
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_CONTAINS(error_of([&] { decode_image(text, "notes.jpg"); }), "notes.jpg: not a JPEG or PNG image");
  EXPECT_CONTAINS(error_of([&] { decode_image({}, "empty.jpg"); }), "the file is empty");
  std::vector<uint8_t> png = encode_png_rgb(rgb.data(), 64, 64);
  png.resize(png.size() / 2);
  EXPECT_CONTAINS(error_of([&] { decode_image(png, "cut.png"); }), "cut.png");
  EXPECT_CONTAINS(error_of([&] { read_image_file("/nonexistent/x.jpg"); }), "/nonexistent/x.jpg: cannot open");
  // A failure leaves libjpeg mid-stream: the next good file on this thread must still decode.
  EXPECT_EQ(decode_image(jpeg, "good.jpg").height, 64);
}

TEST(ImageCodec, ReadsAFile) {
  TempDir dir("codec");
  const auto rgb = gradient_rgb(10, 12);
  test_support::write_file(dir.file("a.png"), encode_png_rgb(rgb.data(), 10, 12));
  EXPECT_EQ(read_image_file(dir.file("a.png")).pixels, rgb);
}
