#include "fractrain/data/cifar_reader.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>

#include "fractrain/data/idx_reader.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

constexpr int64_t kPixelBytes = 3 * 32 * 32;

const char* variant_name(CifarVariant variant) {
  return variant == CifarVariant::Cifar10 ? "CIFAR-10" : "CIFAR-100";
}

int64_t label_bytes(CifarVariant variant) { return variant == CifarVariant::Cifar10 ? 1 : 2; }

// Checks the size and every label of one file before anything is copied, so a bad file leaves no half-built
// dataset behind and the message can name the first bad record.
int64_t checked_record_count(const std::string& path, const FileBytes& file, CifarVariant variant) {
  const int64_t record = cifar_record_bytes(variant);
  const int64_t size = static_cast<int64_t>(file.bytes.size());
  const std::string name = variant_name(variant);
  const std::string binary_hint = "download the binary version (" +
                                  std::string(variant == CifarVariant::Cifar10 ? "cifar-10-binary.tar.gz"
                                                                               : "cifar-100-binary.tar.gz") +
                                  ") from https://www.cs.toronto.edu/~kriz/cifar.html; the python pickles are not "
                                  "supported";
  if (size == 0) throw Error(path + ": the file is empty; " + binary_hint);
  if (size % record != 0) {
    throw Error(path + ": size " + std::to_string(size) + " bytes" + (file.gzipped ? " once decompressed" : "") +
                " is not a multiple of the " + name + " record size " + std::to_string(record) + " (" +
                std::to_string(label_bytes(variant)) + " label byte(s) + 3072 pixel bytes); the file is truncated "
                "or not a " + name + " binary file; " + binary_hint);
  }
  const int64_t count = size / record;
  const int64_t classes = cifar_num_classes(variant);
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* rec = file.bytes.data() + i * record;
    if (variant == CifarVariant::Cifar100 && rec[0] >= 20) {
      throw Error(path + ": record " + std::to_string(i) + " has coarse label " + std::to_string(rec[0]) +
                  " but CIFAR-100 has 20 superclasses (0..19); the file is corrupt or not a CIFAR-100 file "
                  "(a CIFAR-10 file has 1 label byte per record); " + binary_hint);
    }
    const uint8_t label = rec[label_bytes(variant) - 1];
    if (label >= classes) {
      throw Error(path + ": record " + std::to_string(i) + " has label " + std::to_string(label) + " but " + name +
                  " has " + std::to_string(classes) + " classes (0.." + std::to_string(classes - 1) +
                  "); the file is corrupt or from the other CIFAR variant; " + binary_hint);
    }
  }
  return count;
}

}  // namespace

int64_t cifar_num_classes(CifarVariant variant) { return variant == CifarVariant::Cifar10 ? 10 : 100; }

int64_t cifar_record_bytes(CifarVariant variant) { return label_bytes(variant) + kPixelBytes; }

CifarRecords read_cifar_files(const std::vector<std::string>& paths, CifarVariant variant) {
  if (paths.empty()) throw Error(std::string(variant_name(variant)) + ": no files given to read");
  // Reading every file first costs one extra copy of the raw bytes but lets us size the output exactly.
  std::vector<FileBytes> files;
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const std::string& path : paths) {
    files.push_back(read_file_bytes(path));
    counts.push_back(checked_record_count(path, files.back(), variant));
    total += counts.back();
  }

  CifarRecords out;
  out.images = at::empty({total, 3, 32, 32}, at::kByte);
  out.labels = at::empty({total}, at::kLong);
  uint8_t* images = out.images.data_ptr<uint8_t>();
  int64_t* labels = out.labels.data_ptr<int64_t>();
  const int64_t record = cifar_record_bytes(variant);
  const int64_t label_offset = label_bytes(variant) - 1;  // the fine label is the last label byte
  int64_t first = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const uint8_t* in = files[f].bytes.data();
    at::parallel_for(0, counts[f], 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint8_t* rec = in + i * record;
        labels[first + i] = rec[label_offset];
        std::memcpy(images + (first + i) * kPixelBytes, rec + label_bytes(variant), kPixelBytes);
      }
    });
    first += counts[f];
    files[f].bytes = {};  // free early: CIFAR-10's training files are 150 MB together
  }
  return out;
}

}  // namespace fractrain
