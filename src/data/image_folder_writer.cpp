#include "fractrain/data/image_folder_writer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "fractrain/data/datasets.h"
#include "fractrain/data/image_codec.h"
#include "fractrain/data/image_transform.h"
#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSizePurpose = 0x53697a6553697a65ull;  // "SizeSize"

std::string class_folder(const std::string& dataset, int64_t label) {
  static const char* kFashion[] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                   "sandal",  "shirt",   "sneaker",  "bag",   "ankle-boot"};
  if (dataset == "fashion-mnist" && label >= 0 && label < 10) return fmt::format("{:02d}-{}", label, kFashion[label]);
  return fmt::format("class-{:03d}", label);
}

// Sample `index` of `data` resized (antialiased bilinear, as the training transform) to height x width, packed
// with the dataset's channel count (1 or 3) per pixel.
std::vector<uint8_t> resized_pixels(const ImageDataset& data, int64_t index, int64_t height, int64_t width) {
  const int64_t C = data.channels(), H = data.height(), W = data.width();
  const at::Tensor chw = data.images[index];  // uint8 [C, H, W]
  RgbImage rgb;
  rgb.height = H;
  rgb.width = W;
  rgb.pixels.resize(static_cast<size_t>(H * W * 3));
  const uint8_t* src = chw.data_ptr<uint8_t>();
  for (int64_t p = 0; p < H * W; ++p)
    for (int64_t c = 0; c < 3; ++c) rgb.pixels[p * 3 + c] = src[(C == 1 ? 0 : c) * H * W + p];
  // Mean 0 and stddev 1/255 make the "normalised" output plain 0..255 pixel values.
  ImageTransformConfig identity;
  identity.mean = {0.0f, 0.0f, 0.0f};
  identity.stddev = {1.0f / 255.0f, 1.0f / 255.0f, 1.0f / 255.0f};
  std::vector<float> planar(static_cast<size_t>(3 * height * width));
  resample_normalized(rgb, PixelBox{0, 0, H, W}, height, width, PixelBox{0, 0, height, width}, false, identity,
                      planar.data());
  const int64_t out_channels = C == 1 ? 1 : 3;
  std::vector<uint8_t> packed(static_cast<size_t>(height * width * out_channels));
  for (int64_t p = 0; p < height * width; ++p)
    for (int64_t c = 0; c < out_channels; ++c)
      packed[p * out_channels + c] =
          static_cast<uint8_t>(std::lround(std::clamp(planar[c * height * width + p], 0.0f, 255.0f)));
  return packed;
}

int64_t write_split(const ImageDataset& data, const ImageFolderWriterOptions& o, const std::string& split,
                    int64_t per_class) {
  const fs::path root = fs::path(o.out_dir) / split;
  std::vector<int64_t> written(static_cast<size_t>(data.num_classes), 0);
  const int64_t* labels = data.labels.data_ptr<int64_t>();
  const PhiloxStream rng{o.seed, mix_stream(kSizePurpose, split == "train" ? 0 : 1)};
  int64_t total = 0;
  for (int64_t i = 0; i < data.size() && total < per_class * data.num_classes; ++i) {
    const int64_t label = labels[i];
    if (written[static_cast<size_t>(label)] >= per_class) continue;
    // Sides between 0.75 and 1.25 times the size, so that the crops see several shapes and aspect ratios.
    const Philox4x32 r = rng.block(static_cast<uint64_t>(i));
    const int64_t height = std::max<int64_t>(8, std::lround(o.size * (0.75 + 0.5 * PhiloxStream::word_to_uniform(r.v[0]))));
    const int64_t width = std::max<int64_t>(8, std::lround(o.size * (0.75 + 0.5 * PhiloxStream::word_to_uniform(r.v[1]))));
    const std::vector<uint8_t> pixels = resized_pixels(data, i, height, width);
    const std::vector<uint8_t> jpeg =
        encode_jpeg(pixels.data(), height, width, data.channels() == 1 ? 1 : 3, o.quality);
    const fs::path dir = root / class_folder(data.name, label);
    fs::create_directories(dir);
    const fs::path file = dir / fmt::format("{}_{:06d}.jpg", split, i);
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    if (!out) throw Error(file.string() + ": cannot write the image");
    ++written[static_cast<size_t>(label)];
    ++total;
  }
  for (int64_t c = 0; c < data.num_classes; ++c)
    if (written[static_cast<size_t>(c)] < per_class)
      throw Error(fmt::format("{} {} split has only {} samples of class {}, fewer than the {} asked for", data.name,
                              split, written[static_cast<size_t>(c)], c, per_class));
  return total;
}

}  // namespace

ImageFolderWriterResult write_image_folder(const ImageFolderWriterOptions& o) {
  if (o.out_dir.empty()) throw Error("make-image-folder: name the output folder");
  if (o.train_per_class < 1 || o.val_per_class < 1)
    throw Error("make-image-folder: the images per class must be >= 1 for both splits");
  if (o.size < 8 || o.size > 1024) throw Error("make-image-folder: --size " + std::to_string(o.size) + " is not 8..1024");
  if (o.quality < 1 || o.quality > 100) throw Error("make-image-folder: --quality must be 1..100");
  for (const char* split : {"train", "val"}) {
    std::error_code ec;
    if (fs::exists(fs::path(o.out_dir) / split, ec))
      throw Error("make-image-folder: " + (fs::path(o.out_dir) / split).string() +
                  " already exists; remove it or choose another output folder");
  }
  const ImageDataset train = load_image_dataset(o.dataset, o.data_dir, Split::Train);
  const ImageDataset test = load_image_dataset(o.dataset, o.data_dir, Split::Test);
  ImageFolderWriterResult result;
  result.classes = train.num_classes;
  result.train_files = write_split(train, o, "train", o.train_per_class);
  result.val_files = write_split(test, o, "val", o.val_per_class);
  return result;
}

}  // namespace fractrain
