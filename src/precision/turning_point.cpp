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

}  // namespace fractrain
