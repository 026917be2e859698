#pragma once
// Readers for the binary versions of CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html):
// fixed-size records of label byte(s) followed by a 32x32 image stored as 1024 red, 1024 green, 1024 blue
// bytes, which is exactly the [3, 32, 32] CHW layout the models want.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

enum class CifarVariant {
  Cifar10,   // records of 1 label byte + 3072 pixel bytes, 10 classes
  Cifar100,  // records of 1 coarse + 1 fine label byte + 3072 pixel bytes; we use the 100 fine classes
};

struct CifarRecords {
  at::Tensor images;  // uint8 [N, 3, 32, 32], CPU, contiguous
  at::Tensor labels;  // int64 [N], in [0, num_classes)
};

int64_t cifar_num_classes(CifarVariant variant);
int64_t cifar_record_bytes(CifarVariant variant);

// Reads the files in order and concatenates their records (CIFAR-10's training set is five files).
// Throws fractrain::Error naming the file when it is missing, empty, not a whole number of records, or holds a
// label outside the variant's classes (usually a CIFAR-10 file read as CIFAR-100 or the reverse).
CifarRecords read_cifar_files(const std::vector<std::string>& paths, CifarVariant variant);

}  // namespace fractrain
