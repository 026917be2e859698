// TensorBoard event files of real Fashion-MNIST runs, read back here independently of the writer: the TFRecord
// framing with its masked CRC-32C, the Event messages with the protobuf code generated from
// src/report/tensorboard_event.proto. Every scalar must be a number of metrics.jsonl (the same tags, steps and
// values as float), and nothing else; a resume from an earlier checkpoint leaves one file without stale steps;
// a DFQ run has its per-block option frequencies; output.tensorboard = false writes no file.
// (tests/tensorboard_reads_events.py checks the same with TensorBoard's own reader.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "fractrain/train/trainer.h"
#include "fractrain/util/tfrecord.h"
#include "run_test_support.h"
#include "tensorboard_event.pb.h"  // generated into the build dir
#include "test_support.h"

using namespace fractrain;
using test_support::quiet;
using test_support::read_metrics;
namespace fs = std::filesystem;

namespace {

using Scalars = std::map<std::string, float>;  // tag -> value

struct EventFile {
  std::string file_version;                        // of the first event
  std::vector<std::pair<int64_t, Scalars>> steps;  // the summary events, in file order
};

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  return out;
}

EventFile read_event_file(const std::string& path) {
  EventFile file;
  TFRecordReader reader(path);
  std::string record;
  bool first = true;
  while (reader.next(record)) {
    fractrain::tensorboard::Event event;
    if (!event.ParseFromString(record)) throw std::runtime_error(path + ": a record is not an Event");
    if (first) {
      file.file_version = event.file_version();
      first = false;
      continue;
    }
    if (!event.has_summary()) throw std::runtime_error(path + ": an event after the first without a summary");
    Scalars scalars;
    for (const auto& v : event.summary().value()) {
      if (!v.has_simple_value())  // TensorBoard would not take it for a scalar
        throw std::runtime_error(path + ": tag " + v.tag() + " without a simple_value at step " +
                                 std::to_string(event.step()));
      if (!scalars.emplace(v.tag(), v.simple_value()).second)
        throw std::runtime_error(path + ": tag " + v.tag() + " twice at step " + std::to_string(event.step()));
    }
    file.steps.emplace_back(event.step(), scalars);
  }
  return file;
}

// A metrics record's numbers by JSON pointer (nlohmann's flatten), the pointer's "/" path being the tag.
Scalars expected_scalars(const nlohmann::json& record) {
  Scalars out;
  const nlohmann::json flat = record.flatten();  // named: a range-for would not keep the temporary alive
  for (const auto& [pointer, value] : flat.items()) {
    if (pointer == "/step" || !value.is_number()) continue;
    std::string tag = pointer.substr(1);
    for (size_t i; (i = tag.find("~1")) != std::string::npos;) tag.replace(i, 2, "/");  // JSON pointer escapes
    for (size_t i; (i = tag.find("~0")) != std::string::npos;) tag.replace(i, 2, "~");
    out[tag] = static_cast<float>(value.get<double>());
  }
  return out;
}

// The run directory holds one event file, opened by the file_version, whose events are metrics.jsonl's
// records one for one: same steps in the same order, same tags, same values as float.
EventFile expect_events_match_metrics(const std::string& dir) {
  const auto files = event_files(dir);
  EXPECT_EQ(files.size(), 1u) << "event files in " << dir;
  if (files.empty()) return {};
  const EventFile file = read_event_file(files[0]);
  EXPECT_EQ(file.file_version, "brain.Event:2");
  const auto records = read_metrics(dir);
  EXPECT_FALSE(records.empty());
  EXPECT_EQ(file.steps.size(), records.size());
  for (size_t i = 0; i < std::min(records.size(), file.steps.size()); ++i) {
    const int64_t step = records[i]["step"].get<int64_t>();
    EXPECT_EQ(file.steps[i].first, step) << "event " << i;
    const Scalars want = expected_scalars(records[i]);
    const Scalars& got = file.steps[i].second;
    for (const auto& [tag, value] : want) {
      const auto it = got.find(tag);
      if (it == got.end())
        ADD_FAILURE() << tag << " at step " << step << " is in metrics.jsonl, not in the event file";
      else
        EXPECT_EQ(it->second, value) << tag << " at step " << step;
    }
    for (const auto& [tag, value] : got)
      EXPECT_TRUE(want.count(tag)) << tag << " = " << value << " at step " << step << " is not in metrics.jsonl";
  }
  return file;
}

RunConfig tiny_run(const std::string& dir) {
  RunConfig c = test_support::small_run(dir, "resnet8", 256, 32);
  c.precision.fw = 8;
  c.precision.bw = 8;
  c.train.iterations = 8;
  c.train.eval_every = 4;
  return c;
}

}  // namespace

TEST(TensorBoardEndToEnd, EventFileHoldsTheMetricsScalars) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_tb_e2e");
  train_run(tiny_run(temp.str()), quiet());
  const EventFile file = expect_events_match_metrics(temp.str());
  ASSERT_EQ(file.steps.size(), 2u);
  // The scalars the issue names, by the metrics.jsonl keys they carry.
  for (const char* tag : {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "cp", "stage",
                          "bit_macs", "energy_j", "epoch"})
    EXPECT_TRUE(file.steps.back().second.count(tag)) << tag;
}

TEST(TensorBoardEndToEnd, ResumeFromAnEarlierCheckpointLeavesNoStaleSteps) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_tb_resume");
  RunConfig c = tiny_run(temp.str());
  c.train.eval_every = 2;
  c.train.checkpoint_every = 4;
  c.train.keep_checkpoints = 3;
  train_run(c, quiet());
  // Back to step 4: the evaluations at 6 and 8 are written again, with new values for their windows.
  TrainOptions resume = quiet();
  resume.resume_from = temp.file("checkpoints/step-00000004.ckpt");
  ASSERT_TRUE(fs::exists(resume.resume_from));
  train_run(c, resume);
  const EventFile file = expect_events_match_metrics(temp.str());
  std::vector<int64_t> steps;
  for (const auto& s : file.steps) steps.push_back(s.first);
  EXPECT_EQ(steps, std::vector<int64_t>({2, 4, 6, 8}));
}

TEST(TensorBoardEndToEnd, DfqRunHasThePerBlockOptionFrequencies) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_tb_dfq");
  RunConfig c = tiny_run(temp.str());
  c.precision.mode = PrecisionMode::Dfq;
  c.precision.fw = c.precision.bw = 0;  // the gates choose the precision
  c.train.iterations = 4;
  train_run(c, quiet());
  const EventFile file = expect_events_match_metrics(temp.str());
  ASSERT_FALSE(file.steps.empty());
  const nlohmann::json record = read_metrics(temp.str()).back();
  const size_t options = record["gate_options"].size();
  ASSERT_GT(options, 1u);
  ASSERT_FALSE(record["gate_selection"].empty());
  const Scalars& scalars = file.steps.back().second;
  for (const auto& [block, fractions] : record["gate_selection"].items()) {
    float sum = 0.0f;
    for (size_t k = 0; k < options; ++k) {
      const std::string tag = "gate_selection/" + block + "/" + std::to_string(k);
      ASSERT_TRUE(scalars.count(tag)) << tag;
      sum += scalars.at(tag);
    }
    EXPECT_NEAR(sum, 1.0f, 1e-5f) << block;  // each block's option frequencies
  }
  for (const char* tag : {"window_cp", "window_cp_blocks", "target_cp"}) EXPECT_TRUE(scalars.count(tag)) << tag;
}

TEST(TensorBoardEndToEnd, TurnedOffWritesNoEventFile) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_tb_off");
  RunConfig c = tiny_run(temp.str());
  c.train.iterations = 4;
  c.output.tensorboard = false;
  train_run(c, quiet());
  EXPECT_FALSE(read_metrics(temp.str()).empty());
  EXPECT_TRUE(event_files(temp.str()).empty());
}
