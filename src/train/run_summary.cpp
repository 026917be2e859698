#include "fractrain/train/run_summary.h"

#include <filesystem>
#include <fstream>
#include <limits>

#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every plain top-level key of summary.json and the member that holds it, in one list: to_json, from_json and
// operator== all walk it, so a field added here is written, read back and compared. The task's keys and the
// language-model keys are conditional and handled next to the walks.
template <class Visit>
void for_each_field(Visit&& visit) {
  visit("model", &RunSummary::model);
  visit("dataset", &RunSummary::dataset);
  visit("train_samples", &RunSummary::train_samples);
  visit("test_samples", &RunSummary::test_samples);
  visit("parameters", &RunSummary::parameters);
  visit("precision", &RunSummary::precision);
  visit("turning_points", &RunSummary::turning_points);
  visit("stages", &RunSummary::stages);
  visit("steps", &RunSummary::steps);
  visit("total_steps", &RunSummary::total_steps);
  visit("epochs", &RunSummary::epochs);
  visit("interrupted", &RunSummary::interrupted);
  visit("skipped_steps", &RunSummary::skipped_steps);
  visit("final_test_accuracy", &RunSummary::final_test_accuracy);
  visit("final_test_loss", &RunSummary::final_test_loss);
  visit("best_test_accuracy", &RunSummary::best_test_accuracy);
  visit("best_step", &RunSummary::best_step);
  visit("train_seconds", &RunSummary::train_seconds);
  visit("images_per_second", &RunSummary::images_per_second);
  visit("device", &RunSummary::device);
  visit("threads", &RunSummary::threads);
  visit("output_dir", &RunSummary::output_dir);
  visit("cost", &RunSummary::cost);
  visit("config", &RunSummary::config);
}

template <class Visit>
void for_each_language_model_field(Visit&& visit) {
  visit("final_test_perplexity", &LanguageModelSummary::final_test_perplexity);
  visit("best_test_loss", &LanguageModelSummary::best_test_loss);
  visit("best_test_perplexity", &LanguageModelSummary::best_test_perplexity);
}
constexpr const char* kEvalSplit = "eval_split";

// What a fix looks like for any damaged summary: the run has to be made again.
const char* const kRerun = "delete the run's directory and run it again";

// A value inside a summary and its dotted key ("cost.run.cp_percent"), for messages.
struct Place {
  const json& value;
  std::string key;
};

[[noreturn]] void wrong_type(const std::string& where, const Place& p, const char* expected) {
  throw Error(where + ": '" + p.key + "' is " + p.value.type_name() + ", expected " + expected +
              " (the summary is damaged): " + kRerun);
}

Place child(const Place& parent, const char* key, const std::string& where) {
  const std::string path = parent.key.empty() ? key : parent.key + "." + key;
  if (!parent.value.is_object()) wrong_type(where, parent, "an object");
  const auto it = parent.value.find(key);
  if (it == parent.value.end())
    throw Error(where + ": no '" + path + "' (the summary is damaged or was written by an older fractrain): " +
                kRerun);
  return {*it, path};
}

void read(const Place& p, std::string& out, const std::string& where) {
  if (!p.value.is_string()) wrong_type(where, p, "a string");
  out = p.value.get<std::string>();
}
void read(const Place& p, int64_t& out, const std::string& where) {
  if (!p.value.is_number_integer()) wrong_type(where, p, "an integer");
  out = p.value.get<int64_t>();
}
void read(const Place& p, int& out, const std::string& where) {
  if (!p.value.is_number_integer()) wrong_type(where, p, "an integer");
  out = p.value.get<int>();
}
void read(const Place& p, double& out, const std::string& where) {
  if (p.value.is_null()) {  // nlohmann writes NaN and the infinities as null (a diverged loss): read NaN back
    out = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  if (!p.value.is_number()) wrong_type(where, p, "a number");
  out = p.value.get<double>();
}
void read(const Place& p, bool& out, const std::string& where) {
  if (!p.value.is_boolean()) wrong_type(where, p, "true or false");
  out = p.value.get<bool>();
}
void read(const Place& p, std::optional<double>& out, const std::string& where) {
  if (!p.value.is_null() && !p.value.is_number()) wrong_type(where, p, "a number or null");
  out = p.value.is_null() ? std::nullopt : std::optional<double>(p.value.get<double>());
}
// An open-ended part: of the kind its member starts as (an array or an object).
void read(const Place& p, json& out, const std::string& where) {
  if (p.value.type() != out.type()) wrong_type(where, p, out.is_array() ? "an array" : "an object");
  out = p.value;
}

template <class T>
T read_child(const Place& parent, const char* key, const std::string& where) {
  T out{};
  read(child(parent, key, where), out, where);
  return out;
}

CostHeadline cost_headline(const Place& totals, const std::string& where) {
  CostHeadline c;
  c.cp_percent = read_child<double>(totals, "cp_percent", where);
  c.bit_macs = read_child<double>(totals, "bit_macs", where);
  c.energy_j = read_child<double>(totals, "energy_j", where);
  c.latency_s = read_child<double>(totals, "latency_s", where);
  return c;
}

// The typed views name "summary.json" when they read a summary built in memory; from_json names the file.
const char* const kInMemory = "summary.json";

CostHeadline run_cost_of(const RunSummary& s, const std::string& where) {
  return cost_headline(child({s.cost, "cost"}, "run", where), where);
}

std::vector<StageSummary> stages_of(const RunSummary& s, const std::string& where) {
  std::vector<StageSummary> stages;
  for (size_t i = 0; i < s.stages.size(); ++i) {
    const Place stage{s.stages[i], "stages[" + std::to_string(i) + "]"};
    StageSummary out;
    read(child(stage, "stage", where), out.stage, where);
    out.precision = read_child<std::string>(stage, "precision", where);
    out.first_step = read_child<int64_t>(stage, "first_step", where);
    out.steps = read_child<int64_t>(stage, "steps", where);
    out.cost = cost_headline(child(stage, "cost", where), where);
    stages.push_back(out);
  }
  return stages;
}

// An image folder's report (ImageFolderDataset::report) under the task's "data" key; null for in-memory data.
std::optional<ImageFolderSummary> image_folder_of(const RunSummary& s, const std::string& where) {
  const auto data = s.task_data.find("data");
  if (data == s.task_data.end() || !data->is_object()) return std::nullopt;
  const Place place{*data, "data"};
  const Place train = child(place, "train", where), test = child(place, "test", where);
  if (!train.value.is_object()) return std::nullopt;
  ImageFolderSummary out;
  out.dir = read_child<std::string>(train, "dir", where);
  const Place classes = child(train, "classes", where);
  if (!classes.value.is_array()) wrong_type(where, classes, "an array");
  out.classes = classes.value.size();
  out.skipped_corrupt_train = read_child<int64_t>(train, "skipped_corrupt_files", where);
  if (test.value.is_object()) out.skipped_corrupt_test = read_child<int64_t>(test, "skipped_corrupt_files", where);
  return out;
}

bool is_known_key(const std::string& key) {
  bool known = key == kEvalSplit;
  for_each_field([&](const char* name, auto) { known = known || key == name; });
  for_each_language_model_field([&](const char* name, auto) { known = known || key == name; });
  return known;
}

}  // namespace

CostHeadline RunSummary::run_cost() const { return run_cost_of(*this, kInMemory); }
std::vector<StageSummary> RunSummary::stage_summaries() const { return stages_of(*this, kInMemory); }
std::optional<ImageFolderSummary> RunSummary::image_folder() const { return image_folder_of(*this, kInMemory); }

bool RunSummary::finished() const { return !interrupted && total_steps > 0 && steps >= total_steps; }

bool operator==(const RunSummary& a, const RunSummary& b) {
  bool same = a.task_data == b.task_data && a.language_model.has_value() == b.language_model.has_value();
  for_each_field([&](const char*, auto member) { same = same && a.*member == b.*member; });
  if (same && a.language_model) {
    same = a.language_model->eval_split == b.language_model->eval_split;
    for_each_language_model_field(
        [&](const char*, auto member) { same = same && *a.language_model.*member == *b.language_model.*member; });
  }
  return same;
}

json to_json(const RunSummary& s) {
  json out = json::object();
  for_each_field([&](const char* key, auto member) { out[key] = s.*member; });
  // The task's keys come after the run's, as the trainer has always merged them.
  for (const auto& [key, value] : s.task_data.items()) out[key] = value;
  if (s.language_model) {
    out[kEvalSplit] = s.language_model->eval_split;
    for_each_language_model_field([&](const char* key, auto member) {
      const std::optional<double>& v = *s.language_model.*member;
      out[key] = v ? json(*v) : json();
    });
  }
  return out;
}

void to_json(json& out, const RunSummary& summary) { out = to_json(summary); }

RunSummary run_summary_from_json(const json& summary, const std::string& where) {
  const Place top{summary, ""};
  if (!summary.is_object()) wrong_type(where, {summary, "(the whole file)"}, "an object");
  RunSummary s;
  for_each_field([&](const char* key, auto member) { read(child(top, key, where), s.*member, where); });
  if (summary.contains(kEvalSplit)) {
    LanguageModelSummary lm;
    lm.eval_split = read_child<std::string>(top, kEvalSplit, where);
    for_each_language_model_field(
        [&](const char* key, auto member) { read(child(top, key, where), lm.*member, where); });
    s.language_model = lm;
  }
  for (const auto& [key, value] : summary.items())
    if (!is_known_key(key)) s.task_data[key] = value;
  // The typed views must work on what was read: check them here, where the file's name is known.
  run_cost_of(s, where);
  stages_of(s, where);
  image_folder_of(s, where);
  return s;
}

std::string run_summary_path(const std::string& run_dir) { return (fs::path(run_dir) / "summary.json").string(); }

RunSummary read_run_summary(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the run summary (does the run exist, has it ended?)");
  const json parsed = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) throw Error(path + " is damaged (not JSON): " + kRerun);
  return run_summary_from_json(parsed, path);
}

void write_run_summary(const std::string& run_dir, const RunSummary& summary) {
  write_file_atomically(run_summary_path(run_dir), to_json(summary).dump(2) + "\n");
}

}  // namespace fractrain
