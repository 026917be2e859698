#include "fractrain/precision/precision_controller.h"

#include "fractrain/util/error.h"

namespace fractrain {

nlohmann::json to_json(const TurningPoint& t) {
  return {{"stage", t.stage},
          {"step", t.step},
          {"epoch", t.epoch},
          {"differences", t.differences},
          {"eps", t.eps},
          {"precision", t.label.empty() ? to_string(t.precision) : t.label},
          {"act_bits", t.precision.act},
          {"weight_bits", t.precision.weight},
          {"grad_bits", t.precision.grad}};
}

TurningPoint turning_point_from_json(const nlohmann::json& j) {
  TurningPoint t;
  t.stage = j.at("stage").get<int>();
  t.step = j.at("step").get<int64_t>();
  t.epoch = j.at("epoch").get<double>();
  t.differences = j.at("differences").get<std::vector<double>>();
  t.eps = j.at("eps").get<double>();
  t.precision = Precision{j.at("act_bits").get<int>(), j.at("weight_bits").get<int>(), j.at("grad_bits").get<int>(),
                          false};
  t.label = j.at("precision").get<std::string>();
  return t;
}

nlohmann::json schedule_state(const std::string& schedule, int stage, const std::vector<TurningPoint>& points) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : points) list.push_back(to_json(t));
  return {{"schedule", schedule}, {"stage", stage}, {"turning_points", list}};
}

ScheduleState restore_schedule_state(const nlohmann::json& state, const std::string& schedule, int stage_count) {
  if (state.at("schedule").get<std::string>() != schedule)
    throw Error("the checkpoint's precision schedule is '" + state.at("schedule").get<std::string>() +
                "', this run's is '" + schedule + "'");
  ScheduleState s{state.at("stage").get<int>(), {}};
  if (s.stage < 0 || s.stage >= stage_count)
    throw Error("the checkpoint's precision stage " + std::to_string(s.stage) + " is not in 0.." +
                std::to_string(stage_count - 1));
  for (const auto& t : state.at("turning_points")) s.turning_points.push_back(turning_point_from_json(t));
  return s;
}

}  // namespace fractrain
