// The adaptation / fine-tuning halves (data.split) and starting a run from another run's weights
// (train.init_from).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "fractrain/data/dataset_split.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/option_set.h"
#include "fractrain/train/initial_weights.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/trainer.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

// 10 classes x 7 samples; pixel value = sample index so the chosen samples can be identified.
ImageDataset numbered_dataset(int64_t classes = 10, int64_t per_class = 7) {
  ImageDataset d;
  d.name = "numbered";
  const int64_t n = classes * per_class;
  d.images = torch::arange(n, torch::kLong).to(torch::kUInt8).view({n, 1, 1, 1}).contiguous();
  d.labels = (torch::arange(n, torch::kLong) % classes).contiguous();
  d.num_classes = classes;
  d.mean = {0.5f};
  d.stddev = {0.25f};
  return d;
}

std::vector<int64_t> ids(const ImageDataset& d) {
  auto t = d.images.view({-1}).to(torch::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

}  // namespace

TEST(DatasetSplit, ClassHalvesAreDisjointCompleteRelabelledAndSeeded) {
  const ImageDataset data = numbered_dataset();
  const DatasetSplit a = parse_dataset_split("classes-a", 3), b = parse_dataset_split("classes-b", 3);
  const auto ca = split_classes(a, 10), cb = split_classes(b, 10);
  ASSERT_EQ(ca.size(), 5u);
  ASSERT_EQ(cb.size(), 5u);
  std::set<int64_t> all(ca.begin(), ca.end());
  all.insert(cb.begin(), cb.end());
  EXPECT_EQ(all.size(), 10u) << "the halves cover every class exactly once";
  EXPECT_TRUE(std::is_sorted(ca.begin(), ca.end()));
  EXPECT_EQ(split_classes(a, 10), ca) << "a pure function of the seed";
  bool differs = false;
  for (uint64_t seed = 4; seed < 10 && !differs; ++seed)
    differs = split_classes(parse_dataset_split("classes-a", seed), 10) != ca;
  EXPECT_TRUE(differs) << "the split seed chooses the halves";

  for (Split which : {Split::Train, Split::Test}) {
    const ImageDataset half = apply_split(data, a, which);
    EXPECT_EQ(half.num_classes, 5);
    EXPECT_EQ(half.size(), 5 * 7);
    const auto labels = half.labels;
    const auto pixels = ids(half);
    for (int64_t i = 0; i < half.size(); ++i) {
      const int64_t original = pixels[static_cast<size_t>(i)] % 10;  // the numbered dataset's label
      const int64_t relabelled = labels[i].item<int64_t>();
      ASSERT_LT(relabelled, 5);
      EXPECT_EQ(ca[static_cast<size_t>(relabelled)], original) << "label i stands for the i-th kept class";
    }
    EXPECT_TRUE(std::is_sorted(pixels.begin(), pixels.end())) << "sample order is preserved";
  }
  // An odd class count: the second half gets the extra class.
  EXPECT_EQ(split_classes(parse_dataset_split("classes-a", 0), 7).size(), 3u);
  EXPECT_EQ(split_classes(parse_dataset_split("classes-b", 0), 7).size(), 4u);
}

TEST(DatasetSplit, SampleHalvesKeepEveryClassBalancedAndTheWholeTestSplit) {
  const ImageDataset data = numbered_dataset();
  const ImageDataset a = apply_split(data, parse_dataset_split("samples-a", 1), Split::Train);
  const ImageDataset b = apply_split(data, parse_dataset_split("samples-b", 1), Split::Train);
  EXPECT_EQ(a.num_classes, 10);
  EXPECT_EQ(a.size(), 10 * 3);  // floor(7 / 2) per class
  EXPECT_EQ(b.size(), 10 * 4);
  const auto ia = ids(a), ib = ids(b);
  std::set<int64_t> all(ia.begin(), ia.end());
  for (int64_t id : ib) EXPECT_TRUE(all.insert(id).second) << "sample " << id << " is in both halves";
  EXPECT_EQ(all.size(), 70u);
  for (int64_t c = 0; c < 10; ++c) EXPECT_EQ((a.labels == c).sum().item<int64_t>(), 3) << "class " << c;
  EXPECT_EQ(apply_split(data, parse_dataset_split("samples-b", 1), Split::Test).size(), 70);
  EXPECT_EQ(apply_split(data, parse_dataset_split("all", 1), Split::Train).size(), 70);
}

TEST(DatasetSplit, UnknownNamesAreRefused) {
  const std::string e = error_of([] { parse_dataset_split("classes-c", 0); });
  EXPECT_NE(e.find("classes-c"), std::string::npos);
  EXPECT_NE(e.find("samples-a"), std::string::npos) << "the message lists the valid names";
  RunConfig c;
  EXPECT_NE(error_of([&] { apply_override(c, "data.split=half"); }).find("data.split"), std::string::npos);
}

TEST(InitialWeights, CopiesMatchingTensorsKeepsTheRestAndRefusesOtherShapes) {
  test_support::TempDir dir("fractrain_init_from");
  RunConfig config;
  config.model.name = "resnet8";
  config.output.dir = dir.str();
  const ModelInputSpec input{1, 28, 28, 10};
  torch::manual_seed(1);
  auto source = create_model("resnet8", input);
  for (auto& p : source->parameters()) p.data().uniform_(-1, 1);
  torch::optim::SGD sgd(source->parameters(), torch::optim::SGDOptions(0.1));
  std::filesystem::create_directories(dir.file("checkpoints"));
  save_run_checkpoint(last_checkpoint_path(dir.str()), config, *source, sgd, TrainerState{});

  // A gated model of the same backbone: the backbone comes from the checkpoint, the gate keeps its init.
  torch::manual_seed(2);
  auto gated = create_gated_model("resnet8", input, OptionSet::parse("cifar-release", 0), GateExecution::Mixed);
  const InitialWeightsReport report = load_initial_weights(dir.str(), *gated);
  EXPECT_EQ(report.checkpoint, last_checkpoint_path(dir.str()));
  const auto source_params = source->named_parameters();
  int64_t compared = 0;
  for (const auto& p : gated->named_parameters()) {
    if (source_params.contains(p.key())) {
      EXPECT_TRUE(torch::equal(p.value(), source_params[p.key()])) << p.key();
      ++compared;
    } else {
      EXPECT_EQ(p.key().rfind("gate.", 0), 0u) << p.key() << " is not in the checkpoint but is not a gate";
      EXPECT_NE(std::find(report.kept.begin(), report.kept.end(), p.key()), report.kept.end()) << p.key();
    }
  }
  EXPECT_EQ(compared, static_cast<int64_t>(source_params.size()));

  auto other_head = create_model("resnet8", ModelInputSpec{1, 28, 28, 5});
  const std::string shape = error_of([&] { load_initial_weights(dir.str(), *other_head); });
  EXPECT_NE(shape.find("fc.weight"), std::string::npos) << shape;
  EXPECT_NE(shape.find("shape"), std::string::npos) << shape;
  auto other_model = create_model("resnet20", input);
  EXPECT_NE(error_of([&] { load_initial_weights(dir.str(), *other_model); }), "");
  EXPECT_NE(error_of([&] { load_initial_weights(dir.file("nothing"), *gated); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_initial_weights(dir.file("checkpoints"), *gated); }).find("last.ckpt"),
            std::string::npos);
}
