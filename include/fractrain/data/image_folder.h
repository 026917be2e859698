#pragma once
// The file list of an ImageNet-style folder split: SPLIT_DIR/CLASS/.../*.{jpg,jpeg,png} (any case), one
// sub-folder per class. Class indices follow the sorted folder names (as torchvision's ImageFolder), files
// are sorted by path, so the list (and with it every sample index) is the same on every machine. Only names
// are read here: the images are decoded when a batch needs them.
#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

struct ImageFolderIndex {
  std::string dir;                   // the split folder that was scanned
  std::vector<std::string> classes;  // class folder names, sorted; a label is a position in this list
  std::vector<std::string> files;    // every image file, sorted by class and then by path
  std::vector<int64_t> labels;       // the class of each file
  int64_t ignored_files = 0;         // files without an image extension (skipped, counted for the report)
  std::string ignored_example;       // one of them, for the message

  int64_t size() const { return static_cast<int64_t>(files.size()); }
};

// Scans `dir`. Prints progress every 100000 files when `show_progress` (ImageNet has 1.28 million).
// Throws fractrain::Error naming the path and the expected layout when `dir` is missing or not a folder,
// holds no class folders, or a class folder holds no images.
ImageFolderIndex scan_image_folder(const std::string& dir, bool show_progress);

// The same index restricted to a seeded random subset of n files (kept in sorted order); n <= 0 or
// n >= size() keeps everything. The classes stay the same.
ImageFolderIndex take_subset(const ImageFolderIndex& index, int64_t n, uint64_t seed);

// Throws fractrain::Error when the two splits do not have the same class folders, naming the first difference
// (a model trained on one split's classes would evaluate the other's with wrong labels).
void check_same_classes(const ImageFolderIndex& train, const ImageFolderIndex& val);

}  // namespace fractrain
