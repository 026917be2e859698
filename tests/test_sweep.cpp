// `fractrain sweep`: spec parsing and expansion, the results table, and the resumable end-to-end run on a
// slice of Fashion-MNIST (two methods, one seed), interrupted with SIGINT and finished by a second call.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "fractrain/sweep/sweep_results.h"
#include "fractrain/sweep/sweep_runner.h"
#include "fractrain/sweep/sweep_spec.h"
#include "fractrain/train/resume_compatibility.h"
#include "fractrain/util/gnuplot.h"
#include "fractrain/util/stop_signal.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

const std::string kConfigs = std::string(FRACTRAIN_SOURCE_DIR) + "/configs/";

std::string spec_text(const std::string& output, const std::string& extra = "") {
  return "[sweep]\noutput = \"" + output + "\"\nseeds = [1, 2]\nbaseline = \"fw8bw8\"\nreference = \"fp32\"\n" +
         "set = [\"train.epochs=3\", \"train.threads=1\"]\n"
         "[[method]]\nname = \"fp32\"\nconfig = \"" + kConfigs + "fashion_mnist_fp32.toml\"\n"
         "[[method]]\nname = \"fw8bw8\"\nconfig = \"" + kConfigs + "fashion_mnist_fw8bw8.toml\"\n"
         "set = [\"train.epochs=5\"]\n" + extra;
}

}  // namespace

TEST(SweepSpec, ExpandsMethodsSettingsAndSeedsWithOverridesInOrder) {
  const std::string text = spec_text("/tmp/out", "[[setting]]\nname = \"standard\"\n"
                                                 "[[setting]]\nname = \"adaptation\"\npretrain = \"" + kConfigs +
                                                 "fashion_mnist_fp32.toml\"\npretrain_set = [\"data.split=classes-a\"]\n"
                                                 "set = [\"data.split=classes-b\", \"train.epochs=2\"]\n"
                                                 "methods = [\"fw8bw8\"]\n");
  const SweepSpec spec = parse_sweep_spec(text, "spec.toml", {"train.log_every=7"});
  ASSERT_EQ(spec.runs.size(), 2u * 2 + 2 + 2);  // standard 2 methods x 2 seeds; adaptation pretrain + fw8bw8, x 2
  // Pretraining runs come first so parallel jobs never start a run before the weights it starts from.
  EXPECT_EQ(spec.runs[0].method, "pretrain");
  EXPECT_EQ(spec.runs[1].method, "pretrain");
  for (const auto& run : spec.runs) {
    EXPECT_EQ(run.config.train.seed, run.seed);
    EXPECT_EQ(run.config.train.log_every, 7) << "command-line overrides apply to every run";
    EXPECT_EQ(run.config.output.dir,
              "/tmp/out/" + run.setting + "/" + run.method + "/seed-" + std::to_string(run.seed));
    if (run.setting == "standard") {
      EXPECT_EQ(run.depends_on, -1);
      EXPECT_EQ(run.config.data.split, "all");
      // sweep.set (3 epochs), then the method's own set (5 for fw8bw8).
      EXPECT_EQ(run.config.train.epochs, run.method == "fw8bw8" ? 5 : 3);
    } else if (run.method == "pretrain") {
      EXPECT_EQ(run.config.data.split, "classes-a");
      EXPECT_EQ(run.config.train.init_from, "");
    } else {
      // The setting's set comes last: its epochs win over the method's.
      EXPECT_EQ(run.config.train.epochs, 2);
      EXPECT_EQ(run.config.data.split, "classes-b");
      ASSERT_GE(run.depends_on, 0);
      const SweepRun& pre = spec.runs[static_cast<size_t>(run.depends_on)];
      EXPECT_EQ(pre.method, "pretrain");
      EXPECT_EQ(pre.seed, run.seed);
      EXPECT_EQ(run.config.train.init_from, pre.config.output.dir);
    }
  }
}

// The specs under configs/sweeps/ name their recipes relative to the repository root, where the README runs them.
// A method may run a subset of the sweep's seeds (one FP32 reference next to two-seed comparisons); the subset
// keeps the seed-by-seed order, and a seed the sweep does not list is refused.
TEST(SweepSpec, AMethodMayRunASubsetOfTheSeeds) {
  std::string text = spec_text("/tmp/out");
  text.replace(text.find("fashion_mnist_fp32.toml\"\n"), 24, "fashion_mnist_fp32.toml\"\nseeds = [2]\n");
  const SweepSpec spec = parse_sweep_spec(text, "spec.toml");
  std::vector<std::string> labels;
  for (const auto& run : spec.runs) labels.push_back(run_label(run));
  EXPECT_EQ(labels, (std::vector<std::string>{"standard/fw8bw8/seed-1", "standard/fp32/seed-2",
                                              "standard/fw8bw8/seed-2"}));
  std::string foreign = spec_text("/tmp/out");
  foreign.replace(foreign.find("fashion_mnist_fp32.toml\"\n"), 24, "fashion_mnist_fp32.toml\"\nseeds = [3]\n");
  EXPECT_CONTAINS(error_of([&] { parse_sweep_spec(foreign, "s.toml"); }),
                  "method 'fp32' lists seed 3, which sweep.seeds does not");
  std::string empty = spec_text("/tmp/out");
  empty.replace(empty.find("fashion_mnist_fp32.toml\"\n"), 24, "fashion_mnist_fp32.toml\"\nseeds = []\n");
  EXPECT_CONTAINS(error_of([&] { parse_sweep_spec(empty, "s.toml"); }), "method.seeds must be a non-empty list");
}

TEST(SweepSpec, ShippedSpecsLoadFromTheRepositoryRoot) {
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(FRACTRAIN_SOURCE_DIR);
  int specs = 0;
  for (const auto& entry : std::filesystem::directory_iterator("configs/sweeps")) {
    if (entry.path().extension() != ".toml") continue;
    ++specs;
    try {
      const SweepSpec spec = load_sweep_spec(entry.path().string());
      EXPECT_FALSE(spec.runs.empty()) << entry.path();
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << ": " << e.what();
    }
  }
  std::filesystem::current_path(previous);
  EXPECT_GE(specs, 3);
}

TEST(SweepSpec, MalformedSpecsAreRefusedNamingTheProblem) {
  const std::string good = spec_text("/tmp/out");
  EXPECT_NE(error_of([&] { parse_sweep_spec(good + "[[method]]\nname = \"fp32\"\nconfig = \"" + kConfigs +
                                             "fashion_mnist_fp32.toml\"\n", "s.toml"); })
                .find("listed twice"),
            std::string::npos);
  std::string typo = good;
  typo.replace(typo.find("baseline"), 8, "baselin");
  EXPECT_NE(error_of([&] { parse_sweep_spec(typo, "s.toml"); }).find("did you mean 'baseline'"), std::string::npos);
  std::string unknown_base = good;
  unknown_base.replace(unknown_base.find("\"fw8bw8\"\nreference"), 8, "\"fw4bw8\"");
  EXPECT_NE(error_of([&] { parse_sweep_spec(unknown_base, "s.toml"); }).find("'fw4bw8'"), std::string::npos);
  std::string bad_seeds = good;
  bad_seeds.replace(bad_seeds.find("[1, 2]"), 6, "[]");
  EXPECT_NE(error_of([&] { parse_sweep_spec(bad_seeds, "s.toml"); }).find("sweep.seeds"), std::string::npos);
  const std::string bad_override = error_of([&] { parse_sweep_spec(good, "s.toml", {"train.epoch=3"}); });
  EXPECT_NE(bad_override.find("train.epoch"), std::string::npos) << bad_override;
  EXPECT_NE(bad_override.find("run standard/fp32/seed-1"), std::string::npos) << bad_override;
  EXPECT_NE(error_of([&] { parse_sweep_spec(good + "[[setting]]\nname = \"a/b\"\n", "s.toml"); }).find("directory"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_sweep_spec("/nonexistent/spec.toml"); }).find("/nonexistent/spec.toml"),
            std::string::npos);
}

TEST(SweepResults, AggregatesSeedsAndSavingsAgainstTheBaseline) {
  const SweepSpec spec = parse_sweep_spec(spec_text("/tmp/out"), "s.toml");
  std::vector<RunResult> runs = {
      {"standard", "fp32", "fp32", 1, 0.90, 0.91, 100.0, 1000.0, 10.0, 20.0, 60, 3, "", {}},
      {"standard", "fp32", "fp32", 2, 0.92, 0.93, 100.0, 1000.0, 10.0, 20.0, 120, 3, "", {}},
      {"standard", "fw8bw8", "fw8bw8", 1, 0.89, 0.90, 6.25, 62.5, 2.0, 4.0, 30, 3, "", {0.25, 0.625}},
  };
  const auto rows = aggregate_results(spec, runs);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].method, "fp32");
  EXPECT_EQ(rows[0].seeds, 2);
  EXPECT_NEAR(rows[0].accuracy_mean, 0.91, 1e-12);
  EXPECT_NEAR(rows[0].accuracy_sd, std::sqrt(0.0002), 1e-12);  // sample sd of 0.90 and 0.92
  EXPECT_NEAR(rows[0].bit_macs_saving_vs_baseline, 1.0 - 1000.0 / 62.5, 1e-12);
  EXPECT_NEAR(rows[1].bit_macs_saving_vs_reference, 1.0 - 62.5 / 1000.0, 1e-12);
  EXPECT_NEAR(rows[1].energy_saving_vs_baseline, 0.0, 1e-12);
  EXPECT_NEAR(rows[1].accuracy_delta_vs_reference, 0.89 - 0.91, 1e-12);
  const std::string md = results_markdown(spec, rows);
  EXPECT_NE(md.find("| standard | fw8bw8 | 1 | 89.00 ± 0.00 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("93.8%"), std::string::npos) << md;  // fw8bw8 saves 93.75% of FP32's bit-MACs
  // Paired differences: only seed 1 has a baseline run, so fp32's paired delta is seed 1's alone.
  EXPECT_NEAR(rows[0].accuracy_delta_vs_baseline, 0.91 - 0.89, 1e-12);
  EXPECT_NEAR(rows[0].paired_delta_sd_vs_baseline, 0.0, 1e-12);
  EXPECT_NEAR(rows[0].train_seconds, 90.0, 1e-12);
  EXPECT_NE(md.find("| +2.00 ± 0.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1.5 min |"), std::string::npos) << md;
  const std::string per_run = runs_markdown(spec, runs);
  EXPECT_NE(per_run.find("| standard | fp32 | 1 | 90.00% | +1.00 |"), std::string::npos) << per_run;
  EXPECT_NE(per_run.find("| standard | fp32 | 2 | 92.00% | - |"), std::string::npos) << per_run;
  EXPECT_NE(per_run.find("| 0.5 min | 0.250, 0.625 |"), std::string::npos) << per_run;
}

// The CI-sized sweep: two methods x one seed on 256 samples. A SIGINT after the first run finishes stops the
// sweep; the same command then finishes only what is missing, and the table and plots cover both runs.
TEST(SweepEndToEnd, InterruptedSweepFinishesOnlyTheMissingRunsAndWritesTheTable) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir dir("fractrain_sweep");
  const std::string spec_path = dir.file("spec.toml");
  test_support::write_file(
      spec_path,
      "[sweep]\noutput = \"" + dir.file("out") + "\"\nseeds = [1]\nbaseline = \"fw8bw8\"\n"
      "set = [\"model.name=resnet8\", \"data.train_subset=256\", \"data.test_subset=200\", \"train.epochs=3\", "
      "\"train.batch_size=32\", \"train.threads=1\", \"train.log_every=4\"]\n"
      "[[method]]\nname = \"fw8bw8\"\nconfig = \"" + kConfigs + "fashion_mnist_fw8bw8.toml\"\n"
      "[[method]]\nname = \"pfq-manual\"\nconfig = \"" + kConfigs + "fashion_mnist_pfq_manual.toml\"\n");
  const std::string first_summary = dir.file("out/standard/fw8bw8/seed-1/summary.json");
  const std::string log = dir.file("sweep1.log");

  const pid_t pid = test_support::start_cli("sweep " + spec_path, log);
  ASSERT_TRUE(test_support::wait_for([&] { return std::filesystem::exists(first_summary); }, std::chrono::minutes(5)))
      << test_support::read_file(log);
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string first = test_support::read_file(log);
  ASSERT_TRUE(WIFEXITED(status)) << first;
  // Either the second run was paused (exit 1, "interrupted") or it had already finished too (exit 0).
  if (WEXITSTATUS(status) == 1) {
    EXPECT_NE(first.find("interrupted"), std::string::npos) << first;
  }

  const auto second = test_support::run_cli("sweep " + spec_path);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("1 already finished"), std::string::npos)
      << "the finished run must not run again:\n" << second.output;
  EXPECT_EQ(second.output.find("start  standard/fw8bw8"), std::string::npos) << second.output;

  EXPECT_NE(test_support::read_file(dir.file("out/standard/pfq-manual/seed-1/train.log")).find("ETA"), std::string::npos)
      << "a run's log shows its progress";
  // Each run has its own event file in its own directory (the interrupted one too, resumed into one file), so
  // `tensorboard --logdir out` shows the runs side by side, named by their paths under out/.
  auto event_files_in = [](const std::string& d) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(d))
      n += e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
    return n;
  };
  EXPECT_EQ(event_files_in(dir.file("out/standard/fw8bw8/seed-1")), 1);
  EXPECT_EQ(event_files_in(dir.file("out/standard/pfq-manual/seed-1")), 1);
  EXPECT_EQ(event_files_in(dir.file("out")), 0);
  const std::string table = test_support::read_file(dir.file("out/results.csv"));
  EXPECT_NE(table.find("standard,fw8bw8,1,"), std::string::npos) << table;
  EXPECT_NE(table.find("standard,pfq-manual,1,"), std::string::npos) << table;
  EXPECT_NE(test_support::read_file(dir.file("out/results.md")).find("| standard | pfq-manual | 1 |"), std::string::npos);
  if (gnuplot_available()) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("out/accuracy_vs_cost_standard.png")));
    EXPECT_TRUE(std::filesystem::exists(dir.file("out/curves_vs_cost_standard.svg")));
    EXPECT_TRUE(std::filesystem::exists(dir.file("out/standard/pfq-manual/seed-1/report/training_curves.png")))
        << "each finished run gets its own plots";
  }
  std::filesystem::remove(dir.file("out/results.md"));
  const auto redraw = test_support::run_cli("report " + dir.file("out"));
  ASSERT_EQ(redraw.exit_code, 0) << redraw.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/results.md"))) << "`fractrain report` redraws a sweep's table";
  const auto elsewhere = test_support::run_cli("report " + dir.file("out") + " -o " + dir.file("redrawn"));
  ASSERT_EQ(elsewhere.exit_code, 0) << elsewhere.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("redrawn/results.csv"))) << "-o places a sweep's redraw elsewhere";
  if (gnuplot_available()) {
    EXPECT_TRUE(std::filesystem::exists(dir.file("redrawn/standard/fw8bw8/seed-1/curves_vs_cost.svg")));
  }
  // A third call has nothing to do; changing what a finished run computes is refused, not silently mixed.
  const auto third = test_support::run_cli("sweep " + spec_path + " --list");
  EXPECT_NE(third.output.find("finished     standard/pfq-manual/seed-1"), std::string::npos) << third.output;
  const auto changed = test_support::run_cli("sweep " + spec_path + " --set optim.lr=0.2");
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.output.find("optim.lr"), std::string::npos) << changed.output;
}

// `timeout -s INT` and supervisors signal a process and then its whole group: the sweep (and the trainer) get
// two SIGINTs at once, which must mean "stop cleanly", not "exit at once" (that lost a sweep's table).
TEST(StopSignal, TwoSigintsAtTheSameMomentAskToStopWithoutKilling) {
  install_stop_handlers();
  std::raise(SIGINT);
  std::raise(SIGINT);
  EXPECT_TRUE(stop_requested());
  clear_stop_request();
  EXPECT_FALSE(stop_requested());
}

// A finished run stays finished when a default it does not use changes (dfq.options became "auto"): the dfq
// section of a static run, and "auto" against the preset it resolves to, compute the same.
TEST(ResumeCompatibility, KeysARunDoesNotUseOrThatResolveAlikeAreNoDifference) {
  RunConfig before, now;
  before.dfq.options = "cifar-release";
  now.dfq.options = "auto";
  EXPECT_TRUE(compute_differences(before, now).empty()) << "a static run ignores the dfq section";
  before.precision.mode = now.precision.mode = PrecisionMode::Dfq;
  EXPECT_TRUE(compute_differences(before, now).empty()) << "auto is cifar-release for a ResNet";
  now.dfq.options = "cifar-paper";
  ASSERT_EQ(compute_differences(before, now).size(), 1u);
  EXPECT_NE(compute_differences(before, now)[0].find("dfq.options"), std::string::npos);
  now.dfq.options = "auto";
  now.model.name = "mobilenetv2";  // auto = mobilenet-paper there
  EXPECT_EQ(compute_differences(before, now).size(), 2u);
}

// precision.execution is how layers compute and may change on resume; the zero-point snapping and error-pass
// weight ranges it implies change the numbers and may not.
TEST(ResumeCompatibility, ExecutionMayChangeButNotTheQuantizationItImplies) {
  RunConfig before, now;
  before.precision.execution = ExecutionMode::Integer;  // snaps, per_input_channel
  now.precision.snap_zero_point = true;
  now.precision.error_weight_ranges = "per_input_channel";
  EXPECT_TRUE(compute_differences(before, now).empty()) << "simulated reference of the integer run";
  EXPECT_NO_THROW(check_resume_compatible(before, now, "last.ckpt"));
  now.precision.error_weight_ranges = "auto";  // per_output_channel when simulated
  auto differences = compute_differences(before, now);
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_NE(differences[0].find("precision.error_weight_ranges"), std::string::npos) << differences[0];
  now.precision.error_weight_ranges = "per_input_channel";
  now.precision.snap_zero_point = false;
  differences = compute_differences(before, now);
  ASSERT_EQ(differences.size(), 1u);
  EXPECT_NE(differences[0].find("precision.snap_zero_point"), std::string::npos) << differences[0];
  // Integer before and after, written differently: the same numbers.
  now = before;
  now.precision.snap_zero_point = true;
  now.precision.error_weight_ranges = "per_input_channel";
  EXPECT_TRUE(compute_differences(before, now).empty());
  const auto& may_change = keys_resume_may_change();
  EXPECT_NE(std::find(may_change.begin(), may_change.end(), "precision.execution"), may_change.end());
}
