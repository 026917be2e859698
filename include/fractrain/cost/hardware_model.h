#pragma once
// An analytic bit-flexible accelerator in the style of Bit Fusion (Sharma et al., ISCA 2018), DESIGN.md 4.8:
// a MAC of a-bit by b-bit operands is ceil(a/2) x ceil(b/2) BitBrick operations; data is moved in bits at the
// precision it is stored in. The parameters come from a TOML file (configs/hardware/bitfusion.toml cites a
// source for each); docs/cost.md describes the model.
#include <algorithm>
#include <cstdint>
#include <string>

namespace fractrain {

struct HardwareModel {
  std::string name;    // what the parameters describe
  std::string source;  // the file they were read from
  double frequency_hz = 0;
  int64_t bitbricks = 0;                // BitBricks working in parallel (Fusion Units x BitBricks per unit)
  double bitbrick_energy_j = 0;         // dynamic energy of one 2x2-bit BitBrick operation
  double sram_energy_per_bit_j = 0;     // one on-chip buffer access, per bit
  double dram_energy_per_bit_j = 0;     // one off-chip DRAM access, per bit
  double dram_bits_per_second = 0;      // off-chip bandwidth

  // Every BitBrick busy every cycle: the best case of a perfectly tiled layer.
  double compute_seconds(double bitbrick_ops) const {
    return bitbrick_ops / (static_cast<double>(bitbricks) * frequency_hz);
  }
  double memory_seconds(double bits_moved) const { return bits_moved / dram_bits_per_second; }
  // Compute and data movement overlap (double-buffered), so a layer takes the longer of the two.
  double latency_s(double bitbrick_ops, double bits_moved) const {
    return std::max(compute_seconds(bitbrick_ops), memory_seconds(bits_moved));
  }
  // Each moved bit is one DRAM access and one on-chip buffer access.
  double energy_j(double bitbrick_ops, double bits_moved) const {
    return bitbrick_ops * bitbrick_energy_j + bits_moved * (dram_energy_per_bit_j + sram_energy_per_bit_j);
  }
};

// Reads a hardware TOML file. Throws fractrain::Error naming the file (and line) for a missing file, a syntax
// error, a missing, unknown, mistyped or non-positive key.
HardwareModel load_hardware_model(const std::string& path);
HardwareModel parse_hardware_model(const std::string& toml_text, const std::string& source_name);

// The model used when none is configured: configs/hardware/bitfusion.toml, compiled into the library at build
// time so that an installed library or CLI needs no source tree. Its source is kBuiltinHardwareModelSource.
HardwareModel builtin_hardware_model();
inline constexpr const char* kBuiltinHardwareModelSource =
    "built-in BitFusion model (configs/hardware/bitfusion.toml)";

// The configured model: the built-in one for an empty path, otherwise load_hardware_model(path).
HardwareModel hardware_model_or_builtin(const std::string& path);

}  // namespace fractrain
