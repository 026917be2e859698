#include "fractrain/precision/option_set.h"

#include <map>
#include <sstream>

#include "fractrain/cost/bit_product.h"
#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

struct Preset {
  int weight_bits;
  const char* options;
};

// DESIGN.md 4.5. The released code's CIFAR set, the paper's CIFAR set with skip, the paper's MobileNet set and
// the released ImageNet set.
const std::map<std::string, Preset>& presets() {
  static const std::map<std::string, Preset> p = {
      {"cifar-release", {4, "3/6,4/6,4/8,6/8,6/12"}},
      {"cifar-paper", {4, "skip,2/6,3/6,4/6,4/12,6/8,6/12"}},
      {"mobilenet-paper", {8, "skip,4/8,6/8,6/10,8/8"}},
      {"imagenet-release", {6, "3/6,4/8,6/12,8/16"}},
  };
  return p;
}

int parse_width(const std::string& text, const std::string& item, const std::string& whole) {
  size_t used = 0;
  int bits = -1;
  try {
    bits = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || bits < 1 || bits > 32)
    throw Error("DFQ option '" + item + "' in '" + whole +
                "': widths must be act/grad bit widths 1..32 (e.g. 4/8), or 'skip'");
  return bits;
}

std::vector<Precision> parse_list(const std::string& text) {
  std::vector<Precision> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) throw Error("DFQ options '" + text + "' has an empty entry");
    if (item == "skip") {
      out.push_back(Precision{0, 0, 0, true});
      continue;
    }
    const size_t slash = item.find('/');
    if (slash == std::string::npos)
      throw Error("DFQ option '" + item + "' in '" + text + "': write act/grad bits such as 4/8, or 'skip'");
    out.push_back(Precision{parse_width(item.substr(0, slash), item, text), 0,
                            parse_width(item.substr(slash + 1), item, text), false});
  }
  return out;
}

}  // namespace

OptionSet::OptionSet(std::string name, int weight_bits, std::vector<Precision> options)
    : name_(std::move(name)), weight_bits_(weight_bits), options_(std::move(options)) {
  if (options_.size() < 2) throw Error("DFQ options '" + name_ + "': a gate needs at least 2 options to choose from");
  int skips = 0;
  for (auto& p : options_) {
    if (p.skip) {
      p = Precision{0, 0, 0, true};
      ++skips;
    } else {
      p.weight = weight_bits_;
    }
  }
  if (skips > 1) throw Error("DFQ options '" + name_ + "': 'skip' appears more than once");
  for (size_t i = 0; i < options_.size(); ++i)
    for (size_t j = i + 1; j < options_.size(); ++j)
      if (options_[i] == options_[j])
        throw Error("DFQ options '" + name_ + "': option " + label(i) + " appears more than once");
}

OptionSet OptionSet::parse(const std::string& text, int weight_bits) {
  if (weight_bits < 0 || weight_bits > 32)
    throw Error("dfq.weight_bits = " + std::to_string(weight_bits) + " is out of range: 1..32, or 0 for the preset's");
  const auto& p = presets();
  auto it = p.find(text);
  if (it != p.end())
    return OptionSet(text, weight_bits > 0 ? weight_bits : it->second.weight_bits, parse_list(it->second.options));
  if (text.find('/') == std::string::npos && text.find(',') == std::string::npos) {
    std::vector<std::string> names = preset_names();
    throw Error("unknown DFQ option set '" + text + "'" + did_you_mean(text, names) +
                ": use a preset (cifar-release, cifar-paper, mobilenet-paper, imagenet-release) or a list such as "
                "\"skip,3/6,4/8\"");
  }
  if (weight_bits == 0)
    throw Error("DFQ options '" + text + "' are a custom list: set dfq.weight_bits (e.g. 4) for its weight width");
  return OptionSet(text, weight_bits, parse_list(text));
}

std::vector<std::string> OptionSet::preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, preset] : presets()) names.push_back(name);
  return names;
}

int OptionSet::skip_index() const {
  for (size_t k = 0; k < options_.size(); ++k)
    if (options_[k].skip) return static_cast<int>(k);
  return -1;
}

std::string OptionSet::default_preset_for(const std::string& model_name) {
  return model_name == "mobilenetv2" ? "mobilenet-paper" : "cifar-release";
}

OptionSet OptionSet::with_weight_bits(int weight_bits) const {
  if (weight_bits < 1 || weight_bits > 32)
    throw Error("DFQ options '" + name_ + "': a weight width of " + std::to_string(weight_bits) +
                " is out of range 1..32");
  return OptionSet(name_, weight_bits, options_);
}

double OptionSet::relative_cost(size_t k) const { return relative_training_cost(options_.at(k)); }

std::string OptionSet::label(size_t k) const {
  const Precision& p = options_.at(k);
  if (p.skip) return "skip";
  return std::to_string(p.act) + "/" + std::to_string(p.grad);
}

std::string OptionSet::describe() const {
  std::string s = name_ + " (w" + std::to_string(weight_bits_) + ":";
  for (size_t k = 0; k < options_.size(); ++k) s += " " + label(k);
  return s + ")";
}

}  // namespace fractrain
