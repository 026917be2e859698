#pragma once
// A TensorBoard event file: DIR/events.out.tfevents.<unix time>.<hostname>, TFRecords of Event messages, the
// first one the file_version. Knows nothing of training: tags, values and steps are the caller's.
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace fractrain {

// Seconds since the Unix epoch, the wall_time of an event.
double tensorboard_wall_time();

// Whether `filename` (no directory) is an event file by TensorBoard's rule (its name contains "tfevents").
bool is_tensorboard_event_file(const std::string& filename);

class TensorBoardWriter {
 public:
  // Creates (or truncates) the event file and writes its file_version event. Throws fractrain::Error naming the
  // file when it cannot be written.
  explicit TensorBoardWriter(const std::string& dir);
  // Writes one event holding `scalars` (tag, value) at `step`, and flushes it so a live TensorBoard sees it.
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars,
                     double wall_time = tensorboard_wall_time());
  // Writes an already serialized Event (one carried over from an earlier file), unflushed.
  void write_event(const std::string& serialized_event);
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace fractrain
