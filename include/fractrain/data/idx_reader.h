#pragma once
// Readers for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian
// header (magic, then one uint32 per dimension) followed by the raw uint8 payload. Files may be gzipped or
// not; zlib reads both transparently, so the caller never has to know which one it found.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

constexpr uint32_t kIdxImagesMagic = 2051;  // 0x00000803: unsigned bytes, 3 dimensions [N, rows, cols]
constexpr uint32_t kIdxLabelsMagic = 2049;  // 0x00000801: unsigned bytes, 1 dimension [N]

// The whole (decompressed) content of a file that may or may not be gzipped. The content is read without
// trusting any size in it, so a corrupt header can never trigger a huge allocation.
struct FileBytes {
  std::vector<uint8_t> bytes;
  bool gzipped = false;  // for messages: sizes then refer to the decompressed content
};
// Throws fractrain::Error naming the path when the file is missing, unreadable or a corrupt gzip stream.
FileBytes read_file_bytes(const std::string& path);

// uint8 [N, 1, rows, cols] (a channel axis added, ready for ImageDataset), CPU, contiguous.
// Throws fractrain::Error naming the path on a wrong magic, zero or absurd dimensions, a truncated file or
// bytes after the last image.
at::Tensor read_idx_images(const std::string& path);

// int64 [N] with the raw label values (range checks need the class count, so the dataset does them).
at::Tensor read_idx_labels(const std::string& path);

}  // namespace fractrain
