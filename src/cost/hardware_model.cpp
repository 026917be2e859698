#include "fractrain/cost/hardware_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"
#include "fractrain/util/toml_file.h"

namespace fractrain {
namespace {

// The numbers as the file writes them (in the units of their sources), before conversion to SI units.
struct FileValues {
  double frequency_mhz = 0, fusion_units = 0, bitbricks_per_fusion_unit = 0, bitbrick_energy_pj = 0;
  double sram_energy_pj_per_bit = 0, dram_energy_pj_per_bit = 0, dram_bits_per_cycle = 0;
};

struct NumberKey {
  const char* key;
  double FileValues::*field;
  bool integer;
  const char* meaning;
};

const std::vector<NumberKey>& number_keys() {
  static const std::vector<NumberKey> keys = {
      {"compute.frequency_mhz", &FileValues::frequency_mhz, false, "the clock frequency in MHz"},
      {"compute.fusion_units", &FileValues::fusion_units, true, "the number of Fusion Units"},
      {"compute.bitbricks_per_fusion_unit", &FileValues::bitbricks_per_fusion_unit, true,
       "BitBricks per Fusion Unit"},
      {"compute.bitbrick_energy_pj", &FileValues::bitbrick_energy_pj, false,
       "energy of one 2x2-bit BitBrick operation in pJ"},
      {"memory.sram_energy_pj_per_bit", &FileValues::sram_energy_pj_per_bit, false,
       "on-chip buffer access energy in pJ per bit"},
      {"memory.dram_energy_pj_per_bit", &FileValues::dram_energy_pj_per_bit, false,
       "DRAM access energy in pJ per bit"},
      {"memory.dram_bits_per_cycle", &FileValues::dram_bits_per_cycle, false,
       "off-chip bandwidth in bits per accelerator cycle"},
  };
  return keys;
}

std::vector<std::string> known_keys() {
  std::vector<std::string> names = {"name"};
  for (const auto& k : number_keys()) names.push_back(k.key);
  return names;
}

std::string where(const std::string& source, const toml::node& node) {
  const auto line = node.source().begin.line;
  return line > 0 ? fmt::format("{}:{}", source, line) : source;
}

void refuse_unknown_keys(const toml::table& root, const std::string& source) {
  const std::vector<std::string> known = known_keys();
  auto check = [&](const std::string& key, const toml::node& node) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw Error(fmt::format("{}: unknown key '{}' in the hardware model{}", where(source, node), key,
                              did_you_mean(key, known)));
  };
  for (const auto& [section, node] : root) {
    const std::string name(section.str());
    if (const auto* table = node.as_table()) {
      for (const auto& [leaf, child] : *table) check(name + "." + std::string(leaf.str()), child);
    } else {
      check(name, node);
    }
  }
}

double read_number(const toml::table& root, const NumberKey& k, const std::string& source) {
  const toml::node_view<const toml::node> view = root.at_path(k.key);
  if (!view) throw Error(fmt::format("{}: missing key '{}' ({})", source, k.key, k.meaning));
  double value = 0;
  if (const auto* i = view.as_integer()) {
    value = static_cast<double>(i->get());
  } else if (const auto* f = view.as_floating_point()) {
    if (k.integer)
      throw Error(fmt::format("{}: {} must be an integer ({}), got {}", where(source, *view.node()), k.key,
                              k.meaning, f->get()));
    value = f->get();
  } else {
    throw Error(fmt::format("{}: {} must be a number ({})", where(source, *view.node()), k.key, k.meaning));
  }
  if (!(value > 0) || !std::isfinite(value))
    throw Error(fmt::format("{}: {} = {} is out of range: must be > 0 ({})", where(source, *view.node()), k.key,
                            value, k.meaning));
  return value;
}

}  // namespace

HardwareModel parse_hardware_model(const std::string& toml_text, const std::string& source_name) {
  const toml::table root = parse_toml(toml_text, source_name);
  refuse_unknown_keys(root, source_name);
  const auto* name = root["name"].as_string();
  if (!name || name->get().empty())
    throw Error(source_name + ": missing key 'name' (a string saying what the parameters describe)");

  FileValues v;
  for (const auto& k : number_keys()) v.*k.field = read_number(root, k, source_name);

  HardwareModel hw;
  hw.name = name->get();
  hw.source = source_name;
  hw.frequency_hz = v.frequency_mhz * 1e6;
  hw.bitbricks = static_cast<int64_t>(v.fusion_units) * static_cast<int64_t>(v.bitbricks_per_fusion_unit);
  hw.bitbrick_energy_j = v.bitbrick_energy_pj * 1e-12;
  hw.sram_energy_per_bit_j = v.sram_energy_pj_per_bit * 1e-12;
  hw.dram_energy_per_bit_j = v.dram_energy_pj_per_bit * 1e-12;
  hw.dram_bits_per_second = v.dram_bits_per_cycle * hw.frequency_hz;
  return hw;
}

HardwareModel load_hardware_model(const std::string& path) {
  return parse_hardware_model(
      read_text_file(path, "hardware model file",
                     "set cost.hardware (or --hardware) to a TOML file like configs/hardware/bitfusion.toml"),
      path);
}

// The text of configs/hardware/bitfusion.toml, in a file CMake generates (cmake/builtin_hardware_model.cpp.in).
extern const char kBuiltinHardwareToml[];

HardwareModel builtin_hardware_model() {
  return parse_hardware_model(kBuiltinHardwareToml, kBuiltinHardwareModelSource);
}

HardwareModel hardware_model_or_builtin(const std::string& path) {
  return path.empty() ? builtin_hardware_model() : load_hardware_model(path);
}

}  // namespace fractrain
