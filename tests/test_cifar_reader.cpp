// CIFAR-10/100 binary reading: exact parsing and concatenation of generated files, both folder layouts, and a
// clear error naming the file for every kind of bad input.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "fractrain/data/cifar_reader.h"
#include "fractrain/data/datasets.h"
#include "fractrain/util/error.h"
#include "test_support.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
using namespace test_support;

// Pixel (global sample g, channel c, y, x) = (g * 31 + c * 7 + y * 3 + x) mod 256.
uint8_t pixel(int64_t g, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((g * 31 + c * 7 + y * 3 + x) % 256);
}
int64_t fine_label(int64_t g, int64_t classes) { return (g * 7 + 3) % classes; }

// `count` records for global samples first..first+count-1 (1 or 2 label bytes before the pixels).
std::vector<uint8_t> cifar_records(int64_t first, int64_t count, CifarVariant variant) {
  std::vector<uint8_t> v;
  const int64_t classes = cifar_num_classes(variant);
  for (int64_t g = first; g < first + count; ++g) {
    if (variant == CifarVariant::Cifar100) v.push_back(static_cast<uint8_t>(g % 20));  // coarse label
    v.push_back(static_cast<uint8_t>(fine_label(g, classes)));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) v.push_back(pixel(g, c, y, x));
  }
  return v;
}

void expect_records(const at::Tensor& images, const at::Tensor& labels, int64_t first, int64_t count,
                    int64_t classes) {
  ASSERT_EQ(images.scalar_type(), at::kByte);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{count, 3, 32, 32}));
  ASSERT_EQ(labels.scalar_type(), at::kLong);
  ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{count}));
  const auto im = images.accessor<uint8_t, 4>();
  const auto lab = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(lab[i], fine_label(first + i, classes)) << i;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) ASSERT_EQ(im[i][c][y][x], pixel(first + i, c, y, x));
  }
}

// CIFAR-10 folder with batches of 3, 2, 4, 1, 5 records (15 train samples) and a 6-record test batch.
void write_cifar10(const std::string& folder) {
  const int64_t sizes[5] = {3, 2, 4, 1, 5};
  int64_t first = 0;
  for (int b = 0; b < 5; ++b) {
    write_file(folder + "/data_batch_" + std::to_string(b + 1) + ".bin",
               cifar_records(first, sizes[b], CifarVariant::Cifar10));
    first += sizes[b];
  }
  write_file(folder + "/test_batch.bin", cifar_records(100, 6, CifarVariant::Cifar10));
}

TEST(CifarReader, ReadsCifar10RecordsExactly) {
  TempDir dir("fractrain_cifar");
  write_file(dir.file("a.bin"), cifar_records(0, 4, CifarVariant::Cifar10));
  write_file(dir.file("b.bin"), cifar_records(4, 3, CifarVariant::Cifar10));
  const CifarRecords r = read_cifar_files({dir.file("a.bin"), dir.file("b.bin")}, CifarVariant::Cifar10);
  expect_records(r.images, r.labels, 0, 7, 10);
}

TEST(CifarReader, ReadsCifar100FineLabels) {
  TempDir dir("fractrain_cifar");
  write_file(dir.file("train.bin"), cifar_records(0, 9, CifarVariant::Cifar100));
  const CifarRecords r = read_cifar_files({dir.file("train.bin")}, CifarVariant::Cifar100);
  expect_records(r.images, r.labels, 0, 9, 100);
  EXPECT_EQ(r.labels[8].item<int64_t>(), 59);  // fine label, not the coarse one (8)
}

TEST(CifarReader, LoadsCifar10FromFolderOrParent) {
  TempDir dir("fractrain_cifar");
  write_cifar10(dir.file("cifar-10-batches-bin"));
  for (const std::string& folder : {dir.str(), dir.file("cifar-10-batches-bin")}) {
    const ImageDataset train = load_image_dataset("cifar10", folder, Split::Train);
    EXPECT_EQ(train.name, "cifar10");
    EXPECT_EQ(train.num_classes, 10);
    EXPECT_EQ(train.mean, (std::vector<float>{0.4914f, 0.4822f, 0.4465f}));
    EXPECT_EQ(train.stddev, (std::vector<float>{0.2470f, 0.2435f, 0.2616f}));
    expect_records(train.images, train.labels, 0, 15, 10);  // batches concatenated in order 1..5
    const ImageDataset test = load_image_dataset("cifar10", folder, Split::Test);
    expect_records(test.images, test.labels, 100, 6, 10);
  }
}

TEST(CifarReader, LoadsCifar100FromFolderOrParent) {
  TempDir dir("fractrain_cifar");
  write_file(dir.file("cifar-100-binary/train.bin"), cifar_records(0, 5, CifarVariant::Cifar100));
  write_file(dir.file("cifar-100-binary/test.bin"), cifar_records(50, 2, CifarVariant::Cifar100));
  for (const std::string& folder : {dir.str(), dir.file("cifar-100-binary")}) {
    const ImageDataset train = load_image_dataset("cifar100", folder, Split::Train);
    EXPECT_EQ(train.num_classes, 100);
    EXPECT_EQ(train.mean, (std::vector<float>{0.5071f, 0.4865f, 0.4409f}));
    EXPECT_EQ(train.stddev, (std::vector<float>{0.2673f, 0.2564f, 0.2762f}));
    expect_records(train.images, train.labels, 0, 5, 100);
    const ImageDataset test = load_image_dataset("cifar100", folder, Split::Test);
    expect_records(test.images, test.labels, 50, 2, 100);
  }
}

TEST(CifarReader, SizeNotAMultipleOfTheRecordNamesFile) {
  TempDir dir("fractrain_cifar");
  std::vector<uint8_t> bytes = cifar_records(0, 3, CifarVariant::Cifar10);
  bytes.resize(bytes.size() - 100);
  write_file(dir.file("cut.bin"), bytes);
  const std::string msg = error_of([&] { read_cifar_files({dir.file("cut.bin")}, CifarVariant::Cifar10); });
  EXPECT_NE(msg.find(dir.file("cut.bin")), std::string::npos) << msg;
  EXPECT_NE(msg.find("3073"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cifar-10-binary.tar.gz"), std::string::npos) << msg;

  // A CIFAR-10 file read as CIFAR-100: 3 * 3073 is not a multiple of 3074.
  write_file(dir.file("ten.bin"), cifar_records(0, 3, CifarVariant::Cifar10));
  const std::string msg2 = error_of([&] { read_cifar_files({dir.file("ten.bin")}, CifarVariant::Cifar100); });
  EXPECT_NE(msg2.find("ten.bin"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("3074"), std::string::npos) << msg2;

  write_file(dir.file("empty.bin"), std::string());
  const std::string msg3 = error_of([&] { read_cifar_files({dir.file("empty.bin")}, CifarVariant::Cifar10); });
  EXPECT_NE(msg3.find("empty.bin: the file is empty"), std::string::npos) << msg3;
}

TEST(CifarReader, LabelOutOfRangeNamesFileAndRecord) {
  TempDir dir("fractrain_cifar");
  std::vector<uint8_t> bytes = cifar_records(0, 4, CifarVariant::Cifar10);
  bytes[2 * 3073] = 10;
  write_file(dir.file("bad.bin"), bytes);
  const std::string msg = error_of([&] { read_cifar_files({dir.file("bad.bin")}, CifarVariant::Cifar10); });
  EXPECT_NE(msg.find(dir.file("bad.bin")), std::string::npos) << msg;
  EXPECT_NE(msg.find("record 2 has label 10"), std::string::npos) << msg;

  std::vector<uint8_t> hundred = cifar_records(0, 4, CifarVariant::Cifar100);
  hundred[3 * 3074 + 1] = 100;
  write_file(dir.file("bad100.bin"), hundred);
  const std::string msg2 = error_of([&] { read_cifar_files({dir.file("bad100.bin")}, CifarVariant::Cifar100); });
  EXPECT_NE(msg2.find("bad100.bin"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("record 3 has label 100"), std::string::npos) << msg2;
}

TEST(CifarReader, MissingFilesNameExpectedPathsAndDownload) {
  TempDir dir("fractrain_cifar");
  const std::string msg = error_of([&] { load_image_dataset("cifar10", dir.str(), Split::Train); });
  EXPECT_NE(msg.find("data_batch_1.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data_batch_5.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("cifar-10-batches-bin")), std::string::npos) << msg;
  EXPECT_NE(msg.find("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"), std::string::npos) << msg;

  const std::string msg100 = error_of([&] { load_image_dataset("cifar100", dir.str(), Split::Test); });
  EXPECT_NE(msg100.find("test.bin"), std::string::npos) << msg100;
  EXPECT_NE(msg100.find("cifar-100-binary.tar.gz"), std::string::npos) << msg100;

  // A partial copy names exactly the missing file.
  write_cifar10(dir.str());
  fs::remove(dir.file("data_batch_3.bin"));
  const std::string partial = error_of([&] { load_image_dataset("cifar10", dir.str(), Split::Train); });
  EXPECT_NE(partial.find("missing " + dir.file("data_batch_3.bin")), std::string::npos) << partial;
  EXPECT_EQ(partial.find("data_batch_2.bin"), std::string::npos) << partial;
}

TEST(CifarReader, CorruptFileInDatasetNamesFileAndDownload) {
  TempDir dir("fractrain_cifar");
  write_cifar10(dir.str());
  std::vector<uint8_t> bytes = cifar_records(0, 2, CifarVariant::Cifar10);
  bytes.push_back(1);
  write_file(dir.file("data_batch_4.bin"), bytes);
  const std::string msg = error_of([&] { load_image_dataset("cifar10", dir.str(), Split::Train); });
  EXPECT_NE(msg.find(dir.file("data_batch_4.bin") + ":"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tar xzf cifar-10-binary.tar.gz"), std::string::npos) << msg;
}

}  // namespace
}  // namespace fractrain
