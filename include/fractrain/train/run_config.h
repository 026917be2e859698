#pragma once
// The run configuration: every knob of `fractrain train`, typed, with defaults, read from a TOML recipe and
// `--set section.key=value` overrides.
//
// Why one struct: the trainer, the checkpoint (which stores the resolved config) and the report all see the
// same values, and `to_toml` writes a file that reproduces the run exactly.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "fractrain/models/gate_execution.h"
#include "fractrain/nn/execution_mode.h"
#include "fractrain/precision/option_set.h"
#include "fractrain/precision/precision_mode.h"

namespace fractrain {

struct ModelConfig {
  std::string name = "resnet20";
  // transformer-lm only (docs/transformer.md); the defaults are Transformer-base.
  int64_t layers = 6;
  int64_t width = 512;
  int64_t heads = 8;
  int64_t ffn_width = 2048;
  double dropout = 0.1;
  bool tie_embeddings = true;
  bool pre_norm = true;
};

struct DataConfig {
  std::string dataset = "fashion-mnist";
  std::string path;          // empty: the dataset's default directory
  int64_t train_subset = 0;  // 0: all training samples
  int64_t test_subset = 0;   // 0: all test samples
  int64_t crop_padding = 2;  // random-crop padding in pixels (0: no crop); in-memory datasets
  bool horizontal_flip = true;
  // Adaptation / fine-tuning settings (DESIGN.md 4.10): which half of the data this run sees.
  std::string split = "all";  // all | classes-a | classes-b | samples-a | samples-b
  uint64_t split_seed = 0;    // chooses the halves; pretraining and retraining runs must agree on it
  // image-folder datasets (docs/image_folder.md): path/train_folder/CLASS/*.jpg and path/val_folder/CLASS/*.jpg
  std::string train_folder = "train";
  std::string val_folder = "val";
  int64_t image_size = 224;      // training random-resized-crop and evaluation center-crop side
  int64_t resize_size = 256;     // evaluation: shorter side resized to this before the center crop
  double min_crop_scale = 0.08;  // random-resized-crop: smallest share of the image area
  int64_t workers = 0;           // decoding threads; 0 = one per core
  bool skip_corrupt = false;     // true: warn about and skip corrupt image files instead of stopping
  // Token datasets (wikitext103, wordnet-lm): train_subset/test_subset are then token-stream prefixes.
  int64_t sequence_length = 128;  // tokens per training window
  int64_t vocab_min_count = 1;    // words seen fewer times in the train split become <unk>
};

struct PrecisionConfig {
  PrecisionMode mode = PrecisionMode::Static;
  int fw = 0;  // forward bits (weights and activations); 0 = full precision; static mode only
  int bw = 0;  // backward bits (gradients); 0 = full precision; static mode only
  int weight_bits = 0;  // static mode: the weights' width when it differs from fw's; 0 = fw
  // PFQ stages (DESIGN.md 4.4): stage i runs FW pfq_fw[i] / BW pfq_bw[i].
  std::vector<int64_t> pfq_fw = {3, 4, 6, 8};
  std::vector<int64_t> pfq_bw = {6, 6, 8, 8};
  std::vector<int64_t> pfq_switch_epochs;      // pfq-manual; both empty = equal fractions of the run
  std::vector<int64_t> pfq_switch_iterations;  // pfq-manual
  std::vector<double> pfq_switch_fractions;    // pfq-manual: fractions of the run, in (0, 1)
  int64_t pfq_window_iterations = 0;           // pfq-auto / FracTrain indicator window; 0 = one epoch
  double pfq_window_fraction = 0.0;            // the window as a fraction of the run, instead; 0 = unused
  double pfq_eps = 0.05;
  double pfq_alpha = 0.3;
  bool quantize_first_layer = true;
  bool quantize_classifier = false;
  double activation_momentum = 0.9;  // EMA momentum of activation ranges, in [0, 1)
  bool snap_zero_point = false;  // forced on under integer execution (effective_snap_zero_point)
  // How quantized layers compute (nn/execution_mode.h): simulated (fake quantization in FP32) or integer.
  ExecutionMode execution = ExecutionMode::Simulated;
  // The error backward's weight ranges: auto, or a name of error_weight_ranges_names(). auto = per_input_channel
  // under integer execution, per_output_channel otherwise (effective_error_weight_ranges).
  std::string error_weight_ranges = "auto";
  // Data parallel: every rank quantizes on the whole batch's ranges (one collective per quantized tensor), so
  // N ranks compute what one process does; off, each rank uses its slice's ranges (fewer collectives).
  bool sync_ranges = true;
};

// DFQ and FracTrain (DESIGN.md 4.5, 4.6); used when precision.mode is dfq or fractrain. FracTrain's indicator
// takes precision.pfq_window_iterations, pfq_eps and pfq_alpha.
struct DfqConfig {
  std::string options = "auto";           // preset, a list such as "skip,3/6,4/8", or auto (the model's preset)
  int weight_bits = 0;                    // 0 = the preset's
  GateExecution execution = GateExecution::Mixed;
  double target_cp = 3.0;                 // percent of FP32; FracTrain: the overall target
  std::string cp_scope = "blocks";        // blocks (the paper's cp of the gated blocks) | network
  double beta = 1e-3;
  double dead_band = 0.0;                 // percentage points
  int64_t stages = 4;                     // FracTrain
  double cp_step = 0.5;                   // FracTrain: cp_i = cp_0 + i * cp_step
  double last_stage_from = 0.0;           // FracTrain ablation: the last stage holds from this fraction of the run
  // Ablations of the option set (issue 19): the cost term counts weights at this width while the layers run
  // weight_bits (0 = weight_bits), and targets the options cannot reach are accepted (the gates then sit at
  // the cheapest or dearest option) instead of refused.
  int steering_weight_bits = 0;
  bool allow_unreachable_targets = false;
};

struct TrainConfig {
  int64_t epochs = 1;
  int64_t iterations = 0;  // > 0 overrides epochs
  int64_t batch_size = 128;
  int64_t eval_every = 0;  // iterations; 0 = at each epoch end
  int64_t log_every = 20;  // iterations; 0 = never
  uint64_t seed = 1;
  int64_t threads = 0;           // 0 = all cores
  std::string device = "cpu";    // cpu | cuda | cuda:N
  int64_t checkpoint_every = 0;  // iterations; 0 = at each evaluation
  int64_t keep_checkpoints = 1;  // > 1: the newest N also as checkpoints/step-NNNNNNNN.ckpt
  std::string on_nonfinite = "stop";  // NaN/Inf loss or gradient: stop (naming step and layer) | skip the step
  double nonfinite_lr_factor = 0.5;   // skip: the learning rate is multiplied by this at every skipped step
  // When the host reads a step's loss, accuracy and NaN check: every_step, or deferred to the next progress line,
  // indicator window, evaluation or checkpoint (a GPU step then never waits); auto = deferred on CUDA in one process
  // with on_nonfinite = stop (train/deferred_step_totals.h).
  std::string host_reads = "auto";
  // CUDA Graphs (train/graphed_step.h): full batches replay a captured forward and backward pass.
  bool cuda_graphs = false;
  // BatchNorm followed by ReLU (and a ResNet block's add) as one op on fractrain's kernels (nn/fused_batch_norm.h):
  // training on the CPU in one process; the same maths, not torch's rounding. false: torch's ops, bit for bit.
  bool fused_batch_norm = false;
  // Start from the weights of another run (its checkpoint file, or its output dir for checkpoints/last.ckpt):
  // pretraining for the adaptation and fine-tuning settings. Fresh optimizer, schedule and cost.
  std::string init_from;
  // Data parallel (fractrain train --nproc, or RANK/WORLD_SIZE from a launcher): BatchNorm normalises with the
  // whole batch's statistics; gradients travel as fp32, fp16, or quantized to the step's backward width (bw);
  // a collective that waits longer than comm_timeout_s (a dead or stuck peer) ends the run. comm_wait: how a
  // rank waits for its peers (ProcessGroupOptions::spin_wait): spin, block, or auto (spin when this node's ranks
  // times their threads fit its cores).
  bool sync_batchnorm = true;
  std::string grad_comm = "fp32";
  double comm_timeout_s = 300;
  std::string comm_wait = "auto";
};

struct OptimConfig {
  std::string name = "sgd";  // sgd | adam
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
  double adam_beta1 = 0.9;   // the Transformer recipe's (0.9, 0.98), eps 1e-9 (DESIGN.md 4.10)
  double adam_beta2 = 0.98;
  double adam_eps = 1e-9;
};

struct ScheduleConfig {
  std::string type = "multistep";   // constant | multistep | cosine | inverse-sqrt
  std::vector<int64_t> milestones;  // epochs at which lr *= gamma (multistep)
  std::vector<double> milestone_fractions;  // the same as fractions of the run, in (0, 1) (instead of epochs)
  double gamma = 0.1;
  int64_t warmup_iterations = 0;
};

struct CostConfig {
  std::string hardware;  // accelerator model TOML; empty = builtin_hardware_model() (configs/hardware/bitfusion.toml)
};

struct OutputConfig {
  std::string dir = "runs/default";
  bool tensorboard = true;  // events.out.tfevents.* in dir: metrics.jsonl's numbers for TensorBoard
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  PrecisionConfig precision;
  DfqConfig dfq;
  TrainConfig train;
  OptimConfig optim;
  ScheduleConfig schedule;
  CostConfig cost;
  OutputConfig output;
};

bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }

// Reads a TOML recipe. Keys not in the file keep their defaults. Throws fractrain::Error for a missing
// file, a TOML syntax error (with file and line), an unknown key (with a did-you-mean), a value of the wrong
// type or out of range.
RunConfig load_run_config(const std::string& toml_path);

// As load_run_config, from text; `source_name` names the text in error messages.
RunConfig parse_run_config(const std::string& toml_text, const std::string& source_name);

// Applies one `--set section.key=value` override (value parsed per the key's type: bools true/false,
// int lists as [1,2] or 1,2, strings with or without quotes), then validates the config.
void apply_override(RunConfig& config, const std::string& assignment);

// Every key with its resolved value, as TOML that parse_run_config reads back to an equal RunConfig.
std::string to_toml(const RunConfig& config);

// The same values as nested JSON objects ({"train": {"batch_size": 128, ...}, ...}).
nlohmann::json to_json(const RunConfig& config);

// Throws fractrain::Error naming the first key whose value is out of range.
void validate(const RunConfig& config);

// Throws fractrain::Error naming the keys when precision keys that must agree do not (pfq_fw and pfq_bw of
// equal length, switch points one per turning point, fw/bw left 0 in pfq modes, error_weight_ranges not
// per_output_channel under integer execution). Not part of validate(): a schedule is often changed by several
// --set overrides in a row, and only the last one need agree. Run by parse_run_config and by the trainer before
// it builds anything.
void validate_precision_schedule(const PrecisionConfig& precision);
// The same for the dfq section in dfq/fractrain modes (option set and execution mode readable, targets sane).
void validate_dfq(const RunConfig& config);

// What the run quantizes with, precision.execution applied: integer kernels need integer zero points and an
// error-pass weight whose scale factors out of dX's sum, so integer execution snaps zero points whatever
// precision.snap_zero_point says, and resolves error_weight_ranges = auto to per_input_channel (auto is
// per_output_channel, the paper's, in simulated runs). Throws fractrain::Error for integer execution with
// error_weight_ranges = per_output_channel (validate_precision_schedule refuses it too).
bool effective_snap_zero_point(const PrecisionConfig& precision);
ErrorWeightRanges effective_error_weight_ranges(const PrecisionConfig& precision);

// The gates' options of a dfq/fractrain run: dfq.options at dfq.weight_bits, "auto" being the model's preset
// (OptionSet::default_preset_for).
OptionSet dfq_option_set(const RunConfig& config);

struct ConfigKeyInfo {
  std::string key;            // "train.batch_size"
  std::string type;           // "bool", "int", "float", "string" or "int list"
  std::string default_value;  // as TOML text: 128, "resnet20", [], true
  std::string description;    // one line
};

// All keys in a stable order, for `fractrain train --help-config`.
std::vector<ConfigKeyInfo> config_keys();

}  // namespace fractrain
