#include "fractrain/train/resume_compatibility.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "fractrain/precision/option_set.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object())
      flatten(*it, key, out);
    else
      out[key] = *it;
  }
}

// What a config computes, written one way: a static or PFQ run ignores the dfq section (whose defaults may
// change between versions), dfq.options = "auto" stands for the model's preset, and the quantizer's zero-point
// snapping and error-pass weight ranges are those precision.execution makes effective (it forces the first on
// and resolves "auto" of the second), so that a resume may change the execution but not these numbers.
RunConfig effective(RunConfig config) {
  config.precision.snap_zero_point = effective_snap_zero_point(config.precision);
  config.precision.error_weight_ranges = to_string(effective_error_weight_ranges(config.precision));
  if (!is_gated(config.precision.mode)) {
    config.dfq = DfqConfig{};
  } else if (config.dfq.options == "auto") {
    config.dfq.options = OptionSet::default_preset_for(config.model.name);
  }
  return config;
}

}  // namespace

const std::vector<std::string>& keys_resume_may_change() {
  static const std::vector<std::string> keys = {"train.epochs",    "train.iterations", "train.threads",
                                                "train.log_every", "train.device",     "output.dir",
                                                "output.tensorboard",  // a resume folds the earlier events in
                                                "data.workers",  // decoding threads: batches do not depend on them
                                                "train.comm_timeout_s",  // how long ranks wait, not what they compute
                                                "train.comm_wait",       // how ranks wait
                                                "train.host_reads",      // when the host reads, not what is computed
                                                "train.cuda_graphs",     // how the same kernels are launched
                                                // how layers compute; the quantization it implies is compared
                                                // as precision.snap_zero_point and error_weight_ranges
                                                "precision.execution"};
  return keys;
}

std::vector<std::string> compute_differences(const RunConfig& before, const RunConfig& now) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(to_json(effective(before)), "", a);
  flatten(to_json(effective(now)), "", b);
  const auto& may_change = keys_resume_may_change();
  std::vector<std::string> differences;
  for (const auto& [key, value] : a) {
    if (std::find(may_change.begin(), may_change.end(), key) != may_change.end()) continue;
    if (b[key] != value) differences.push_back("  " + key + ": before " + value.dump() + ", now " + b[key].dump());
  }
  return differences;
}

void check_resume_compatible(const RunConfig& saved, const RunConfig& requested, const std::string& checkpoint) {
  const auto differences = compute_differences(saved, requested);
  if (!differences.empty())
    throw Error(fmt::format("cannot resume from {}: the run config differs from the checkpoint's (before) in keys "
                            "that change what is computed:\n{}\n(only {} may change on resume; omit --config to use "
                            "the checkpoint's own config)",
                            checkpoint, fmt::join(differences, "\n"), fmt::join(keys_resume_may_change(), ", ")));
}

}  // namespace fractrain
