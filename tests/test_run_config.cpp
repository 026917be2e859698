// Run configuration: defaults, TOML parsing, --set overrides, error messages, round trip through to_toml.
#include "fractrain/train/run_config.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "fractrain/train/run_components.h"
#include "fractrain/util/error.h"
#include "test_support.h"

namespace fractrain {
namespace {

using namespace test_support;

TEST(RunConfig, DefaultsMatchTheSpecification) {
  const RunConfig c;
  EXPECT_EQ(c.model.name, "resnet20");
  EXPECT_EQ(c.data.dataset, "fashion-mnist");
  EXPECT_EQ(c.data.path, "");
  EXPECT_EQ(c.data.train_subset, 0);
  EXPECT_EQ(c.data.test_subset, 0);
  EXPECT_EQ(c.data.crop_padding, 2);
  EXPECT_TRUE(c.data.horizontal_flip);
  EXPECT_EQ(c.precision.fw, 0);
  EXPECT_EQ(c.precision.bw, 0);
  EXPECT_TRUE(c.precision.quantize_first_layer);
  EXPECT_FALSE(c.precision.quantize_classifier);
  EXPECT_DOUBLE_EQ(c.precision.activation_momentum, 0.9);
  EXPECT_FALSE(c.precision.snap_zero_point);
  EXPECT_EQ(c.train.epochs, 1);
  EXPECT_EQ(c.train.iterations, 0);
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.train.eval_every, 0);
  EXPECT_EQ(c.train.log_every, 20);
  EXPECT_EQ(c.train.seed, 1u);
  EXPECT_EQ(c.train.threads, 0);
  EXPECT_EQ(c.train.device, "cpu");
  EXPECT_EQ(c.train.checkpoint_every, 0);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.1);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 1e-4);
  EXPECT_FALSE(c.optim.nesterov);
  EXPECT_EQ(c.schedule.type, "multistep");
  EXPECT_TRUE(c.schedule.milestones.empty());
  EXPECT_DOUBLE_EQ(c.schedule.gamma, 0.1);
  EXPECT_EQ(c.schedule.warmup_iterations, 0);
  EXPECT_EQ(c.output.dir, "runs/default");
  EXPECT_NO_THROW(validate(c));
  EXPECT_EQ(parse_run_config("", "empty.toml"), c);
}

TEST(RunConfig, ParsesAFullRecipe) {
  const std::string text = R"(
[model]
name = "resnet38"
[data]
dataset = "cifar10"
path = "/data/cifar"
train_subset = 5000
test_subset = 1000
crop_padding = 4
horizontal_flip = false
[precision]
fw = 8
bw = 16
quantize_first_layer = false
quantize_classifier = true
activation_momentum = 0.99
snap_zero_point = true
[train]
epochs = 160
iterations = 300
batch_size = 64
eval_every = 100
log_every = 10
seed = 42
threads = 2
device = "cuda:1"
checkpoint_every = 50
[optim]
lr = 1          # an integer is fine where a float is expected
momentum = 0.5
weight_decay = 5e-4
nesterov = true
[schedule]
type = "cosine"
milestones = [80, 120]
gamma = 0.2
warmup_iterations = 7
[output]
dir = "runs/r38"
)";
  const RunConfig c = parse_run_config(text, "full.toml");
  EXPECT_EQ(c.model.name, "resnet38");
  EXPECT_EQ(c.data.dataset, "cifar10");
  EXPECT_EQ(c.data.path, "/data/cifar");
  EXPECT_EQ(c.data.train_subset, 5000);
  EXPECT_EQ(c.data.test_subset, 1000);
  EXPECT_EQ(c.data.crop_padding, 4);
  EXPECT_FALSE(c.data.horizontal_flip);
  EXPECT_EQ(c.precision.fw, 8);
  EXPECT_EQ(c.precision.bw, 16);
  EXPECT_FALSE(c.precision.quantize_first_layer);
  EXPECT_TRUE(c.precision.quantize_classifier);
  EXPECT_DOUBLE_EQ(c.precision.activation_momentum, 0.99);
  EXPECT_TRUE(c.precision.snap_zero_point);
  EXPECT_EQ(c.train.epochs, 160);
  EXPECT_EQ(c.train.iterations, 300);
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_EQ(c.train.eval_every, 100);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_EQ(c.train.seed, 42u);
  EXPECT_EQ(c.train.threads, 2);
  EXPECT_EQ(c.train.device, "cuda:1");
  EXPECT_EQ(c.train.checkpoint_every, 50);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1.0);
  EXPECT_DOUBLE_EQ(c.optim.momentum, 0.5);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 5e-4);
  EXPECT_TRUE(c.optim.nesterov);
  EXPECT_EQ(c.schedule.type, "cosine");
  EXPECT_EQ(c.schedule.milestones, (std::vector<int64_t>{80, 120}));
  EXPECT_DOUBLE_EQ(c.schedule.gamma, 0.2);
  EXPECT_EQ(c.schedule.warmup_iterations, 7);
  EXPECT_EQ(c.output.dir, "runs/r38");
}

TEST(RunConfig, DottedKeysAtTopLevelWorkLikeSections) {
  const RunConfig c = parse_run_config("train.batch_size = 32\nprecision.fw = 4\n", "dotted.toml");
  EXPECT_EQ(c.train.batch_size, 32);
  EXPECT_EQ(c.precision.fw, 4);
}

TEST(RunConfig, LoadReadsAFileAndNamesAMissingOne) {
  const TempDir dir("fractrain_run_config");
  const std::string path = dir.file("load.toml");
  write_file(path, "[train]\nepochs = 3\n");
  EXPECT_EQ(load_run_config(path).train.epochs, 3);
  std::filesystem::remove(path);
  const std::string message = error_of([&] { load_run_config(path); });
  EXPECT_CONTAINS(message, path);
  EXPECT_CONTAINS(message, "No such file");
}

TEST(RunConfig, OverridesEveryType) {
  RunConfig c;
  apply_override(c, "model.name=mobilenetv2");
  EXPECT_EQ(c.model.name, "mobilenetv2");
  apply_override(c, "data.path=\"/tmp/with space\"");  // quotes the shell left in are dropped
  EXPECT_EQ(c.data.path, "/tmp/with space");
  apply_override(c, "data.path=");
  EXPECT_EQ(c.data.path, "");
  apply_override(c, "data.horizontal_flip=false");
  EXPECT_FALSE(c.data.horizontal_flip);
  apply_override(c, "precision.snap_zero_point = true");
  EXPECT_TRUE(c.precision.snap_zero_point);
  apply_override(c, "precision.fw=8");
  EXPECT_EQ(c.precision.fw, 8);
  apply_override(c, "train.seed=9223372036854775807");
  EXPECT_EQ(c.train.seed, 9223372036854775807ull);
  apply_override(c, "optim.lr=0.05");
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.05);
  apply_override(c, "optim.weight_decay=5e-4");
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 5e-4);
  apply_override(c, "optim.lr=2");
  EXPECT_DOUBLE_EQ(c.optim.lr, 2.0);
  apply_override(c, "schedule.milestones=[80,120]");
  EXPECT_EQ(c.schedule.milestones, (std::vector<int64_t>{80, 120}));
  apply_override(c, "schedule.milestones=30, 60 ,90");
  EXPECT_EQ(c.schedule.milestones, (std::vector<int64_t>{30, 60, 90}));
  apply_override(c, "schedule.milestones=[]");
  EXPECT_TRUE(c.schedule.milestones.empty());
  apply_override(c, "schedule.milestones=5");
  EXPECT_EQ(c.schedule.milestones, (std::vector<int64_t>{5}));
  apply_override(c, "train.device=cuda:0");
  EXPECT_EQ(c.train.device, "cuda:0");
}

TEST(RunConfig, UnknownKeyInTomlSuggestsTheClosestKey) {
  const std::string message = error_of([] { parse_run_config("[train]\nbatch_size = 4\nbatchsize = 64\n", "x.toml"); });
  EXPECT_CONTAINS(message, "unknown config key 'train.batchsize' in x.toml");
  EXPECT_CONTAINS(message, "x.toml:3");
  EXPECT_CONTAINS(message, "did you mean 'train.batch_size'?");
}

TEST(RunConfig, UnknownKeyInWrongSectionOrWithoutSectionSuggestsTheRightOne) {
  EXPECT_CONTAINS(error_of([] { parse_run_config("[optim]\nepochs = 3\n", "x.toml"); }),
                  "did you mean 'train.epochs'?");
  EXPECT_CONTAINS(error_of([] { parse_run_config("epochs = 3\n", "x.toml"); }), "did you mean 'train.epochs'?");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[trian]\nepochs = 3\n", "x.toml"); }),
                  "did you mean 'train.epochs'?");
}

TEST(RunConfig, UnknownKeyWithNothingCloseListsTheKeysInstead) {
  const std::string message = error_of([] { parse_run_config("[model]\nzzzzzzzz = 1\n", "x.toml"); });
  EXPECT_CONTAINS(message, "unknown config key 'model.zzzzzzzz'");
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
  EXPECT_CONTAINS(message, "--help-config");
}

TEST(RunConfig, UnknownKeyInASubTableIsNamedInFull) {
  const std::string message = error_of([] { parse_run_config("[train.sub]\nepochs = 3\n", "x.toml"); });
  EXPECT_CONTAINS(message, "unknown config key 'train.sub.epochs' in x.toml:2");
  EXPECT_CONTAINS(message, "did you mean 'train.epochs'?");
}

TEST(RunConfig, SectionGivenAsValueIsRefused) {
  EXPECT_CONTAINS(error_of([] { parse_run_config("train = 5\n", "x.toml"); }), "'train' must be a table");
}

TEST(RunConfig, UnknownKeyInSetSuggestsTheClosestKey) {
  RunConfig c;
  const std::string message = error_of([&] { apply_override(c, "train.batchsize=64"); });
  EXPECT_CONTAINS(message, "unknown config key 'train.batchsize'");
  EXPECT_CONTAINS(message, "--set");
  EXPECT_CONTAINS(message, "did you mean 'train.batch_size'?");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "lr=0.1"); }), "did you mean 'optim.lr'?");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train=1"); }), "is a section");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.batch_size"); }), "is not key=value");
}

TEST(RunConfig, WrongTypesInTomlNameKeyValueAndFile) {
  std::string m = error_of([] { parse_run_config("[train]\nbatch_size = \"big\"\n", "t.toml"); });
  EXPECT_CONTAINS(m, "t.toml:2");
  EXPECT_CONTAINS(m, "train.batch_size = \"big\"");
  EXPECT_CONTAINS(m, "expected an integer, got a string");
  m = error_of([] { parse_run_config("[optim]\nnesterov = 1\n", "t.toml"); });
  EXPECT_CONTAINS(m, "optim.nesterov = 1 has the wrong type: expected a boolean");
  m = error_of([] { parse_run_config("[train]\nepochs = 1.5\n", "t.toml"); });
  EXPECT_CONTAINS(m, "train.epochs = 1.5 has the wrong type");
  m = error_of([] { parse_run_config("[optim]\nlr = \"0.1\"\n", "t.toml"); });
  EXPECT_CONTAINS(m, "optim.lr");
  EXPECT_CONTAINS(m, "expected a number, got a string");
  m = error_of([] { parse_run_config("[schedule]\nmilestones = [80, \"x\"]\n", "t.toml"); });
  EXPECT_CONTAINS(m, "schedule.milestones");
  EXPECT_CONTAINS(m, "element 1 is a string");
  m = error_of([] { parse_run_config("[schedule]\nmilestones = 80\n", "t.toml"); });
  EXPECT_CONTAINS(m, "expected a list of integers");
  m = error_of([] { parse_run_config("[model]\nname = 20\n", "t.toml"); });
  EXPECT_CONTAINS(m, "model.name = 20 has the wrong type: expected a string, got an integer");
}

TEST(RunConfig, WrongTypesInSetNameKeyAndValue) {
  RunConfig c;
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.batch_size=big"); }),
                  "train.batch_size expects an integer: 'big' is not an integer");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.batch_size=12x"); }), "'12x' is not an integer");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.nesterov=yes"); }), "use true or false");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.lr=fast"); }), "'fast' is not a number");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.milestones=[80,x]"); }), "'x' is not an integer");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.milestones=[80,120"); }), "missing the closing ']'");
  EXPECT_EQ(c, RunConfig{});  // refused overrides change nothing
}

TEST(RunConfig, OutOfRangeValuesAreRefusedWithTheReason) {
  std::string m = error_of([] { parse_run_config("[precision]\nfw = 33\n", "r.toml"); });
  EXPECT_CONTAINS(m, "r.toml:2");
  EXPECT_CONTAINS(m, "precision.fw = 33 is out of range: bits must be 0 (full precision) or 1..32");
  m = error_of([] { parse_run_config("[precision]\nfw = -1\n", "r.toml"); });
  EXPECT_CONTAINS(m, "precision.fw = -1 is out of range: bits must be 0 (full precision) or 1..32");
  m = error_of([] { parse_run_config("[precision]\nbw = 4294967296\n", "r.toml"); });
  EXPECT_CONTAINS(m, "precision.bw = 4294967296 is out of range");
  RunConfig c;
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "precision.fw=33"); }),
                  "precision.fw = 33 is out of range: bits must be 0 (full precision) or 1..32");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "precision.bw=-1"); }), "precision.bw = -1 is out of range");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.batch_size=0"); }),
                  "train.batch_size = 0 is out of range: must be >= 1");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.lr=-1"); }), "optim.lr = -1.0 is out of range: must be > 0");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.lr=nan"); }), "optim.lr = nan is out of range");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.momentum=1"); }), "must be in [0, 1)");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "precision.activation_momentum=-0.1"); }), "must be in [0, 1)");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.gamma=0"); }), "must be in (0, 1]");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "optim.weight_decay=-1e-4"); }), "must be >= 0");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.epochs=-1"); }), "must be >= 0");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.seed=-1"); }), "train.seed = -1 is out of range");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.device=gpu"); }),
                  "train.device = \"gpu\" is not a device: use cpu, cuda or cuda:N");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.device=cuda:"); }), "is not a device");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.device=cuda:x"); }), "is not a device");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.type=step"); }),
                  "schedule.type = \"step\" is not a known schedule: use constant, multistep, cosine or inverse-sqrt");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.milestones=[120,80]"); }), "not strictly increasing");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "schedule.milestones=[80,80]"); }), "not strictly increasing");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "model.name="); }), "model.name = \"\" is empty");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "train.comm_wait=sometimes"); }),
                  "train.comm_wait = \"sometimes\" is not a known wait mode: use auto, spin or block");
  EXPECT_EQ(c, RunConfig{});
}

TEST(RunConfig, ExecutionAndErrorWeightRangesAreNamedKeys) {
  const RunConfig defaults;
  EXPECT_EQ(defaults.precision.execution, ExecutionMode::Simulated);
  EXPECT_EQ(defaults.precision.error_weight_ranges, "auto");
  const RunConfig c = parse_run_config(
      "[precision]\nexecution = \"integer\"\nerror_weight_ranges = \"per_input_channel\"\n", "int.toml");
  EXPECT_EQ(c.precision.execution, ExecutionMode::Integer);
  EXPECT_EQ(c.precision.error_weight_ranges, "per_input_channel");
  EXPECT_EQ(parse_run_config(to_toml(c), "roundtrip"), c);
  for (const char* ranges : {"auto", "per_output_channel", "per_input_channel"}) {
    RunConfig d;
    EXPECT_NO_THROW(apply_override(d, std::string("precision.error_weight_ranges=") + ranges)) << ranges;
    EXPECT_EQ(d.precision.error_weight_ranges, ranges);
  }

  RunConfig d;
  std::string m = error_of([&] { apply_override(d, "precision.execution=int8"); });
  EXPECT_CONTAINS(m, "precision.execution = \"int8\" is not a known layer execution: use simulated or integer");
  m = error_of([] { parse_run_config("[precision]\nerror_weight_ranges = \"per_input_chanel\"\n", "r.toml"); });
  EXPECT_CONTAINS(m, "r.toml:2");
  EXPECT_CONTAINS(m, "precision.error_weight_ranges = \"per_input_chanel\" is not a known error-pass weight range: use "
                     "auto, per_output_channel or per_input_channel");
  EXPECT_CONTAINS(m, "did you mean 'per_input_channel'");
  EXPECT_EQ(d, RunConfig{});

  // Integer execution with the paper's error-pass weight: no kernel can run it, so it is refused by name.
  m = error_of([] {
    parse_run_config("[precision]\nexecution = \"integer\"\nerror_weight_ranges = \"per_output_channel\"\n",
                     "bad.toml");
  });
  EXPECT_CONTAINS(m, "bad.toml");
  EXPECT_CONTAINS(m, "precision.error_weight_ranges = \"per_output_channel\" cannot run with precision.execution = "
                     "\"integer\"");
  EXPECT_CONTAINS(m, "set precision.error_weight_ranges to \"auto\" or \"per_input_channel\"");
  RunConfig e;
  e.precision.execution = ExecutionMode::Integer;
  e.precision.error_weight_ranges = "per_output_channel";
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(e.precision); }), "cannot run with precision.execution");
  EXPECT_CONTAINS(error_of([&] { quantizer_settings_of(e.precision, 1); }), "cannot run with precision.execution");
  // Each --set alone may pass through the combination; the schedule check after the last one refuses it.
  RunConfig f;
  EXPECT_NO_THROW(apply_override(f, "precision.execution=integer"));
  EXPECT_NO_THROW(apply_override(f, "precision.error_weight_ranges=per_output_channel"));
  EXPECT_ANY_THROW(validate_precision_schedule(f.precision));
}

TEST(RunConfig, QuantizerSettingsResolveExecutionErrorWeightRangesAndSnapping) {
  struct Case {
    ExecutionMode execution;
    std::string ranges;
    bool snap;
    ErrorWeightRanges want_ranges;
    bool want_snap;
  };
  const auto simulated = ExecutionMode::Simulated, integer = ExecutionMode::Integer;
  const auto per_output = ErrorWeightRanges::PerOutputChannel, per_input = ErrorWeightRanges::PerInputChannel;
  for (const Case& c : {Case{simulated, "auto", false, per_output, false}, Case{simulated, "auto", true, per_output, true},
                        Case{simulated, "per_input_channel", false, per_input, false},
                        Case{simulated, "per_output_channel", true, per_output, true},
                        Case{integer, "auto", false, per_input, true},  // snapping forced on
                        Case{integer, "per_input_channel", true, per_input, true}}) {
    PrecisionConfig p;
    p.execution = c.execution;
    p.error_weight_ranges = c.ranges;
    p.snap_zero_point = c.snap;
    p.activation_momentum = 0.5;
    const QuantizerSettings s = quantizer_settings_of(p, 42);
    const std::string what = to_string(c.execution) + " " + c.ranges + (c.snap ? " snap" : "");
    EXPECT_EQ(s.execution, c.execution) << what;
    EXPECT_EQ(s.error_weight_ranges, c.want_ranges) << what;
    EXPECT_EQ(s.snap_zero_point, c.want_snap) << what;
    EXPECT_EQ(effective_error_weight_ranges(p), c.want_ranges) << what;
    EXPECT_EQ(effective_snap_zero_point(p), c.want_snap) << what;
    EXPECT_FLOAT_EQ(s.activation_momentum, 0.5f);
    EXPECT_EQ(s.noise_seed, 42u);
  }
}

TEST(RunConfig, HelpExplainsExecutionAndErrorWeightRanges) {
  std::string execution, ranges, snap;
  for (const auto& k : config_keys()) {
    if (k.key == "precision.execution") execution = k.description + " default " + k.default_value;
    if (k.key == "precision.error_weight_ranges") ranges = k.description + " default " + k.default_value;
    if (k.key == "precision.snap_zero_point") snap = k.description;
  }
  EXPECT_CONTAINS(execution, "simulated");
  EXPECT_CONTAINS(execution, "integer");
  EXPECT_CONTAINS(execution, "default \"simulated\"");
  EXPECT_CONTAINS(ranges, "per_input_channel");
  EXPECT_CONTAINS(ranges, "per_output_channel");
  EXPECT_CONTAINS(ranges, "default \"auto\"");
  EXPECT_CONTAINS(snap, "always on with precision.execution = \"integer\"");
}

TEST(RunConfig, ValidateChecksAConfigBuiltInCode) {
  RunConfig c;
  c.train.batch_size = 0;
  EXPECT_CONTAINS(error_of([&] { validate(c); }), "train.batch_size = 0 is out of range");
  c = RunConfig{};
  c.precision.fw = 33;
  EXPECT_CONTAINS(error_of([&] { validate(c); }), "precision.fw = 33 is out of range");
  c = RunConfig{};
  c.train.device = "gpu";
  EXPECT_CONTAINS(error_of([&] { validate(c); }), "train.device = \"gpu\" is not a device");
}

TEST(RunConfig, ToTomlRoundTripsExactly) {
  RunConfig c;
  EXPECT_EQ(parse_run_config(to_toml(c), "defaults"), c);
  c.model.name = "resnet110";
  c.data.path = "/data/a \"quoted\" \\ path\twith\ttabs\nand é";
  c.data.train_subset = 123;
  c.precision.fw = 6;
  c.precision.bw = 8;
  c.precision.activation_momentum = 0.1 + 0.2;  // not representable in short decimal
  c.train.seed = 9223372036854775807ull;
  c.train.device = "cuda:3";
  c.optim.lr = 1.0 / 3.0;
  c.optim.momentum = 0;
  c.optim.weight_decay = 1e-300;
  c.schedule.milestones = {1, 2, 1000000};
  c.schedule.gamma = 1;
  c.output.dir = "";
  c.output.dir = "out";
  const std::string text = to_toml(c);
  const RunConfig back = parse_run_config(text, "roundtrip");
  EXPECT_EQ(back, c) << text;
  EXPECT_EQ(back.data.path, c.data.path);
  EXPECT_EQ(back.optim.lr, c.optim.lr);  // bit-exact, not just close
  EXPECT_EQ(back.precision.activation_momentum, c.precision.activation_momentum);
  EXPECT_EQ(to_toml(back), text);
  EXPECT_NE(RunConfig{}, c);
}

TEST(RunConfig, ToTomlWritesEveryDoubleExactly) {
  const std::vector<double> values = {0.0,    1e-4,    1e-5, 123456.0,          1e20, 1e22, 5e-324, 1e308, 0.1,
                                      2.5e-7, 1.0 / 3, 1e16, 4503599627370497.0};
  for (const double v : values) {
    RunConfig c;
    c.optim.weight_decay = v;
    const std::string text = to_toml(c);
    EXPECT_EQ(parse_run_config(text, "doubles").optim.weight_decay, v) << text;
  }
}

TEST(RunConfig, ToJsonHasNestedSections) {
  RunConfig c;
  c.schedule.milestones = {80, 120};
  const nlohmann::json j = to_json(c);
  EXPECT_EQ(j["train"]["batch_size"], 128);
  EXPECT_EQ(j["model"]["name"], "resnet20");
  EXPECT_EQ(j["data"]["horizontal_flip"], true);
  EXPECT_DOUBLE_EQ(j["optim"]["lr"].get<double>(), 0.1);
  EXPECT_EQ(j["schedule"]["milestones"], nlohmann::json::array({80, 120}));
  EXPECT_EQ(j["train"]["seed"], 1);
  EXPECT_EQ(j.size(), 9u);  // model data precision dfq train optim schedule cost output
}

TEST(RunConfig, TomlSyntaxErrorNamesFileAndLine) {
  const std::string message = error_of([] { parse_run_config("[train]\nepochs = 3\nbatch_size = = 4\n", "bad.toml"); });
  EXPECT_CONTAINS(message, "bad.toml:3:");
  EXPECT_CONTAINS(message, "TOML syntax error");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[train]\nepochs = 1\nepochs = 2\n", "dup.toml"); }), "dup.toml:3");
}

TEST(RunConfig, ConfigKeysListEveryKeyOnceWithDefaults) {
  const auto keys = config_keys();
  // As many keys as to_toml writes `key = value` lines: no key is listed without being saved, or saved unlisted.
  const std::string toml = to_toml(RunConfig{});
  size_t assignments = 0;
  std::istringstream lines(toml);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && std::islower(static_cast<unsigned char>(line[0])) && line.find(" = ") != std::string::npos)
      ++assignments;
  EXPECT_EQ(keys.size(), assignments) << toml;
  EXPECT_GE(keys.size(), 55u);
  std::set<std::string> names;
  for (const auto& k : keys) {
    EXPECT_TRUE(names.insert(k.key).second) << k.key;
    EXPECT_FALSE(k.description.empty()) << k.key;
    EXPECT_NE(k.key.find('.'), std::string::npos) << k.key;
    // Every listed key is settable with its own default, so the table and the struct agree.
    RunConfig c;
    EXPECT_NO_THROW(apply_override(c, k.key + "=" + k.default_value)) << k.key;
    EXPECT_EQ(c, RunConfig{}) << k.key;
  }
  const auto find = [&](const std::string& key) {
    for (const auto& k : keys) {
      if (k.key == key) return k;
    }
    return ConfigKeyInfo{};
  };
  EXPECT_EQ(find("train.batch_size").type, "int");
  EXPECT_EQ(find("train.batch_size").default_value, "128");
  EXPECT_EQ(find("model.name").default_value, "\"resnet20\"");
  EXPECT_EQ(find("optim.lr").type, "float");
  EXPECT_EQ(find("optim.lr").default_value, "0.1");
  EXPECT_EQ(find("optim.weight_decay").default_value, "0.0001");
  EXPECT_EQ(find("train.seed").type, "int");
  EXPECT_EQ(find("schedule.milestones").type, "int list");
  EXPECT_EQ(find("schedule.milestones").default_value, "[]");
  EXPECT_EQ(find("data.horizontal_flip").type, "bool");
  EXPECT_EQ(find("data.horizontal_flip").default_value, "true");
}

}  // namespace
}  // namespace fractrain
