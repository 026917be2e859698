#include "fractrain/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "fractrain/data/image_dataset.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kProgressEvery = 100000;

const char* kLayout =
    "expected an ImageNet-style layout ROOT/train/CLASS/*.jpg and ROOT/val/CLASS/*.jpg, one folder per class "
    "(data.train_folder and data.val_folder name the split folders)";

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

ImageFolderIndex scan_image_folder(const std::string& dir, bool show_progress) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw Error("image folder split " + dir + " does not exist; " + kLayout);
  if (!fs::is_directory(dir, ec)) throw Error("image folder split " + dir + " is not a folder; " + kLayout);
  ImageFolderIndex index;
  index.dir = dir;
  for (const auto& entry : fs::directory_iterator(dir, fs::directory_options::skip_permission_denied, ec)) {
    if (entry.is_directory(ec) && !is_hidden(entry.path())) index.classes.push_back(entry.path().filename().string());
  }
  if (ec) throw Error("image folder split " + dir + ": cannot list it (" + ec.message() + ")");
  if (index.classes.empty()) throw Error("image folder split " + dir + " has no class folders; " + kLayout);
  std::sort(index.classes.begin(), index.classes.end());

  for (size_t label = 0; label < index.classes.size(); ++label) {
    const fs::path class_dir = fs::path(dir) / index.classes[label];
    std::vector<std::string> files;
    const auto options = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
    for (fs::recursive_directory_iterator it(class_dir, options, ec), end; !ec && it != end; it.increment(ec)) {
      if (is_hidden(it->path())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      if (has_image_extension(it->path())) {
        files.push_back(it->path().string());
      } else {
        if (index.ignored_files++ == 0) index.ignored_example = it->path().string();
      }
    }
    if (ec) throw Error("image folder class " + class_dir.string() + ": cannot list it (" + ec.message() + ")");
    if (files.empty())
      throw Error("image folder class " + class_dir.string() + " holds no .jpg, .jpeg or .png files; remove the "
                  "empty folder (a class without images cannot be learnt) or add its images; " + kLayout);
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      index.files.push_back(std::move(f));
      index.labels.push_back(static_cast<int64_t>(label));
      if (show_progress && index.size() % kProgressEvery == 0) {
        std::printf("\rscanning %s: %lld files in %zu of %zu classes", dir.c_str(), (long long)index.size(), label + 1,
                    index.classes.size());
        std::fflush(stdout);
      }
    }
  }
  if (show_progress && index.size() >= kProgressEvery) std::printf("\n");
  return index;
}

ImageFolderIndex take_subset(const ImageFolderIndex& index, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= index.size()) return index;
  ImageFolderIndex subset = index;
  subset.files.clear();
  subset.labels.clear();
  for (const int64_t i : random_subset_indices(index.size(), n, seed)) {
    subset.files.push_back(index.files[static_cast<size_t>(i)]);
    subset.labels.push_back(index.labels[static_cast<size_t>(i)]);
  }
  return subset;
}

void check_same_classes(const ImageFolderIndex& train, const ImageFolderIndex& val) {
  if (train.classes == val.classes) return;
  for (const std::string& c : train.classes)
    if (!std::binary_search(val.classes.begin(), val.classes.end(), c))
      throw Error("image folder: class '" + c + "' is in " + train.dir + " but not in " + val.dir +
                  "; both splits need the same class folders (labels follow their sorted names)");
  for (const std::string& c : val.classes)
    if (!std::binary_search(train.classes.begin(), train.classes.end(), c))
      throw Error("image folder: class '" + c + "' is in " + val.dir + " but not in " + train.dir +
                  "; both splits need the same class folders (labels follow their sorted names)");
}

}  // namespace fractrain
