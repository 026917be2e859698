#pragma once
// Small generated image folders for the image-folder tests: JPEGs written with libturbojpeg's encoder, of
// several sizes, in colour and in grayscale, each class with its own colour so that a label can be told from
// the pixels.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fractrain/data/image_codec.h"
#include "test_support.h"

namespace fractrain::test_support {

// Class folder names deliberately not in sorted order on disk creation; labels follow the sorted names:
// apple 0, mango 1, zebra 2.
inline const std::vector<std::string> kFolderClasses = {"zebra", "apple", "mango"};

// The RGB colour of a class (by its sorted label).
inline std::array<uint8_t, 3> class_colour(int64_t label) {
  static const std::array<uint8_t, 3> colours[3] = {{200, 40, 40}, {40, 180, 60}, {50, 60, 210}};
  return colours[label];
}

inline int64_t sorted_label(const std::string& class_name) {
  return class_name == "apple" ? 0 : class_name == "mango" ? 1 : 2;
}

// A class-coloured image with a mild diagonal ripple, packed RGB.
inline std::vector<uint8_t> class_image(int64_t label, int64_t height, int64_t width) {
  const auto colour = class_colour(label);
  std::vector<uint8_t> pixels(static_cast<size_t>(height * width * 3));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        pixels[(y * width + x) * 3 + c] = static_cast<uint8_t>(colour[c] + ((x + y + 3 * c) % 7) * 3 - 9);
  return pixels;
}

// ROOT/SPLIT/CLASS/img_K.jpg for the three classes, `per_class` images each: the sizes differ per image, and
// the last image of each class is a grayscale JPEG (of the class colour's luminance).
inline void write_generated_split(const std::string& root, const std::string& split, int64_t per_class) {
  static const int64_t sizes[][2] = {{40, 56}, {64, 48}, {72, 72}, {33, 71}, {90, 60}};
  for (const std::string& name : kFolderClasses) {
    const int64_t label = sorted_label(name);
    for (int64_t k = 0; k < per_class; ++k) {
      const int64_t h = sizes[k % 5][0], w = sizes[k % 5][1];
      std::vector<uint8_t> rgb = class_image(label, h, w);
      std::vector<uint8_t> jpeg;
      if (k == per_class - 1) {
        std::vector<uint8_t> gray(static_cast<size_t>(h * w));
        for (int64_t p = 0; p < h * w; ++p)
          gray[p] = static_cast<uint8_t>((299 * rgb[3 * p] + 587 * rgb[3 * p + 1] + 114 * rgb[3 * p + 2]) / 1000);
        jpeg = encode_jpeg(gray.data(), h, w, 1, 95);
      } else {
        jpeg = encode_jpeg(rgb.data(), h, w, 3, 95);
      }
      write_file(root + "/" + split + "/" + name + "/img_" + std::to_string(k) + ".jpg", jpeg);
    }
  }
}

// A whole folder: 4 training and 2 validation images per class.
inline void write_generated_folder(const std::string& root, int64_t train_per_class = 4, int64_t val_per_class = 2) {
  write_generated_split(root, "train", train_per_class);
  write_generated_split(root, "val", val_per_class);
}

}  // namespace fractrain::test_support
