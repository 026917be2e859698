#include "fractrain/data/dataset_split.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// Separates the split draws from every other consumer of a seed (subsets, shuffles, augmentation).
constexpr uint64_t kClassSplitStream = 0x436c617373537074ull;   // "ClassSpt"
constexpr uint64_t kSampleSplitStream = 0x53616d706c537074ull;  // "SamplSpt"

// A seeded permutation of `items`, a pure function of (seed, stream, items.size()).
void shuffle(std::vector<int64_t>& items, uint64_t seed, uint64_t stream) {
  shuffle_front(items, items.size(), PhiloxStream{seed, mix_stream(stream, items.size())});
}

ImageDataset select(const ImageDataset& data, std::vector<int64_t> keep) {
  std::sort(keep.begin(), keep.end());
  const at::Tensor index = at::from_blob(keep.data(), {static_cast<int64_t>(keep.size())}, at::kLong).clone();
  ImageDataset out = data;
  out.images = data.images.index_select(0, index).contiguous();
  out.labels = data.labels.index_select(0, index).contiguous();
  return out;
}

ImageDataset class_half(const ImageDataset& data, const DatasetSplit& split, Split which) {
  const std::vector<int64_t> classes = split_classes(split, data.num_classes);
  std::vector<int64_t> new_label(static_cast<size_t>(data.num_classes), -1);
  for (size_t i = 0; i < classes.size(); ++i) new_label[static_cast<size_t>(classes[i])] = static_cast<int64_t>(i);

  const at::Tensor labels = data.labels.contiguous();
  const int64_t* label = labels.data_ptr<int64_t>();
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < data.size(); ++i)
    if (new_label[static_cast<size_t>(label[i])] >= 0) keep.push_back(i);
  if (keep.empty())
    throw Error(fmt::format("data.split: the {} split of {} has no sample of classes [{}]", split_name(which),
                            data.name, fmt::join(classes, ", ")));
  ImageDataset out = select(data, keep);
  auto relabelled = out.labels.clone();
  int64_t* l = relabelled.data_ptr<int64_t>();
  for (int64_t i = 0; i < relabelled.size(0); ++i) l[i] = new_label[static_cast<size_t>(l[i])];
  out.labels = relabelled;
  out.num_classes = static_cast<int64_t>(classes.size());
  return out;
}

ImageDataset sample_half(const ImageDataset& data, const DatasetSplit& split) {
  const at::Tensor labels = data.labels.contiguous();
  const int64_t* label = labels.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(data.num_classes));
  for (int64_t i = 0; i < data.size(); ++i) by_class[static_cast<size_t>(label[i])].push_back(i);
  std::vector<int64_t> keep;
  for (size_t c = 0; c < by_class.size(); ++c) {
    auto& members = by_class[c];
    shuffle(members, split.seed, mix_stream(kSampleSplitStream, c));
    const size_t half = members.size() / 2;
    keep.insert(keep.end(), split.second_half ? members.begin() + static_cast<std::ptrdiff_t>(half) : members.begin(),
                split.second_half ? members.end() : members.begin() + static_cast<std::ptrdiff_t>(half));
  }
  if (keep.empty())
    throw Error(fmt::format("data.split: the {} half of the {} training split is empty (too few samples)",
                            split.second_half ? "second" : "first", data.name));
  return select(data, keep);
}

}  // namespace

std::vector<std::string> dataset_split_names() { return {"all", "classes-a", "classes-b", "samples-a", "samples-b"}; }

DatasetSplit parse_dataset_split(const std::string& text, uint64_t seed) {
  DatasetSplit split;
  split.seed = seed;
  if (text == "all") return split;
  const auto dash = text.rfind('-');
  const std::string kind = dash == std::string::npos ? text : text.substr(0, dash);
  const std::string half = dash == std::string::npos ? "" : text.substr(dash + 1);
  if ((kind == "classes" || kind == "samples") && (half == "a" || half == "b")) {
    split.kind = kind == "classes" ? SplitKind::Classes : SplitKind::Samples;
    split.second_half = half == "b";
    return split;
  }
  throw Error("data.split = '" + text +
              "' is unknown: use all, classes-a / classes-b (adaptation: half the classes each) or samples-a / "
              "samples-b (fine-tuning: half of every class's samples each)");
}

std::vector<int64_t> split_classes(const DatasetSplit& split, int64_t num_classes) {
  std::vector<int64_t> classes(static_cast<size_t>(num_classes));
  std::iota(classes.begin(), classes.end(), int64_t{0});
  if (split.kind != SplitKind::Classes) return classes;
  if (num_classes < 2) throw Error("data.split: a class split needs at least 2 classes");
  shuffle(classes, split.seed, kClassSplitStream);
  const auto half = static_cast<std::ptrdiff_t>(num_classes / 2);
  std::vector<int64_t> chosen = split.second_half ? std::vector<int64_t>(classes.begin() + half, classes.end())
                                                  : std::vector<int64_t>(classes.begin(), classes.begin() + half);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

ImageDataset apply_split(const ImageDataset& data, const DatasetSplit& split, Split which) {
  switch (split.kind) {
    case SplitKind::All:
      return data;
    case SplitKind::Classes:
      return class_half(data, split, which);
    case SplitKind::Samples:
      return which == Split::Train ? sample_half(data, split) : data;
  }
  return data;
}

}  // namespace fractrain
