#pragma once
// The numbers of a run's metrics records as TensorBoard scalars (output.tensorboard): every numeric field of a
// record but "step", tagged by its key (a nested field by its path, "cost/run/cp"; an array element by its
// index, "gate_selection/layer1.0/2"), at the record's step; a non-finite number is null in metrics.jsonl and
// left out here. The event file lives in the run directory next to metrics.jsonl, so `tensorboard --logdir` on
// a run or a sweep directory finds it.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fractrain {

class TensorBoardWriter;

// The scalars of one metrics record: (tag, value) for every number in it except the top-level "step".
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record);

class TensorBoardLog {
 public:
  // Starts a new event file in `dir`. The directory's earlier event files are folded into it and removed: a
  // resumed run (`keep_up_to_step` >= 0, its checkpoint's step) keeps their events up to that step, a new run
  // (-1) none, so TensorBoard never sees the steps a resume or a new run writes again.
  TensorBoardLog(const std::string& dir, int64_t keep_up_to_step);
  ~TensorBoardLog();
  // Writes the record's scalars at its "step" and flushes, so a live TensorBoard sees each evaluation.
  void append(const nlohmann::json& record);
  std::string path() const;

 private:
  std::unique_ptr<TensorBoardWriter> writer_;
};

}  // namespace fractrain
