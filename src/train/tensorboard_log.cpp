#include "fractrain/train/tensorboard_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "fractrain/report/tensorboard_events.h"
#include "fractrain/report/tensorboard_writer.h"
#include "fractrain/util/error.h"
#include "fractrain/util/tfrecord.h"

namespace fs = std::filesystem;

namespace fractrain {
namespace {

// Numbers become scalars; strings ("precision"), booleans and nulls are not numbers TensorBoard can plot. A
// non-finite number is null in metrics.jsonl (JSON has no NaN), so it is left out here too: the event file
// holds exactly metrics.jsonl's numbers.
void collect(const nlohmann::json& value, const std::string& tag, std::vector<std::pair<std::string, double>>& out) {
  if (value.is_number()) {
    const double v = value.get<double>();
    if (std::isfinite(v)) out.emplace_back(tag, v);
  } else if (value.is_object()) {
    for (const auto& [key, child] : value.items()) collect(child, tag + "/" + key, out);
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) collect(value[i], tag + "/" + std::to_string(i), out);
  }
}

// The events of the directory's earlier event files at steps up to `keep_up_to_step`, in file (name) order.
// A damaged file keeps what precedes the damage: these are a copy of metrics.jsonl, which stays whole.
std::vector<std::string> carried_events(const std::vector<fs::path>& files, int64_t keep_up_to_step) {
  std::vector<std::string> kept;
  for (const auto& file : files) {
    try {
      TFRecordReader reader(file.string());
      std::string record;
      ScalarEvent event;
      while (reader.next(record))
        if (decode_scalar_event(record, event) && event.step <= keep_up_to_step) kept.push_back(record);
    } catch (const Error& e) {
      std::printf("note: TensorBoard events after the damage are dropped (metrics.jsonl has them): %s\n", e.what());
    }
  }
  return kept;
}

}  // namespace

std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, value] : record.items())
    if (key != "step") collect(value, key, out);
  return out;
}

TensorBoardLog::TensorBoardLog(const std::string& dir, int64_t keep_up_to_step) {
  std::vector<fs::path> earlier;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && is_tensorboard_event_file(entry.path().filename().string()))
      earlier.push_back(entry.path());
  std::sort(earlier.begin(), earlier.end());
  const std::vector<std::string> kept =
      keep_up_to_step >= 0 ? carried_events(earlier, keep_up_to_step) : std::vector<std::string>{};
  // Written before the earlier files go, so a crash in between loses nothing; the new file may have the name of
  // an earlier one (same second, same host), which is then already read.
  writer_ = std::make_unique<TensorBoardWriter>(dir);
  for (const auto& record : kept) writer_->write_event(record);
  writer_->flush();
  for (const auto& file : earlier)
    if (file != fs::path(writer_->path()) && !fs::remove(file, ec))
      std::printf("note: could not remove the earlier TensorBoard event file %s (%s): TensorBoard shows its "
                  "steps twice until it is deleted\n",
                  file.string().c_str(), ec.message().c_str());
}

TensorBoardLog::~TensorBoardLog() = default;

void TensorBoardLog::append(const nlohmann::json& record) {
  if (!record.contains("step") || !record["step"].is_number_integer())
    throw Error("TensorBoard log: a metrics record without an integer \"step\"");
  writer_->write_scalars(record["step"].get<int64_t>(), tensorboard_scalars(record));
}

std::string TensorBoardLog::path() const { return writer_->path(); }

}  // namespace fractrain
