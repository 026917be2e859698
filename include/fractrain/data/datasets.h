#pragma once
// The named image datasets fractrain knows how to find and load, with their published normalisation
// statistics.
#include <string>
#include <vector>

#include "fractrain/data/image_dataset.h"

namespace fractrain {

enum class Split { Train, Test };

// "train" or "test", for messages and reports.
const char* split_name(Split split);

// The names load_image_dataset accepts: "fashion-mnist", "mnist", "cifar10", "cifar100".
std::vector<std::string> image_dataset_names();

// Where a dataset lives when the user gives no directory: the Debian package's folder for the MNISTs,
// a data/ folder relative to the working directory for the CIFARs (which Debian does not package).
// Throws fractrain::Error listing the valid names for an unknown name.
std::string default_data_dir(const std::string& name);

// Loads one split into memory. dir empty means default_data_dir(name). The MNISTs look for the standard IDX
// file names, gzipped or not; the CIFARs look in dir and in dir/cifar-10-batches-bin (dir/cifar-100-binary),
// the folder their archives extract to. Throws fractrain::Error naming the expected paths and how to get the
// files when they are missing, and naming the file and the problem when one is corrupt.
ImageDataset load_image_dataset(const std::string& name, const std::string& dir, Split split);

}  // namespace fractrain
