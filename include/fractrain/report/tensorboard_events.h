#pragma once
// TensorBoard's Event messages (TensorFlow's event format: src/report/tensorboard_event.proto), serialized for
// one TFRecord each: the file_version event that opens an event file, and scalar summaries. Knows nothing of
// training: tags, values and steps are the caller's.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fractrain {

inline constexpr const char* kTensorBoardFileVersion = "brain.Event:2";

// Scalars at one step, as written to (or read from) one event.
struct ScalarEvent {
  double wall_time = 0.0;  // seconds since the Unix epoch
  int64_t step = 0;
  std::vector<std::pair<std::string, float>> values;  // (tag, value)
};

std::string encode_file_version_event(double wall_time);
// Values are stored as float (TensorBoard's simple_value).
std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& values);

// Decodes one record: true and `out` for a scalar summary event, false for any other event (file_version);
// throws fractrain::Error when the record is not an Event.
bool decode_scalar_event(const std::string& record, ScalarEvent& out);

}  // namespace fractrain
