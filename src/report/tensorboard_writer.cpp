#include "fractrain/report/tensorboard_writer.h"

#include <chrono>
#include <ctime>
#include <filesystem>

#include "fractrain/report/tensorboard_events.h"
#include "fractrain/util/error.h"
#include "fractrain/util/host_name.h"
#include "fractrain/util/tfrecord.h"

namespace fractrain {

double tensorboard_wall_time() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

bool is_tensorboard_event_file(const std::string& filename) {
  return filename.find("tfevents") != std::string::npos;
}

// TensorBoard's own naming: it lists a directory's files whose name holds "tfevents" and reads them in name
// order, so the Unix time in the name orders a run's files by their start.
TensorBoardWriter::TensorBoardWriter(const std::string& dir)
    : path_((std::filesystem::path(dir) /
             ("events.out.tfevents." + std::to_string(static_cast<long long>(std::time(nullptr))) + "." +
              host_name()))
                .string()),
      out_(path_, std::ios::binary | std::ios::trunc) {
  if (!out_) throw Error("cannot write the TensorBoard event file " + path_ + ": check that " + dir +
                         " is writable (or set output.tensorboard = false)");
  write_event(encode_file_version_event(tensorboard_wall_time()));
  flush();
}

void TensorBoardWriter::write_event(const std::string& serialized_event) {
  out_ << tfrecord_frame(serialized_event);
}

void TensorBoardWriter::write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars,
                                      double wall_time) {
  write_event(encode_scalar_event(wall_time, step, scalars));
  flush();
}

void TensorBoardWriter::flush() {
  out_.flush();
  if (!out_) throw Error("cannot write the TensorBoard event file " + path_ + " (disk full?)");
}

}  // namespace fractrain
