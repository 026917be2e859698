#include "config_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "fractrain/data/dataset_split.h"
#include "fractrain/precision/precision_mode.h"
#include "fractrain/util/did_you_mean.h"

namespace fractrain::config {
namespace {

// ---- mapping struct field types onto value kinds -------------------------------------------------------

template <class T>
constexpr ValueKind kind_of() {
  if constexpr (std::is_same_v<T, bool>)
    return ValueKind::Bool;
  else if constexpr (std::is_integral_v<T>)
    return ValueKind::Int;
  else if constexpr (std::is_floating_point_v<T>)
    return ValueKind::Float;
  else if constexpr (std::is_same_v<T, std::string>)
    return ValueKind::String;
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
    return ValueKind::IntList;
  else {
    static_assert(std::is_same_v<T, std::vector<double>>, "unsupported config field type");
    return ValueKind::FloatList;
  }
}

template <class T>
Value to_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v;
  else if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(v);
  else
    return v;
}

template <class T>
T from_value(const Value& v) {
  if constexpr (std::is_same_v<T, bool>)
    return std::get<bool>(v);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(std::get<int64_t>(v));
  else
    return std::get<T>(v);
}

// Values arrive as int64; a field narrower than that (int bits, uint64 seed) refuses what it cannot hold
// instead of wrapping around silently.
template <class T>
std::string fits_field(const Value& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const int64_t x = std::get<int64_t>(v);
    const int64_t lo = std::is_signed_v<T> ? static_cast<int64_t>(std::numeric_limits<T>::min()) : 0;
    const auto hi =
        static_cast<int64_t>(std::min<uint64_t>(static_cast<uint64_t>(std::numeric_limits<T>::max()),
                                                static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
    if (x < lo || x > hi) return fmt::format("is out of range: must be in {}..{}", lo, hi);
  }
  return "";
}

template <class Section, class T>
KeyDescriptor field(const char* key, Section RunConfig::*section, T Section::*member, Check check,
                    const char* description) {
  KeyDescriptor d;
  d.key = key;
  d.kind = kind_of<T>();
  d.description = description;
  d.get = [section, member](const RunConfig& c) { return to_value<T>((c.*section).*member); };
  d.set = [section, member](RunConfig& c, const Value& v) { (c.*section).*member = from_value<T>(v); };
  d.problem = [check](const Value& v) {
    std::string p = fits_field<T>(v);
    if (p.empty() && check) p = check(v);
    return p;
  };
  return d;
}

// ---- range checks --------------------------------------------------------------------------------------

Check any() { return nullptr; }

Check bits() {
  return [](const Value& v) -> std::string {
    const int64_t b = std::get<int64_t>(v);
    return (b == 0 || (b >= 1 && b <= 32)) ? "" : "is out of range: bits must be 0 (full precision) or 1..32";
  };
}

Check int_at_least(int64_t lo) {
  return [lo](const Value& v) -> std::string {
    return std::get<int64_t>(v) >= lo ? "" : fmt::format("is out of range: must be >= {}", lo);
  };
}

// Written as !(inside) so that NaN, which compares false with everything, is refused too.
Check int_in(int64_t lo, int64_t hi) {
  return [lo, hi](const Value& v) -> std::string {
    const int64_t x = std::get<int64_t>(v);
    return x >= lo && x <= hi ? "" : fmt::format("is out of range: must be in {}..{}", lo, hi);
  };
}

Check float_positive() {
  return [](const Value& v) -> std::string {
    return std::get<double>(v) > 0 && std::isfinite(std::get<double>(v)) ? "" : "is out of range: must be > 0";
  };
}

Check float_non_negative() {
  return [](const Value& v) -> std::string {
    const double x = std::get<double>(v);
    return x >= 0 && std::isfinite(x) ? "" : "is out of range: must be >= 0";
  };
}

Check float_in_zero_one() {  // [0, 1): a momentum of 1 never forgets, so it never learns
  return [](const Value& v) -> std::string {
    const double x = std::get<double>(v);
    return x >= 0 && x < 1 ? "" : "is out of range: must be in [0, 1)";
  };
}

Check float_in_zero_one_closed_right() {  // (0, 1]: gamma 0 would zero the learning rate
  return [](const Value& v) -> std::string {
    const double x = std::get<double>(v);
    return x > 0 && x <= 1 ? "" : "is out of range: must be in (0, 1]";
  };
}

Check non_empty(const char* hint) {
  return [hint](const Value& v) -> std::string {
    return std::get<std::string>(v).empty() ? fmt::format("is empty: {}", hint) : "";
  };
}

Check one_of(std::vector<std::string> allowed, const char* noun) {
  return [allowed, noun](const Value& v) -> std::string {
    const auto& s = std::get<std::string>(v);
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return "";
    return fmt::format("is not a known {}: use {}", noun, choice_list(allowed));
  };
}

// Syntax only: whether CUDA is present is for the trainer to say when it opens the device.
Check device() {
  return [](const Value& v) -> std::string {
    const auto& s = std::get<std::string>(v);
    if (s == "cpu" || s == "cuda") return "";
    const std::string prefix = "cuda:";
    if (s.size() > prefix.size() && s.compare(0, prefix.size(), prefix) == 0 && s.size() - prefix.size() <= 4 &&
        std::all_of(s.begin() + prefix.size(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return "";
    }
    return "is not a device: use cpu, cuda or cuda:N (e.g. cuda:0)";
  };
}

// `noun` and `example` finish the messages: "milestones are epochs", "[80, 120]".
Check increasing_positive_list(const char* noun, const char* example) {
  return [noun, example](const Value& v) -> std::string {
    const auto& list = std::get<std::vector<int64_t>>(v);
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i] < 1) return fmt::format("is out of range: {} >= 1", noun);
      if (i > 0 && list[i] <= list[i - 1]) {
        return fmt::format("is not strictly increasing: list them in order without repeats, e.g. {}", example);
      }
    }
    return "";
  };
}

// Points of a run given as fractions of it, e.g. [0.5, 0.75]: each inside (0, 1), in order. `what` names them.
Check increasing_fraction_list(const char* what) {
  return [what](const Value& v) -> std::string {
    const auto& list = std::get<std::vector<double>>(v);
    for (size_t i = 0; i < list.size(); ++i) {
      if (!(list[i] > 0 && list[i] < 1))
        return fmt::format("is out of range: {} are fractions of the run, each in (0, 1), e.g. [0.5, 0.75]", what);
      if (i > 0 && list[i] <= list[i - 1])
        return "is not strictly increasing: list the fractions in order without repeats, e.g. [0.5, 0.75]";
    }
    return "";
  };
}

// A fraction of the run where 0 means "not used": [0, 1).
Check fraction_or_zero() {
  return [](const Value& v) -> std::string {
    const double x = std::get<double>(v);
    return x >= 0 && x < 1 ? "" : "is out of range: must be a fraction of the run in (0, 1), or 0 for none";
  };
}

// One width per PFQ stage; a schedule needs at least two stages to progress through.
Check stage_bits() {
  return [](const Value& v) -> std::string {
    const auto& list = std::get<std::vector<int64_t>>(v);
    if (list.size() < 2) return "is too short: a precision schedule needs at least 2 stages, e.g. [3, 4, 6, 8]";
    for (int64_t b : list)
      if (b < 0 || b > 32) return "is out of range: bits must be 0 (full precision) or 1..32";
    return "";
  };
}

// precision.error_weight_ranges: a name of error_weight_ranges_names() or auto (resolved by
// effective_error_weight_ranges, which depends on precision.execution).
Check error_weight_ranges() {
  return [](const Value& v) -> std::string {
    const auto& s = std::get<std::string>(v);
    std::vector<std::string> allowed = error_weight_ranges_names().names();
    allowed.insert(allowed.begin(), "auto");
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return "";
    return fmt::format("is not a known error-pass weight range: use {}{}", choice_list(allowed),
                       did_you_mean(s, allowed));
  };
}

// A field of an enum type, written in configs by the names of its NameTable (which also checks them).
template <class Section, class E>
KeyDescriptor named_field(const char* key, Section RunConfig::*section, E Section::*member,
                          const NameTable<E>& names, const char* description) {
  KeyDescriptor d;
  d.key = key;
  d.kind = ValueKind::String;
  d.description = description;
  d.get = [section, member, &names](const RunConfig& c) { return Value(names.name((c.*section).*member)); };
  d.set = [section, member, &names](RunConfig& c, const Value& v) {
    (c.*section).*member = *names.find(std::get<std::string>(v));
  };
  d.problem = [&names](const Value& v) { return names.problem(std::get<std::string>(v)); };
  return d;
}

// ---- the table -----------------------------------------------------------------------------------------

std::vector<KeyDescriptor> build_table() {
  using R = RunConfig;
  return {
      field("model.name", &R::model, &ModelConfig::name, non_empty("name a model, e.g. resnet20"),
            "model from the zoo (resnet20, resnet38, ..., transformer-lm; `fractrain models` lists them)"),
      field("model.layers", &R::model, &ModelConfig::layers, int_at_least(1), "transformer-lm: decoder layers"),
      field("model.width", &R::model, &ModelConfig::width, int_at_least(1),
            "transformer-lm: model width (embedding size), divisible by model.heads"),
      field("model.heads", &R::model, &ModelConfig::heads, int_at_least(1), "transformer-lm: attention heads"),
      field("model.ffn_width", &R::model, &ModelConfig::ffn_width, int_at_least(1),
            "transformer-lm: hidden units of the feed-forward blocks"),
      field("model.dropout", &R::model, &ModelConfig::dropout, float_in_zero_one(),
            "transformer-lm: dropout probability, in [0, 1)"),
      field("model.tie_embeddings", &R::model, &ModelConfig::tie_embeddings, any(),
            "transformer-lm: the output projection shares the token embedding's weight"),
      field("model.pre_norm", &R::model, &ModelConfig::pre_norm, any(),
            "transformer-lm: LayerNorm before each residual branch (and a final one); false = after the sum"),

      field("data.dataset", &R::data, &DataConfig::dataset, non_empty("name a dataset, e.g. fashion-mnist"),
            "dataset name (fashion-mnist, mnist, cifar10, cifar100, image-folder with data.path; token corpora "
            "wikitext103, wordnet-lm)"),
      field("data.path", &R::data, &DataConfig::path, any(), "dataset directory; empty = the dataset's default"),
      field("data.train_subset", &R::data, &DataConfig::train_subset, int_at_least(0),
            "train on a seeded random subset of N training samples; 0 = all"),
      field("data.test_subset", &R::data, &DataConfig::test_subset, int_at_least(0),
            "evaluate on a seeded random subset of N test samples; 0 = all"),
      field("data.crop_padding", &R::data, &DataConfig::crop_padding, int_at_least(0),
            "random-crop padding in pixels for training augmentation; 0 = no crop"),
      field("data.horizontal_flip", &R::data, &DataConfig::horizontal_flip, any(),
            "random horizontal flips for training augmentation"),
      field("data.split", &R::data, &DataConfig::split, one_of(dataset_split_names(), "split"),
            "all, or a half: classes-a/-b (adaptation: half the classes each, relabelled 0..n-1) or samples-a/-b "
            "(fine-tuning: half of every class's training samples each; the whole test split)"),
      field("data.split_seed", &R::data, &DataConfig::split_seed, any(),
            "seed choosing the halves of data.split (pretraining and retraining runs must use the same)"),
      field("data.train_folder", &R::data, &DataConfig::train_folder, non_empty("name a folder, e.g. train"),
            "image-folder: the training split's folder under data.path"),
      field("data.val_folder", &R::data, &DataConfig::val_folder, non_empty("name a folder, e.g. val"),
            "image-folder: the evaluation split's folder under data.path"),
      field("data.image_size", &R::data, &DataConfig::image_size, int_in(1, 4096),
            "image-folder: side of the random-resized crop (training) and center crop (evaluation)"),
      field("data.resize_size", &R::data, &DataConfig::resize_size, int_in(1, 8192),
            "image-folder: evaluation resizes the shorter side to this before the center crop (>= image_size)"),
      field("data.min_crop_scale", &R::data, &DataConfig::min_crop_scale, float_in_zero_one_closed_right(),
            "image-folder: smallest area share of a random-resized crop, in (0, 1] (0.08 as torchvision)"),
      field("data.workers", &R::data, &DataConfig::workers, int_at_least(0),
            "image-folder: JPEG decoding threads; 0 = one per core (results do not depend on it)"),
      field("data.skip_corrupt", &R::data, &DataConfig::skip_corrupt, any(),
            "image-folder: warn about and skip corrupt image files (counted in summary.json) instead of stopping"),
      field("data.sequence_length", &R::data, &DataConfig::sequence_length, int_at_least(1),
            "token datasets: tokens per training window (the model's context)"),
      field("data.vocab_min_count", &R::data, &DataConfig::vocab_min_count, int_at_least(1),
            "token datasets: words seen fewer times in the train split map to <unk>"),

      named_field("precision.mode", &R::precision, &PrecisionConfig::mode, precision_mode_names(),
            "static (fw/bw for the whole run), pfq-manual (stages at fixed points), pfq-auto (loss indicator), dfq "
            "(per-sample gates, [dfq]) or fractrain (dfq with targets raised by the loss indicator)"),
      field("precision.fw", &R::precision, &PrecisionConfig::fw, bits(),
            "static mode: forward bits for weights and activations; 0 = full precision (must be 0 in pfq modes)"),
      field("precision.weight_bits", &R::precision, &PrecisionConfig::weight_bits, bits(),
            "static mode: weight width when it differs from fw's (e.g. fw = 8, weight_bits = 4); 0 = fw's"),
      field("precision.bw", &R::precision, &PrecisionConfig::bw, bits(),
            "static mode: backward bits for gradients; 0 = full precision (must be 0 in pfq modes)"),
      field("precision.pfq_fw", &R::precision, &PrecisionConfig::pfq_fw, stage_bits(),
            "pfq modes: forward bits of each stage, e.g. [3, 4, 6, 8]"),
      field("precision.pfq_bw", &R::precision, &PrecisionConfig::pfq_bw, stage_bits(),
            "pfq modes: backward bits of each stage, as many as pfq_fw, e.g. [6, 6, 8, 8]"),
      field("precision.pfq_switch_epochs", &R::precision, &PrecisionConfig::pfq_switch_epochs,
            increasing_positive_list("switch points are epochs", "[40, 80, 120]"),
            "pfq-manual: epochs at which the next stage starts (stages - 1 of them); [] with no iterations = equal parts"),
      field("precision.pfq_switch_iterations", &R::precision, &PrecisionConfig::pfq_switch_iterations,
            increasing_positive_list("switch points are iterations", "[500, 1000, 1500]"),
            "pfq-manual: iterations at which the next stage starts (instead of pfq_switch_epochs)"),
      field("precision.pfq_switch_fractions", &R::precision, &PrecisionConfig::pfq_switch_fractions,
            increasing_fraction_list("switch points"),
            "pfq-manual: fractions of the run at which the next stage starts (instead of epochs or iterations), "
            "e.g. [0.25, 0.5, 0.75]; each starts at the step nearest to its fraction"),
      field("precision.pfq_window_iterations", &R::precision, &PrecisionConfig::pfq_window_iterations,
            int_at_least(0), "pfq-auto and fractrain: the loss indicator's window in iterations; 0 = one epoch "
            "(or pfq_window_fraction)"),
      field("precision.pfq_window_fraction", &R::precision, &PrecisionConfig::pfq_window_fraction,
            fraction_or_zero(),
            "pfq-auto and fractrain: the loss indicator's window as a fraction of the run (the paper checks it once "
            "per epoch of 160: 0.00625), rounded to whole steps, at least 1; 0 = use pfq_window_iterations"),
      field("precision.pfq_eps", &R::precision, &PrecisionConfig::pfq_eps, float_positive(),
            "pfq-auto: turning-point threshold on the relative loss differences"),
      field("precision.pfq_alpha", &R::precision, &PrecisionConfig::pfq_alpha, float_in_zero_one_closed_right(),
            "pfq-auto: eps *= alpha after the 1st and 2nd turning points, in (0, 1]"),
      field("precision.quantize_first_layer", &R::precision, &PrecisionConfig::quantize_first_layer, any(),
            "quantize the first conv layer too"),
      field("precision.quantize_classifier", &R::precision, &PrecisionConfig::quantize_classifier, any(),
            "quantize the final classifier layer too"),
      field("precision.activation_momentum", &R::precision, &PrecisionConfig::activation_momentum, float_in_zero_one(),
            "EMA momentum of the activation ranges, in [0, 1)"),
      field("precision.snap_zero_point", &R::precision, &PrecisionConfig::snap_zero_point, any(),
            "round the quantization zero point to an integer so that 0 is exact (always on with precision.execution "
            "= \"integer\", whatever this says)"),
      named_field("precision.execution", &R::precision, &PrecisionConfig::execution, execution_mode_names(),
            "how quantized layers compute: simulated (fake-quantized values in FP32, the reference) or integer "
            "(exact integer sums on the codes, CPU; needs snapped zero points, which it forces on, and "
            "error_weight_ranges auto or per_input_channel)"),
      field("precision.error_weight_ranges", &R::precision, &PrecisionConfig::error_weight_ranges,
            error_weight_ranges(),
            "weight ranges of the error backward (dX): per_output_channel (the forward's quantized weight, the "
            "paper's), per_input_channel (the FP32 weight requantized with one range per input channel, which "
            "integer dX needs; simulated runs can use it as integer's exact reference) or auto (per_input_channel "
            "with execution = integer, else per_output_channel); the forward and dW keep per-output-channel "
            "ranges"),
      field("precision.sync_ranges", &R::precision, &PrecisionConfig::sync_ranges, any(),
            "data parallel: quantize on the whole batch's ranges (agreed across ranks, as one process would); "
            "false = each rank's own"),

      field("dfq.options", &R::dfq, &DfqConfig::options, non_empty("name a preset, e.g. cifar-release"),
            "gate options: auto (mobilenet-paper for mobilenetv2, cifar-release otherwise), cifar-release, "
            "cifar-paper, mobilenet-paper, imagenet-release, or act/grad list "
            "\"skip,3/6,4/8\""),
      field("dfq.weight_bits", &R::dfq, &DfqConfig::weight_bits, bits(),
            "weight width of every gated layer; 0 = the preset's (4 for the CIFAR sets)"),
      named_field("dfq.execution", &R::dfq, &DfqConfig::execution, gate_execution_names(),
            "mixed (one pass, per-sample precision), candidates (every option on the batch, as released code) "
            "or masked (mixed in fixed shapes: skipped samples computed and masked out, decisions never leave "
            "the device; for GPUs, one process)"),
      field("dfq.target_cp", &R::dfq, &DfqConfig::target_cp, float_positive(),
            "target cp in percent of FP32 (fractrain: the overall target, stages centred on it)"),
      field("dfq.cp_scope", &R::dfq, &DfqConfig::cp_scope, one_of({"blocks", "network"}, "cp scope"),
            "which cp the target steers: blocks (the gated blocks, the paper's) or network (every layer)"),
      field("dfq.beta", &R::dfq, &DfqConfig::beta, float_non_negative(), "weight of the cost term in the loss"),
      field("dfq.dead_band", &R::dfq, &DfqConfig::dead_band, float_non_negative(),
            "cost term off while |batch cp - target| < dead_band (percentage points)"),
      field("dfq.stages", &R::dfq, &DfqConfig::stages, int_at_least(1), "fractrain: number of target stages"),
      field("dfq.cp_step", &R::dfq, &DfqConfig::cp_step, float_non_negative(),
            "fractrain: target increase per stage, percentage points"),
      field("dfq.last_stage_from", &R::dfq, &DfqConfig::last_stage_from, fraction_or_zero(),
            "fractrain: from this fraction of the run on, the last target stage holds even if the indicator has "
            "not reached it (an ablation, e.g. 0.75 = the last quarter); 0 = the indicator alone decides"),
      field("dfq.steering_weight_bits", &R::dfq, &DfqConfig::steering_weight_bits, bits(),
            "an ablation: the gates' cost term and its sign count weights at this width while the layers run "
            "dfq.weight_bits (e.g. weight_bits = 8, steering_weight_bits = 4: 8-bit weights under the 4-bit "
            "option set's cost pressure; the reported cost counts the bits run); 0 = dfq.weight_bits"),
      field("dfq.allow_unreachable_targets", &R::dfq, &DfqConfig::allow_unreachable_targets, any(),
            "an ablation: accept target cps outside what the options can reach (the gates then push every "
            "sample to the cheapest or dearest option) instead of refusing them"),

      field("train.epochs", &R::train, &TrainConfig::epochs, int_at_least(0), "number of training epochs"),
      field("train.iterations", &R::train, &TrainConfig::iterations, int_at_least(0),
            "number of optimizer steps; > 0 overrides train.epochs"),
      field("train.batch_size", &R::train, &TrainConfig::batch_size, int_at_least(1), "samples per batch"),
      field("train.eval_every", &R::train, &TrainConfig::eval_every, int_at_least(0),
            "evaluate every N iterations; 0 = at each epoch end"),
      field("train.log_every", &R::train, &TrainConfig::log_every, int_at_least(0),
            "log every N iterations; 0 = never"),
      field("train.seed", &R::train, &TrainConfig::seed, any(), "seed for initialisation, shuffling and rounding"),
      field("train.threads", &R::train, &TrainConfig::threads, int_at_least(0), "CPU threads; 0 = all cores"),
      field("train.device", &R::train, &TrainConfig::device, device(), "cpu, cuda or cuda:N"),
      field("train.checkpoint_every", &R::train, &TrainConfig::checkpoint_every, int_at_least(0),
            "write a checkpoint every N iterations; 0 = at each evaluation"),
      field("train.keep_checkpoints", &R::train, &TrainConfig::keep_checkpoints, int_at_least(1),
            "> 1: also keep the newest N checkpoints as checkpoints/step-N.ckpt (hard links); last/best always"),
      field("train.on_nonfinite", &R::train, &TrainConfig::on_nonfinite, one_of({"stop", "skip"}, "policy"),
            "a NaN/Inf loss or gradient: stop (naming the step and layer) or skip the step and lower the lr"),
      field("train.nonfinite_lr_factor", &R::train, &TrainConfig::nonfinite_lr_factor, float_in_zero_one_closed_right(),
            "on_nonfinite = skip: lr multiplier applied at every skipped step, in (0, 1]"),
      field("train.host_reads", &R::train, &TrainConfig::host_reads,
            one_of({"auto", "every_step", "deferred"}, "read policy"),
            "when the host reads a step's loss, accuracy and NaN/Inf check: every_step, or deferred to the next "
            "progress line, indicator window, evaluation or checkpoint, so that a GPU step never waits for the "
            "device (the progress line then shows the mean since the last read; a NaN/Inf stops the run there, "
            "naming the step it came from; one process with on_nonfinite = stop only); auto = deferred on CUDA "
            "in one process with on_nonfinite = stop, every_step otherwise"),
      field("train.cuda_graphs", &R::train, &TrainConfig::cuda_graphs, any(),
            "CUDA only: capture a step's forward and backward pass as a CUDA Graph and replay it for every full "
            "batch (re-captured when the precision stage changes; the optimizer step, the last partial batch and "
            "the first steps of each capture run eagerly); needs deferred host reads, one process, and for DFQ "
            "dfq.execution = masked"),
      field("train.fused_batch_norm", &R::train, &TrainConfig::fused_batch_norm, any(),
            "BatchNorm followed by ReLU (and a ResNet block's residual add) as one fused op on fractrain's own "
            "kernels: fewer passes over the activations (docs/integer.md); training on the CPU in one process, "
            "elsewhere torch's ops; the same maths as torch's ops but not their rounding (false: torch's, bit for "
            "bit)"),
      field("train.init_from", &R::train, &TrainConfig::init_from, any(),
            "start from another run's weights: a checkpoint file or a run's output dir (its last checkpoint); "
            "parameters are matched by name, the rest (e.g. DFQ gates) keep their initialisation"),
      field("train.sync_batchnorm", &R::train, &TrainConfig::sync_batchnorm, any(),
            "data parallel: BatchNorm uses the whole batch's statistics (forward and backward), as one process"),
      field("train.grad_comm", &R::train, &TrainConfig::grad_comm, one_of({"fp32", "fp16", "bw"}, "gradient format"),
            "data parallel: gradients are exchanged as fp32, fp16, or bw (quantized to the step's backward "
            "width with stochastic rounding)"),
      field("train.comm_timeout_s", &R::train, &TrainConfig::comm_timeout_s, float_positive(),
            "data parallel: seconds a rank waits for its peers (rendezvous, any collective) before the run ends "
            "with an error"),
      field("train.comm_wait", &R::train, &TrainConfig::comm_wait, one_of({"auto", "spin", "block"}, "wait mode"),
            "data parallel (Gloo): how a rank waits for a collective: spin (poll, yielding its core, up to 20 ms, "
            "then block), block, or auto (spin when this node's ranks x threads fit its cores)"),

      field("optim.name", &R::optim, &OptimConfig::name, one_of({"sgd", "adam"}, "optimizer"),
            "sgd (momentum, weight_decay, nesterov) or adam (adam_beta1, adam_beta2, adam_eps, weight_decay)"),
      field("optim.lr", &R::optim, &OptimConfig::lr, float_positive(), "(peak) learning rate"),
      field("optim.momentum", &R::optim, &OptimConfig::momentum, float_in_zero_one(), "SGD momentum, in [0, 1)"),
      field("optim.weight_decay", &R::optim, &OptimConfig::weight_decay, float_non_negative(), "L2 weight decay"),
      field("optim.nesterov", &R::optim, &OptimConfig::nesterov, any(), "use Nesterov momentum"),
      field("optim.adam_beta1", &R::optim, &OptimConfig::adam_beta1, float_in_zero_one(), "Adam beta1, in [0, 1)"),
      field("optim.adam_beta2", &R::optim, &OptimConfig::adam_beta2, float_in_zero_one(), "Adam beta2, in [0, 1)"),
      field("optim.adam_eps", &R::optim, &OptimConfig::adam_eps, float_positive(), "Adam epsilon"),

      field("schedule.type", &R::schedule, &ScheduleConfig::type,
            one_of({"constant", "multistep", "cosine", "inverse-sqrt"}, "schedule"),
            "learning-rate schedule; inverse-sqrt: lr x sqrt(warmup_iterations / step) after the warm-up"),
      field("schedule.milestones", &R::schedule, &ScheduleConfig::milestones,
            increasing_positive_list("milestones are epochs", "[80, 120]"),
            "epochs at which multistep multiplies the lr by gamma, e.g. [80, 120]"),
      field("schedule.milestone_fractions", &R::schedule, &ScheduleConfig::milestone_fractions,
            increasing_fraction_list("milestones"),
            "multistep milestones as fractions of the run (instead of epochs), e.g. [0.5, 0.75] for the paper's "
            "80 and 120 of 160 epochs; each at the step nearest to its fraction"),
      field("schedule.gamma", &R::schedule, &ScheduleConfig::gamma, float_in_zero_one_closed_right(),
            "multistep factor, in (0, 1]"),
      field("schedule.warmup_iterations", &R::schedule, &ScheduleConfig::warmup_iterations, int_at_least(0),
            "linear learning-rate warm-up over the first N iterations"),

      field("cost.hardware", &R::cost, &CostConfig::hardware, any(),
            "accelerator model for energy and latency (TOML); empty = the built-in BitFusion model "
            "(configs/hardware/bitfusion.toml)"),

      field("output.dir", &R::output, &OutputConfig::dir, non_empty("name a directory, e.g. runs/default"),
            "directory for metrics, checkpoints and reports"),
      field("output.tensorboard", &R::output, &OutputConfig::tensorboard, any(),
            "write TensorBoard events (events.out.tfevents.*) in output.dir: metrics.jsonl's numbers, tagged by "
            "their keys"),
  };
}

std::string leaf_of(const std::string& key) {
  const auto dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }

// Typos ("batchsize") are near the full key; a key put in the wrong section ("optim.epochs") or without
// one ("epochs") is near the leaf, so compare leaves too, at the cost of one edit for the section.
std::string closest_key(const std::string& unknown) {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& d : key_table()) {
    const size_t distance = std::min(edit_distance(unknown, d.key), edit_distance(leaf_of(unknown), leaf_of(d.key)) + 1);
    if (distance < best_distance) {
      best_distance = distance;
      best = d.key;
    }
  }
  return (best_distance <= 2 || best_distance <= unknown.size() / 3) ? best : "";
}

}  // namespace

const std::vector<KeyDescriptor>& key_table() {
  static const std::vector<KeyDescriptor> table = build_table();
  return table;
}

const KeyDescriptor* find_key(const std::string& key) {
  for (const auto& d : key_table()) {
    if (d.key == key) return &d;
  }
  return nullptr;
}

bool is_section(const std::string& name) {
  for (const auto& d : key_table()) {
    if (section_of(d.key) == name) return true;
  }
  return false;
}

std::string unknown_key_message(const std::string& key, const std::string& where) {
  std::string message = "unknown config key '" + key + "' in " + where;
  if (is_section(key)) {
    const auto first = std::find_if(key_table().begin(), key_table().end(),
                                    [&](const KeyDescriptor& d) { return section_of(d.key) == key; });
    return message + "; '" + key + "' is a section, set one of its keys, e.g. '" + first->key + "'";
  }
  const std::string suggestion = closest_key(key);
  if (!suggestion.empty()) return message + "; did you mean '" + suggestion + "'?";
  return message + "; run `fractrain train --help-config` to list the keys";
}

}  // namespace fractrain::config
