// End to end on generated JPEG folders: ResNet-18 trains at FW-8/BW-8 from an image folder through the
// normal trainer (loss falls, the class list is recorded), and `fractrain make-image-folder` writes a folder
// of real Fashion-MNIST images that scans back with the expected classes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "fractrain/data/image_folder.h"
#include "image_folder_test_support.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::TempDir;

TEST(ImageFolderTraining, ResNet18AtFw8Bw8LearnsFromAJpegFolder) {
  TempDir dir("image_folder_train");
  test_support::write_generated_folder(dir.file("data"), 4, 2);
  RunConfig c;
  c.model.name = "resnet18";
  c.data.dataset = "image-folder";
  c.data.path = dir.file("data");
  c.data.image_size = 64;
  c.data.resize_size = 72;
  c.data.workers = 2;
  c.precision.fw = 8;
  c.precision.bw = 8;
  c.train.batch_size = 12;
  c.train.iterations = 12;
  c.train.eval_every = 4;
  c.train.threads = 1;
  c.schedule.type = "constant";
  c.optim.lr = 0.05;
  c.output.dir = dir.file("run");
  const nlohmann::json summary = train_run(c, test_support::quiet());
  const auto records = test_support::read_metrics(c.output.dir);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_LT(records.back()["train_loss"].get<double>(), 0.7 * records.front()["train_loss"].get<double>());
  EXPECT_EQ(summary["train_samples"], 12);
  EXPECT_EQ(summary["test_samples"], 6);
  EXPECT_EQ(summary["data"]["train"]["classes"], nlohmann::json({"apple", "mango", "zebra"}));
  EXPECT_EQ(summary["data"]["train"]["skipped_corrupt_files"], 0);
}

TEST(ImageFolderTraining, MakeImageFolderWritesRealImagesThatScanBack) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir dir("make_image_folder");
  const auto r = test_support::run_cli("make-image-folder " + dir.file("folder") +
                                       " --train-per-class 3 --val-per-class 2 --size 40");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "wrote 10 classes: 30 training and 20 validation JPEGs");
  const ImageFolderIndex train = scan_image_folder(dir.file("folder/train"), false);
  EXPECT_EQ(train.size(), 30);
  EXPECT_EQ(train.classes.front(), "00-t-shirt");
  EXPECT_EQ(train.classes.back(), "09-ankle-boot");
  const RgbImage image = read_image_file(train.files[0]);
  EXPECT_GE(image.height, 30);
  EXPECT_LE(image.height, 50);
  const auto again = test_support::run_cli("make-image-folder " + dir.file("folder"));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_CONTAINS(again.output, "already exists");
}

// A run interrupted mid-epoch and resumed (with another worker count) ends with the same weights as one that
// ran through: the streamed batches, crops included, depend only on the seed and the position.
TEST(ImageFolderTraining, ResumedRunEqualsUninterruptedRunBitwise) {
  TempDir dir("image_folder_resume");
  test_support::write_generated_folder(dir.file("data"), 4, 2);
  auto config_for = [&](const std::string& out, int64_t workers) {
    RunConfig c;
    c.model.name = "resnet8";
    c.data.dataset = "image-folder";
    c.data.path = dir.file("data");
    c.data.image_size = 24;
    c.data.resize_size = 28;
    c.data.workers = workers;
    c.precision.fw = 4;
    c.precision.bw = 8;
    c.train.batch_size = 4;  // 3 batches per epoch: the run crosses epoch boundaries
    c.train.iterations = 8;
    c.train.eval_every = 4;
    c.train.threads = 1;
    c.output.dir = out;
    return c;
  };
  train_run(config_for(dir.file("whole"), 1), test_support::quiet());
  TrainOptions interrupted = test_support::quiet();
  interrupted.stop_at_step = 5;
  EXPECT_TRUE(train_run(config_for(dir.file("split"), 1), interrupted).interrupted);
  TrainOptions resume = test_support::quiet();
  resume.resume_from = last_checkpoint_path(dir.file("split"));
  EXPECT_EQ(train_run(config_for(dir.file("split"), 3), resume).steps, 8);

  auto weights = [&](const std::string& out) {
    const RunConfig c = config_for(out, 1);
    auto model = build_model(c, ModelInputSpec{3, 24, 24, 3}, c10::kCPU);
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    load_run_checkpoint(last_checkpoint_path(out), *model, sgd);
    std::map<std::string, at::Tensor> w;
    for (const auto& p : model->named_parameters()) w[p.key()] = p.value().clone();
    return w;
  };
  const auto a = weights(dir.file("whole")), b = weights(dir.file("split"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
}
