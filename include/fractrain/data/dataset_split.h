#pragma once
// The adaptation and fine-tuning settings of DESIGN.md 4.10: a dataset cut in two halves, by classes
// (adaptation: pretrain on half the classes, retrain on the others) or by samples (fine-tuning: pretrain on
// half of every class's samples, retrain on the other half).
//
// Both cuts are pure functions of (split seed, dataset size, labels), so a pretraining run and the retraining
// runs that start from its checkpoint agree on the halves without sharing any state.
#include <cstdint>
#include <string>
#include <vector>

#include "fractrain/data/datasets.h"
#include "fractrain/data/image_dataset.h"

namespace fractrain {

enum class SplitKind { All, Classes, Samples };

struct DatasetSplit {
  SplitKind kind = SplitKind::All;
  bool second_half = false;  // "b": the half a pretraining run on "a" never saw
  uint64_t seed = 0;         // chooses which classes / samples fall in each half
};

// "all", "classes-a", "classes-b", "samples-a", "samples-b". Throws fractrain::Error naming data.split.
DatasetSplit parse_dataset_split(const std::string& text, uint64_t seed);
std::vector<std::string> dataset_split_names();

// The original class ids in the split's half, ascending (every class for All and Samples): the first
// floor(K/2) classes of a seeded permutation form half "a", the rest half "b".
std::vector<int64_t> split_classes(const DatasetSplit& split, int64_t num_classes);

// The part of `data` the split keeps for `which`:
// - Classes: the samples of the half's classes (train and test), labels renumbered 0..n-1 in ascending
//   original id, num_classes = n. Each half is then a task of its own with a head of n outputs, so a model
//   pretrained on "a" loads into a run on "b" unchanged.
// - Samples: train keeps the half's samples of every class (each class cut separately, so both halves keep
//   the class balance); test is the whole test split, since both halves are drawn from the same distribution.
// Sample order is preserved. Throws fractrain::Error when a half would be empty.
ImageDataset apply_split(const ImageDataset& data, const DatasetSplit& split, Split which);

}  // namespace fractrain
