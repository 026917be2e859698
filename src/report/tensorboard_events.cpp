#include "fractrain/report/tensorboard_events.h"

#include "fractrain/util/error.h"
#include "tensorboard_event.pb.h"  // generated from src/report/tensorboard_event.proto into the build dir

namespace fractrain {
namespace {

std::string serialized(const tensorboard::Event& event) {
  std::string out;
  if (!event.SerializeToString(&out)) throw Error("TensorBoard event: protobuf could not serialize it");
  return out;
}

}  // namespace

std::string encode_file_version_event(double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_file_version(kTensorBoardFileVersion);
  return serialized(event);
}

std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& values) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : values) {
    tensorboard::Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  return serialized(event);
}

bool decode_scalar_event(const std::string& record, ScalarEvent& out) {
  tensorboard::Event event;
  if (!event.ParseFromString(record)) throw Error("TensorBoard event: the record is not an Event message");
  if (!event.has_summary()) return false;
  out.wall_time = event.wall_time();
  out.step = event.step();
  out.values.clear();
  for (const auto& v : event.summary().value()) out.values.emplace_back(v.tag(), v.simple_value());
  return true;
}

}  // namespace fractrain
