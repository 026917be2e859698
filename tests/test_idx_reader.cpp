// IDX (MNIST / Fashion-MNIST) reading: exact parsing of generated raw and gzipped files, a clear error naming
// the file for every kind of corruption, and the real Fashion-MNIST when the Debian package is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "fractrain/data/datasets.h"
#include "fractrain/data/idx_reader.h"
#include "fractrain/util/error.h"
#include "test_support.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
using namespace test_support;

// Writes `bytes` to `path`, gzip-compressed or raw.
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    if (!bytes.empty()) {
      ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), int(bytes.size()));
    }
    ASSERT_EQ(gzclose(f), Z_OK);
  } else {
    write_file(path, bytes);
  }
}

void push_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int shift = 24; shift >= 0; shift -= 8) v.push_back(static_cast<uint8_t>(x >> shift));
}

// Pixel (i, r, c) = (7*i + 3*r + c) mod 256: distinct enough to catch any transposition.
uint8_t pixel_value(int64_t i, int64_t r, int64_t c) { return static_cast<uint8_t>((7 * i + 3 * r + c) % 256); }

std::vector<uint8_t> idx_images(uint32_t n, uint32_t rows, uint32_t cols) {
  std::vector<uint8_t> v;
  push_be32(v, 2051);
  push_be32(v, n);
  push_be32(v, rows);
  push_be32(v, cols);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t c = 0; c < cols; ++c) v.push_back(pixel_value(i, r, c));
  return v;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> v;
  push_be32(v, 2049);
  push_be32(v, static_cast<uint32_t>(labels.size()));
  v.insert(v.end(), labels.begin(), labels.end());
  return v;
}

void expect_images_exact(const at::Tensor& images, int64_t n, int64_t rows, int64_t cols) {
  ASSERT_EQ(images.scalar_type(), at::kByte);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{n, 1, rows, cols}));
  ASSERT_TRUE(images.is_contiguous());
  const auto a = images.accessor<uint8_t, 4>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(a[i][0][r][c], pixel_value(i, r, c)) << i << "," << r << "," << c;
}

TEST(IdxReader, ParsesRawImagesExactly) {
  TempDir dir("fractrain_idx");
  write_bytes(dir.file("img"), idx_images(5, 4, 3), false);
  expect_images_exact(read_idx_images(dir.file("img")), 5, 4, 3);
}

TEST(IdxReader, ParsesGzippedImagesExactly) {
  TempDir dir("fractrain_idx");
  write_bytes(dir.file("img.gz"), idx_images(40, 9, 11), true);
  expect_images_exact(read_idx_images(dir.file("img.gz")), 40, 9, 11);
}

TEST(IdxReader, ParsesLabelsRawAndGzipped) {
  TempDir dir("fractrain_idx");
  const std::vector<uint8_t> values = {3, 0, 9, 255, 1};
  write_bytes(dir.file("lab"), idx_labels(values), false);
  write_bytes(dir.file("lab.gz"), idx_labels(values), true);
  for (const std::string name : {"lab", "lab.gz"}) {
    const at::Tensor labels = read_idx_labels(dir.file(name));
    ASSERT_EQ(labels.scalar_type(), at::kLong);
    ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{5}));
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(labels[i].item<int64_t>(), values[i]) << name;
  }
}

TEST(IdxReader, WrongMagicNamesFileAndHintsAtSwap) {
  TempDir dir("fractrain_idx");
  write_bytes(dir.file("labels-as-images"), idx_labels({1, 2}), false);
  const std::string msg = error_of([&] { read_idx_images(dir.file("labels-as-images")); });
  EXPECT_NE(msg.find(dir.file("labels-as-images")), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  EXPECT_NE(msg.find("swapped"), std::string::npos) << msg;

  std::vector<uint8_t> html(64, 'x');
  const std::string page = "<!DOCTYPE html>";
  std::copy(page.begin(), page.end(), html.begin());
  write_bytes(dir.file("page.gz"), html, true);
  const std::string msg2 = error_of([&] { read_idx_labels(dir.file("page.gz")); });
  EXPECT_NE(msg2.find("page.gz"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("HTML"), std::string::npos) << msg2;
}

TEST(IdxReader, TruncatedRawAndGzippedFilesNameTheSizes) {
  TempDir dir("fractrain_idx");
  std::vector<uint8_t> bytes = idx_images(10, 28, 28);
  bytes.resize(1000);
  write_bytes(dir.file("short"), bytes, false);
  write_bytes(dir.file("short.gz"), bytes, true);
  for (const std::string name : {"short", "short.gz"}) {
    const std::string msg = error_of([&] { read_idx_images(dir.file(name)); });
    EXPECT_NE(msg.find(dir.file(name) + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    EXPECT_NE(msg.find("10 images of 28x28 (7856 bytes)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1000 bytes"), std::string::npos) << msg;
  }
}

TEST(IdxReader, TruncatedGzipStreamIsReported) {
  TempDir dir("fractrain_idx");
  write_bytes(dir.file("full.gz"), idx_images(50, 28, 28), true);
  const auto size = fs::file_size(dir.file("full.gz"));
  fs::copy_file(dir.file("full.gz"), dir.file("cut.gz"));
  fs::resize_file(dir.file("cut.gz"), size / 2);
  const std::string msg = error_of([&] { read_idx_images(dir.file("cut.gz")); });
  EXPECT_NE(msg.find(dir.file("cut.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("re-download"), std::string::npos) << msg;
}

TEST(IdxReader, TrailingBytesAreRejected) {
  TempDir dir("fractrain_idx");
  std::vector<uint8_t> images = idx_images(3, 4, 4);
  images.push_back(0);
  images.push_back(0);
  write_bytes(dir.file("img"), images, false);
  const std::string msg = error_of([&] { read_idx_images(dir.file("img")); });
  EXPECT_NE(msg.find(dir.file("img")), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 unexpected bytes"), std::string::npos) << msg;

  std::vector<uint8_t> labels = idx_labels({1, 2, 3});
  labels.push_back(7);
  write_bytes(dir.file("lab.gz"), labels, true);
  const std::string msg2 = error_of([&] { read_idx_labels(dir.file("lab.gz")); });
  EXPECT_NE(msg2.find("lab.gz"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("1 unexpected bytes"), std::string::npos) << msg2;
}

TEST(IdxReader, ZeroAndAbsurdDimensionsAreRejected) {
  TempDir dir("fractrain_idx");
  std::vector<uint8_t> zero;
  push_be32(zero, 2051);
  push_be32(zero, 0);
  push_be32(zero, 28);
  push_be32(zero, 28);
  write_bytes(dir.file("zero"), zero, false);
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("zero")); }).find(dir.file("zero")), std::string::npos);

  std::vector<uint8_t> huge;
  push_be32(huge, 2051);
  push_be32(huge, 60000);
  push_be32(huge, 0xffffffffu);
  push_be32(huge, 0xffffffffu);
  write_bytes(dir.file("huge"), huge, false);
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("huge")); }).find("corrupt"), std::string::npos);

  write_bytes(dir.file("tiny"), {0, 0, 8}, false);
  const std::string msg = error_of([&] { read_idx_images(dir.file("tiny")); });
  EXPECT_NE(msg.find(dir.file("tiny")), std::string::npos) << msg;
  EXPECT_NE(msg.find("too short"), std::string::npos) << msg;
}

TEST(IdxReader, MissingFileNamesThePath) {
  TempDir dir("fractrain_idx");
  const std::string msg = error_of([&] { read_idx_images(dir.file("nope.gz")); });
  EXPECT_NE(msg.find(dir.file("nope.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

// A generated MNIST folder: train split 12 samples, test split 5, gzipped or raw per file.
void write_mnist_folder(const TempDir& dir, bool gzip, int bad_label = -1, int extra_labels = 0) {
  const std::string gz = gzip ? ".gz" : "";
  write_bytes(dir.file("train-images-idx3-ubyte" + gz), idx_images(12, 6, 5), gzip);
  std::vector<uint8_t> train_labels;
  for (int i = 0; i < 12 + extra_labels; ++i) train_labels.push_back(static_cast<uint8_t>(i % 10));
  if (bad_label >= 0) train_labels[4] = static_cast<uint8_t>(bad_label);
  write_bytes(dir.file("train-labels-idx1-ubyte" + gz), idx_labels(train_labels), gzip);
  write_bytes(dir.file("t10k-images-idx3-ubyte" + gz), idx_images(5, 6, 5), gzip);
  write_bytes(dir.file("t10k-labels-idx1-ubyte" + gz), idx_labels({9, 8, 7, 6, 5}), gzip);
}

TEST(IdxReader, LoadsMnistFolderRawAndGzipped) {
  for (const bool gzip : {false, true}) {
    TempDir dir("fractrain_idx");
    write_mnist_folder(dir, gzip);
    const ImageDataset train = load_image_dataset("mnist", dir.str(), Split::Train);
    EXPECT_EQ(train.name, "mnist");
    EXPECT_EQ(train.size(), 12);
    EXPECT_EQ(train.channels(), 1);
    EXPECT_EQ(train.height(), 6);
    EXPECT_EQ(train.width(), 5);
    EXPECT_EQ(train.num_classes, 10);
    EXPECT_EQ(train.mean, std::vector<float>{0.1307f});
    EXPECT_EQ(train.stddev, std::vector<float>{0.3081f});
    expect_images_exact(train.images, 12, 6, 5);
    EXPECT_EQ(train.labels[11].item<int64_t>(), 1);

    const ImageDataset test = load_image_dataset("fashion-mnist", dir.str(), Split::Test);
    EXPECT_EQ(test.name, "fashion-mnist");
    EXPECT_EQ(test.size(), 5);
    EXPECT_EQ(test.mean, std::vector<float>{0.2860f});
    EXPECT_EQ(test.stddev, std::vector<float>{0.3530f});
    EXPECT_EQ(test.labels[0].item<int64_t>(), 9);
  }
}

TEST(IdxReader, DatasetChecksLabelCountAndRange) {
  {
    TempDir dir("fractrain_idx");
    write_mnist_folder(dir, true, /*bad_label=*/10);
    const std::string msg = error_of([&] { load_image_dataset("mnist", dir.str(), Split::Train); });
    EXPECT_NE(msg.find("train-labels-idx1-ubyte.gz"), std::string::npos) << msg;
    EXPECT_NE(msg.find("label 10 (sample 4)"), std::string::npos) << msg;
  }
  {
    TempDir dir("fractrain_idx");
    write_mnist_folder(dir, false, -1, /*extra_labels=*/1);
    const std::string msg = error_of([&] { load_image_dataset("mnist", dir.str(), Split::Train); });
    EXPECT_NE(msg.find("train-labels-idx1-ubyte"), std::string::npos) << msg;
    EXPECT_NE(msg.find("13 labels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("12 images"), std::string::npos) << msg;
  }
}

TEST(IdxReader, CorruptFileInDatasetGetsInstallHint) {
  TempDir dir("fractrain_idx");
  write_mnist_folder(dir, true);
  std::vector<uint8_t> bytes = idx_images(12, 6, 5);
  bytes.resize(100);
  write_bytes(dir.file("train-images-idx3-ubyte.gz"), bytes, true);
  const std::string msg = error_of([&] { load_image_dataset("fashion-mnist", dir.str(), Split::Train); });
  EXPECT_NE(msg.find("train-images-idx3-ubyte.gz: truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install dataset-fashion-mnist"), std::string::npos) << msg;
}

TEST(IdxReader, MissingDatasetNamesExpectedPathsAndFix) {
  TempDir dir("fractrain_idx");
  const std::string msg = error_of([&] { load_image_dataset("fashion-mnist", dir.str(), Split::Test); });
  EXPECT_NE(msg.find(dir.file("t10k-images-idx3-ubyte.gz")), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("t10k-images-idx3-ubyte") + ";"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install dataset-fashion-mnist"), std::string::npos) << msg;
}

TEST(IdxReader, NamesAndDefaultDirs) {
  EXPECT_EQ(image_dataset_names(), (std::vector<std::string>{"fashion-mnist", "mnist", "cifar10", "cifar100"}));
  EXPECT_EQ(default_data_dir("fashion-mnist"), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(default_data_dir("mnist"), "/usr/share/datasets/mnist");
  EXPECT_EQ(default_data_dir("cifar10"), "data/cifar-10-batches-bin");
  EXPECT_EQ(default_data_dir("cifar100"), "data/cifar-100-binary");
  for (const auto& f : std::vector<std::function<void()>>{[] { default_data_dir("imagenet7"); },
                                                          [] { load_image_dataset("imagenet7", "", Split::Train); }}) {
    const std::string msg = error_of(f);
    EXPECT_NE(msg.find("'imagenet7'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fashion-mnist, mnist, cifar10, cifar100"), std::string::npos) << msg;
  }
}

TEST(IdxReader, RealFashionMnistLoads) {
  ASSERT_FASHION_MNIST_INSTALLED();
  for (const auto& [split, expected] : {std::pair{Split::Train, int64_t{60000}}, std::pair{Split::Test, int64_t{10000}}}) {
    const ImageDataset data = load_image_dataset("fashion-mnist", "", split);
    ASSERT_EQ(data.size(), expected);
    EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{expected, 1, 28, 28}));
    EXPECT_EQ(data.num_classes, 10);
    EXPECT_EQ(data.labels.min().item<int64_t>(), 0);
    EXPECT_EQ(data.labels.max().item<int64_t>(), 9);
    const at::Tensor counts = at::bincount(data.labels, {}, 10);
    for (int64_t c = 0; c < 10; ++c) {
      const double share = counts[c].item<int64_t>() / static_cast<double>(expected);
      EXPECT_NEAR(share, 0.1, 0.01) << "class " << c;
    }
    // The published statistics describe the training pixels.
    if (split == Split::Train) {
      const at::Tensor pixels = data.images.to(at::kDouble).div(255.0);
      EXPECT_NEAR(pixels.mean().item<double>(), data.mean[0], 1e-3);
      EXPECT_NEAR(pixels.std().item<double>(), data.stddev[0], 1e-3);
    }
  }
}

}  // namespace
}  // namespace fractrain
