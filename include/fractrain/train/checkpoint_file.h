#pragma once
// The checkpoint container: a versioned, checksummed envelope around a LibTorch archive.
//
// Why an envelope: a bare torch archive cannot tell "written by another model" or "cut short by a full
// disk" from a bug, and fails deep inside the zip reader. The envelope names the model, the step and the
// run state in readable JSON, and a CRC-32 catches truncation and bit rot before torch sees a byte.
//
// Layout (integers little-endian):
//   "FRACTRAIN-CHECKPOINT\n"   magic line
//   u32  format version (kCheckpointFormatVersion)
//   u64  meta length,    meta JSON text (CheckpointMeta)
//   u64  payload length, payload (torch::serialize::OutputArchive bytes)
//   u32  CRC-32 (zlib) over every byte before it
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

// Forward declarations keep <torch/serialize.h> out of every file that only names a checkpoint.
namespace torch {
namespace serialize {
class InputArchive;
class OutputArchive;
}  // namespace serialize
}  // namespace torch

namespace fractrain {

inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointMeta {
  // On save the current kCheckpointFormatVersion is always written; on load this is what the file holds.
  int format_version = kCheckpointFormatVersion;
  std::string model_name;
  int64_t step = 0;                                 // optimizer steps taken when the checkpoint was written
  int64_t epoch = 0;                                // epochs completed
  nlohmann::json extra = nlohmann::json::object();  // the resolved config and the trainer's state
};

// Serialises the archive that `write_payload` fills, wraps it with `meta`, and replaces `path` atomically
// (write_file_atomically): a crash mid-save leaves the previous checkpoint intact.
void save_checkpoint(const std::string& path, const CheckpointMeta& meta,
                     const std::function<void(torch::serialize::OutputArchive&)>& write_payload);

// Reads and verifies the whole file (magic, version, lengths, checksum) and returns its meta without
// touching the payload: for `fractrain report` and for choosing what to resume from.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Verifies the file as read_checkpoint_meta does, refuses a checkpoint written for another model (skipped
// when `expected_model_name` is empty), then loads the archive and hands it to `read_payload`.
// `map_location` ("cpu", "cuda:0", ...) remaps the stored tensors' device; empty keeps the device they were
// saved from, as torch does. Throws fractrain::Error naming the file and what is wrong with it.
CheckpointMeta load_checkpoint(const std::string& path, const std::string& expected_model_name,
                               const std::function<void(torch::serialize::InputArchive&)>& read_payload,
                               const std::string& map_location = "");

}  // namespace fractrain
