#pragma once
// Writes a small ImageNet-style folder (ROOT/train/CLASS/*.jpg, ROOT/val/CLASS/*.jpg) from one of the
// in-memory datasets, so that the image-folder pipeline (JPEG decoding, resized crops, worker threads) can be
// run end to end on real images without downloading ImageNet: `fractrain make-image-folder`.
#include <cstdint>
#include <string>

namespace fractrain {

struct ImageFolderWriterOptions {
  std::string dataset = "fashion-mnist";  // any name load_image_dataset knows
  std::string data_dir;                   // its folder; empty = its default
  std::string out_dir;                    // ROOT; created, must not already hold train/ or val/
  int64_t train_per_class = 200;          // the first N samples of each class of the training split
  int64_t val_per_class = 50;             // the first N samples of each class of the test split
  int64_t size = 96;                      // images are upscaled to about this side, each a little differently
  int quality = 90;                       // JPEG quality
  uint64_t seed = 1;                      // picks each image's size and aspect
};

struct ImageFolderWriterResult {
  int64_t classes = 0, train_files = 0, val_files = 0;
};

// Throws fractrain::Error for bad options, an existing ROOT/train or ROOT/val, a class with fewer samples than
// asked for, or a write failure (naming the file).
ImageFolderWriterResult write_image_folder(const ImageFolderWriterOptions& options);

}  // namespace fractrain
