#pragma once
// The precision options a DFQ gate chooses among (DESIGN.md 4.5): per option an activation and a gradient
// width, or `skip` (the block is not computed; its output is its shortcut), with one weight width for the run.
#include <string>
#include <vector>

#include "fractrain/precision/precision.h"

namespace fractrain {

class OptionSet {
 public:
  OptionSet() = default;
  // Every option gets `weight_bits` as its weight width (skip options keep all widths 0).
  OptionSet(std::string name, int weight_bits, std::vector<Precision> options);

  // A preset ("cifar-release", "cifar-paper", "mobilenet-paper", "imagenet-release") or a custom list
  // "skip,3/6,4/8" of act/grad widths. `weight_bits` 0 takes the preset's (4 for the CIFAR sets, 6 for
  // ImageNet, 8 for MobileNet); a custom list needs it. Throws fractrain::Error naming the text and the fix.
  static OptionSet parse(const std::string& text, int weight_bits);
  static std::vector<std::string> preset_names();
  // The preset a model's gates use when dfq.options is "auto": mobilenet-paper for mobilenetv2, cifar-release
  // for the other models.
  static std::string default_preset_for(const std::string& model_name);
  // The same options with weights at `weight_bits` (1..32): what the gates' cost term counts when it steers at
  // another width than the layers run (dfq.steering_weight_bits).
  OptionSet with_weight_bits(int weight_bits) const;

  const std::string& name() const { return name_; }
  int weight_bits() const { return weight_bits_; }
  const std::vector<Precision>& options() const { return options_; }
  const Precision& at(size_t k) const { return options_.at(k); }
  size_t size() const { return options_.size(); }
  int skip_index() const;  // -1 without a skip option
  bool has_skip() const { return skip_index() >= 0; }

  // The training cost of one sample at option k relative to FP32, all three passes (fw + eb + gc bit products
  // over 3 x 32 x 32): 0 for skip, e.g. (4*4 + 6*4 + 4*6) / 3072 for 4/6 with 4-bit weights.
  double relative_cost(size_t k) const;
  // "3/6", "skip": how option k is written in reports.
  std::string label(size_t k) const;
  // "cifar-release (w4: 3/6 4/6 4/8 6/8 6/12)".
  std::string describe() const;

 private:
  std::string name_;
  int weight_bits_ = 0;
  std::vector<Precision> options_;
};

}  // namespace fractrain
