// Image folders: the scan (sorted classes and files, layout errors), the streaming loader (shapes,
// normalisation, labels, bit-identical batches whatever the worker count, exact resume), and corrupt files
// (an error naming the file, or skipped and counted).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "fractrain/data/image_folder_loader.h"
#include "fractrain/train/run_components.h"
#include "image_folder_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::TempDir;

namespace {

std::shared_ptr<const ImageFolderIndex> scan(const std::string& dir) {
  return std::make_shared<const ImageFolderIndex>(scan_image_folder(dir, false));
}

ImageFolderSettings small_settings(int64_t workers) {
  ImageFolderSettings s;
  s.transform.crop_size = 24;
  s.transform.resize_size = 28;
  s.workers = workers;
  return s;
}

LoaderOptions training(int64_t batch) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = o.drop_last = o.augment = true;
  o.seed = 11;
  return o;
}

}  // namespace

TEST(ImageFolder, ClassesFollowSortedFolderNamesAndFilesAreSorted) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  test_support::write_file(dir.file("train/apple/readme.txt"), "not an image");
  const ImageFolderIndex index = scan_image_folder(dir.file("train"), false);
  EXPECT_EQ(index.classes, (std::vector<std::string>{"apple", "mango", "zebra"}));
  ASSERT_EQ(index.size(), 12);
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(index.labels[i], i / 4);
    EXPECT_CONTAINS(index.files[i], "/" + index.classes[i / 4] + "/img_" + std::to_string(i % 4) + ".jpg");
  }
  EXPECT_EQ(index.ignored_files, 1);
  EXPECT_CONTAINS(index.ignored_example, "readme.txt");
}

TEST(ImageFolder, LayoutProblemsAreErrorsNamingThePath) {
  TempDir dir("image_folder");
  EXPECT_CONTAINS(error_of([&] { scan_image_folder(dir.file("train"), false); }),
                  dir.file("train") + " does not exist; expected an ImageNet-style layout");
  std::filesystem::create_directories(dir.file("train"));
  EXPECT_CONTAINS(error_of([&] { scan_image_folder(dir.file("train"), false); }), "has no class folders");
  test_support::write_generated_split(dir.str(), "train", 2);
  std::filesystem::create_directories(dir.file("train/empty_class"));
  EXPECT_CONTAINS(error_of([&] { scan_image_folder(dir.file("train"), false); }),
                  dir.file("train/empty_class") + " holds no .jpg, .jpeg or .png files");
  std::filesystem::remove(dir.file("train/empty_class"));
  test_support::write_generated_split(dir.str(), "val", 1);
  std::filesystem::remove_all(dir.file("val/mango"));
  EXPECT_CONTAINS(error_of([&] {
                    check_same_classes(scan_image_folder(dir.file("train"), false),
                                       scan_image_folder(dir.file("val"), false));
                  }),
                  "class 'mango' is in " + dir.file("train") + " but not in " + dir.file("val"));
}

TEST(ImageFolder, BatchesHaveTheCropShapeNormalisedPixelsAndTheFilesLabels) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  auto index = scan(dir.file("train"));
  ImageFolderLoader loader(index, small_settings(2), training(5), nullptr);
  EXPECT_EQ(loader.batches_per_epoch(), 2);  // 12 images, drop_last
  const ImageTransformConfig& t = small_settings(1).transform;
  for (int step = 0; step < 4; ++step) {
    const Batch b = loader.next();
    ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{5, 3, 24, 24}));
    ASSERT_EQ(b.labels.scalar_type(), at::kLong);
    for (int64_t s = 0; s < 5; ++s) {
      const int64_t label = b.labels[s].item<int64_t>();
      // Each sample's mean colour is its class colour (the last image per class is grayscale: skip the check
      // there by comparing the green channel only against the grayscale or colour value).
      const auto colour = test_support::class_colour(label);
      const at::Tensor mean = b.images[s].mean({1, 2});
      const double red = mean[0].item<double>() * t.stddev[0] + t.mean[0];
      const double blue = mean[2].item<double>() * t.stddev[2] + t.mean[2];
      const bool gray = std::abs(red - blue) < 0.02;
      if (!gray) {
        EXPECT_NEAR(red * 255, colour[0], 6.0) << "label " << label;
        EXPECT_NEAR(blue * 255, colour[2], 6.0) << "label " << label;
      }
    }
  }
}

TEST(ImageFolder, WorkerCountDoesNotChangeAnyBatchAndSeekResumesExactly) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  auto index = scan(dir.file("train"));
  ImageFolderLoader one(index, small_settings(1), training(4), nullptr);
  ImageFolderLoader three(index, small_settings(3), training(4), nullptr);
  std::vector<Batch> reference;
  for (int step = 0; step < 7; ++step) {  // a bit more than two epochs of 3 batches
    const Batch a = one.next(), b = three.next();
    EXPECT_TRUE(torch::equal(a.images, b.images)) << "step " << step;
    EXPECT_TRUE(torch::equal(a.labels, b.labels)) << "step " << step;
    EXPECT_TRUE(torch::equal(a.images, one.get(a.epoch, a.batch_in_epoch).images));
    reference.push_back(a);
  }
  EXPECT_FALSE(torch::equal(reference[0].images, reference[3].images));  // epoch 1 reshuffles and recrops
  ImageFolderLoader resumed(index, small_settings(2), training(4), nullptr);
  resumed.seek(1, 1);
  for (int step = 4; step < 7; ++step) EXPECT_TRUE(torch::equal(resumed.next().images, reference[step].images));
  resumed.seek(0, 2);  // a seek after batches were prefetched drops them
  EXPECT_TRUE(torch::equal(resumed.next().images, reference[2].images));
}

TEST(ImageFolder, EvaluationIsTheCenterCropOfTheResizedImageInFileOrder) {
  TempDir dir("image_folder");
  // One 40 x 80 horizontal ramp per class: resized to 28 x 56 (factor 1/0.7), center 24 x 24 at column 16.
  std::vector<uint8_t> ramp(40 * 80 * 3);
  for (int64_t y = 0; y < 40; ++y)
    for (int64_t x = 0; x < 80; ++x)
      for (int c = 0; c < 3; ++c) ramp[(y * 80 + x) * 3 + c] = static_cast<uint8_t>(3 * x);
  for (const char* name : {"b", "a"})
    test_support::write_file(dir.file(std::string("val/") + name + "/ramp.jpg"), encode_jpeg(ramp.data(), 40, 80, 3, 100));
  auto index = scan(dir.file("val"));
  LoaderOptions eval;
  eval.batch_size = 2;
  ImageFolderLoader loader(index, small_settings(2), eval, nullptr);
  const Batch b = loader.next();
  EXPECT_EQ(b.labels[0].item<int64_t>(), 0);
  EXPECT_EQ(b.labels[1].item<int64_t>(), 1);
  const ImageTransformConfig t = small_settings(1).transform;
  // Resized column c (of 56) averages source columns around (c + 0.5) * 80/56; on a ramp of 3 per column and
  // away from the edges, that is 3 * ((c + 0.5) * 80 / 56 - 0.5).
  for (int64_t x = 0; x < 24; ++x) {
    const double source = 3.0 * ((16 + x + 0.5) * 80.0 / 56.0 - 0.5);
    const double expected = (source / 255.0 - t.mean[1]) / t.stddev[1];
    EXPECT_NEAR(b.images[0][1][12][x].item<double>(), expected, 3.0 / 255 / t.stddev[1]) << "column " << x;
  }
}

TEST(ImageFolder, ACorruptFileStopsWithItsNameOrIsSkippedAndCounted) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  test_support::write_file(dir.file("train/mango/img_1.jpg"), std::string("\xFF\xD8\xFF garbage", 12));
  auto index = scan(dir.file("train"));
  LoaderOptions all;
  all.batch_size = 12;
  {
    ImageFolderLoader strict(index, small_settings(2), all, nullptr);
    const std::string message = error_of([&] { strict.next(); });
    EXPECT_CONTAINS(message, dir.file("train/mango/img_1.jpg"));
    EXPECT_CONTAINS(message, "data.skip_corrupt = true");
  }
  ImageFolderSettings skipping = small_settings(2);
  skipping.skip_corrupt = true;
  auto log = std::make_shared<CorruptFileLog>();
  ImageFolderLoader lenient(index, skipping, all, log);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const Batch b = lenient.next();
    ASSERT_EQ(b.images.size(0), 12);
    EXPECT_EQ(b.labels[5].item<int64_t>(), 1);  // replaced by the next file, mango/img_2
    EXPECT_TRUE(torch::equal(b.images[5], b.images[6]));
  }
  EXPECT_EQ(log->count(), 1);  // the same file met twice counts once
}

TEST(ImageFolder, RunDataBuildsBothSplitsWithTheModelInputShape) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  DataConfig config;
  config.dataset = "image-folder";
  EXPECT_CONTAINS(error_of([&] { load_run_data(config, 1); }), "data.dataset = image-folder needs data.path");
  config.path = dir.str();
  config.image_size = 32;
  config.resize_size = 36;
  config.workers = 2;
  const RunData data = load_run_data(config, 1);
  EXPECT_EQ(data.classes, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(data.train->size(), 12);
  EXPECT_EQ(data.test->size(), 6);
  const ModelInputSpec spec = input_spec_of(*data.train);
  EXPECT_EQ(spec.channels, 3);
  EXPECT_EQ(spec.height, 32);
  EXPECT_EQ(spec.width, 32);
  EXPECT_EQ(spec.num_classes, 3);
  EXPECT_EQ(data.train->report()["classes"], nlohmann::json({"apple", "mango", "zebra"}));
  config.val_folder = "validation";
  EXPECT_CONTAINS(error_of([&] { load_run_data(config, 1); }), dir.file("validation") + " does not exist");
  config.val_folder = "val";
  config.split = "classes-a";
  EXPECT_CONTAINS(error_of([&] { load_run_data(config, 1); }), "data.split = classes-a is not available for image-folder");
  config.split = "all";
  config.resize_size = 30;
  config.image_size = 31;
  EXPECT_CONTAINS(error_of([&] { load_run_data(config, 1); }), "data.resize_size = 30 is smaller than data.image_size");
}

TEST(ImageFolder, ASinglePassLoaderStopsAfterItsEpoch) {
  TempDir dir("image_folder");
  test_support::write_generated_folder(dir.str());
  LoaderOptions eval;
  eval.batch_size = 4;
  eval.single_pass = true;
  ImageFolderLoader loader(scan(dir.file("val")), small_settings(2), eval, nullptr);
  EXPECT_EQ(loader.next().images.size(0), 4);
  EXPECT_EQ(loader.next().images.size(0), 2);  // 6 validation images: the last batch is partial
  EXPECT_CONTAINS(error_of([&] { loader.next(); }), "no batches after its one epoch");
}
