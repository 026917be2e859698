// The Bit Fusion-style hardware model: BitBrick counts, latency as the max of compute and memory time, energy and
// latency never decreasing when a precision rises, and the hardware TOML file with its errors.
#include <gtest/gtest.h>

#include "fractrain/cost/hardware_model.h"
#include "fractrain/cost/layer_cost.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

const char* kValidToml = R"(name = "test accelerator"
[compute]
frequency_mhz = 100
fusion_units = 4
bitbricks_per_fusion_unit = 16
bitbrick_energy_pj = 0.5
[memory]
sram_energy_pj_per_bit = 1.0
dram_energy_pj_per_bit = 9
dram_bits_per_cycle = 64
)";

std::string with_line_replaced(const std::string& key, const std::string& replacement) {
  std::string text = kValidToml;
  const size_t at = text.find(key + " =");
  EXPECT_NE(at, std::string::npos) << key;
  const size_t end = text.find('\n', at);
  return text.substr(0, at) + replacement + text.substr(end);
}

}  // namespace

TEST(CostHardware, BitBrickOperationsPerMac) {
  EXPECT_EQ(bitbrick_ops_per_mac(8, 8), 16);
  EXPECT_EQ(bitbrick_ops_per_mac(2, 2), 1);
  EXPECT_EQ(bitbrick_ops_per_mac(1, 1), 1);
  EXPECT_EQ(bitbrick_ops_per_mac(4, 8), 8);
  EXPECT_EQ(bitbrick_ops_per_mac(3, 5), 2 * 3);  // odd widths round up to whole BitBricks
  EXPECT_EQ(bitbrick_ops_per_mac(0, 0), 256);    // FP32 as 32-bit operands on the same fabric
  EXPECT_EQ(bitbrick_ops_per_mac(16, 0), 8 * 16);
  const HardwareModel hw = parse_hardware_model(kValidToml, "test.toml");
  // One 8x8-bit MAC: 16 BitBrick operations of 0.5 pJ, 16 cycles' worth of one BitBrick.
  EXPECT_DOUBLE_EQ(hw.energy_j(bitbrick_ops_per_mac(8, 8), 0), 16 * 0.5e-12);
  EXPECT_DOUBLE_EQ(hw.compute_seconds(bitbrick_ops_per_mac(8, 8)), 16 / (64 * 100e6));
}

TEST(CostHardware, ParsesTheFileAndConvertsUnits) {
  const HardwareModel hw = parse_hardware_model(kValidToml, "test.toml");
  EXPECT_EQ(hw.name, "test accelerator");
  EXPECT_EQ(hw.source, "test.toml");
  EXPECT_DOUBLE_EQ(hw.frequency_hz, 100e6);
  EXPECT_EQ(hw.bitbricks, 64);
  EXPECT_DOUBLE_EQ(hw.bitbrick_energy_j, 0.5e-12);
  EXPECT_DOUBLE_EQ(hw.sram_energy_per_bit_j, 1e-12);
  EXPECT_DOUBLE_EQ(hw.dram_energy_per_bit_j, 9e-12);
  EXPECT_DOUBLE_EQ(hw.dram_bits_per_second, 64 * 100e6);
  // Each moved bit is one DRAM and one SRAM access.
  EXPECT_DOUBLE_EQ(hw.energy_j(10, 100), 10 * 0.5e-12 + 100 * 10e-12);
}

TEST(CostHardware, LatencyIsTheLongerOfComputeAndMemoryTime) {
  const HardwareModel hw = parse_hardware_model(kValidToml, "test.toml");
  // 6.4e9 BitBrick operations per second, 6.4e9 bits per second.
  EXPECT_DOUBLE_EQ(hw.latency_s(6.4e9, 1e6), 1.0);     // compute-bound
  EXPECT_DOUBLE_EQ(hw.latency_s(1e6, 3.2e9), 0.5);     // memory-bound
  EXPECT_DOUBLE_EQ(hw.latency_s(0, 0), 0.0);
}

TEST(CostHardware, TheShippedBitFusionModel) {
  const HardwareModel hw = builtin_hardware_model();
  EXPECT_EQ(hw.bitbricks, 512 * 16);
  EXPECT_DOUBLE_EQ(hw.frequency_hz, 500e6);
  EXPECT_DOUBLE_EQ(hw.dram_bits_per_second, 192 * 500e6);
  EXPECT_DOUBLE_EQ(hw.bitbrick_energy_j, 0.0287e-12);
  EXPECT_DOUBLE_EQ(hw.sram_energy_per_bit_j, 20e-12 / 64);
  EXPECT_DOUBLE_EQ(hw.dram_energy_per_bit_j, 1.3e-9 / 64);
  // Peak: 8192 BitBricks at 500 MHz are 4.096e12 2x2-bit operations, 2.56e11 8x8-bit MACs per second.
  EXPECT_DOUBLE_EQ(hw.compute_seconds(4.096e12), 1.0);
}

// The library compiles configs/hardware/bitfusion.toml in (so that an installed CLI needs no source tree): the
// built-in model must be exactly what the file in the source tree says.
TEST(CostHardware, TheBuiltInModelIsTheShippedFile) {
  const std::string path = std::string(FRACTRAIN_SOURCE_DIR) + "/configs/hardware/bitfusion.toml";
  const HardwareModel file = load_hardware_model(path);
  const HardwareModel builtin = builtin_hardware_model();
  EXPECT_EQ(builtin.name, file.name);
  EXPECT_EQ(builtin.source, kBuiltinHardwareModelSource);
  EXPECT_EQ(builtin.frequency_hz, file.frequency_hz);
  EXPECT_EQ(builtin.bitbricks, file.bitbricks);
  EXPECT_EQ(builtin.bitbrick_energy_j, file.bitbrick_energy_j);
  EXPECT_EQ(builtin.sram_energy_per_bit_j, file.sram_energy_per_bit_j);
  EXPECT_EQ(builtin.dram_energy_per_bit_j, file.dram_energy_per_bit_j);
  EXPECT_EQ(builtin.dram_bits_per_second, file.dram_bits_per_second);
  // An empty path (no cost.hardware, no --hardware) means the built-in model; any other is read from its file.
  EXPECT_EQ(hardware_model_or_builtin("").source, kBuiltinHardwareModelSource);
  EXPECT_EQ(hardware_model_or_builtin(path).source, path);
}

TEST(CostHardware, EnergyAndLatencyNeverDecreaseWhenAPrecisionRises) {
  const ModelInputSpec input{3, 32, 32, 10};
  auto model = create_model("resnet20", input);
  const ModelProfile profile = profile_model(*model, input);
  const HardwareModel hw = builtin_hardware_model();
  const std::vector<int> widths = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32};  // ascending; 32 is also FP32 (0)
  auto cost = [&](const LayerProfile& l, int a, int w, int g) {
    return layer_cost(l, l.macs_per_sample, 16, LayerPrecision::uniform(Precision{a, w, g, false}), hw);
  };
  auto expect_not_lower = [](const LayerCost& low, const LayerCost& high, const std::string& what) {
    for (int p = 0; p < kPassCount; ++p) {
      EXPECT_LE(low.passes[p].energy_j, high.passes[p].energy_j) << what << " pass " << p;
      EXPECT_LE(low.passes[p].latency_s, high.passes[p].latency_s) << what << " pass " << p;
      EXPECT_LE(low.passes[p].bit_macs, high.passes[p].bit_macs) << what << " pass " << p;
    }
    EXPECT_LE(low.total().energy_j, high.total().energy_j) << what;
  };
  int strictly_higher = 0;
  for (const LayerProfile& l : profile.layers()) {
    const std::string& name = l.name;
    for (int a : widths)
      for (int w : widths)
        for (int g : {2, 8, 32}) {
          const LayerCost base = cost(l, a, w, g);
          for (int higher : widths) {
            if (higher <= a && higher <= w && higher <= g) continue;
            const std::string what = name + " a" + std::to_string(a) + " w" + std::to_string(w) + " g" +
                                     std::to_string(g) + " -> " + std::to_string(higher);
            if (higher > a) expect_not_lower(base, cost(l, higher, w, g), what + " (act)");
            if (higher > w) expect_not_lower(base, cost(l, a, higher, g), what + " (weight)");
            if (higher > g) expect_not_lower(base, cost(l, a, w, higher), what + " (grad)");
          }
        }
    strictly_higher += cost(l, 8, 8, 8).total().energy_j < cost(l, 16, 8, 8).total().energy_j;
  }
  EXPECT_EQ(strictly_higher, static_cast<int>(profile.layers().size()));  // and it does cost more
  // FP32 written as 0 bits costs what 32 bits cost.
  const LayerProfile& l = profile.layers()[1];
  EXPECT_EQ(cost(l, 0, 0, 0).total().energy_j, cost(l, 32, 32, 32).total().energy_j);
}

TEST(CostHardware, FileErrorsNameTheFileAndTheKey) {
  EXPECT_CONTAINS(error_of([] { load_hardware_model("/nonexistent/hw.toml"); }), "/nonexistent/hw.toml");
  const std::string missing = error_of([] {
    std::string text = kValidToml;
    text.erase(text.find("dram_bits_per_cycle"));
    parse_hardware_model(text, "hw.toml");
  });
  EXPECT_CONTAINS(missing, "hw.toml");
  EXPECT_CONTAINS(missing, "missing key 'memory.dram_bits_per_cycle'");
  const std::string unknown = error_of(
      [] { parse_hardware_model(with_line_replaced("frequency_mhz", "frequncy_mhz = 500"), "hw.toml"); });
  EXPECT_CONTAINS(unknown, "hw.toml:3");
  EXPECT_CONTAINS(unknown, "did you mean 'compute.frequency_mhz'");
  EXPECT_CONTAINS(error_of([] { parse_hardware_model(with_line_replaced("fusion_units", "fusion_units = \"512\""),
                                                     "hw.toml"); }),
                  "compute.fusion_units must be a number");
  EXPECT_CONTAINS(error_of([] { parse_hardware_model(with_line_replaced("fusion_units", "fusion_units = 4.5"),
                                                     "hw.toml"); }),
                  "must be an integer");
  EXPECT_CONTAINS(error_of([] { parse_hardware_model(with_line_replaced("dram_energy_pj_per_bit",
                                                                        "dram_energy_pj_per_bit = -1"),
                                                     "hw.toml"); }),
                  "memory.dram_energy_pj_per_bit = -1 is out of range");
  EXPECT_CONTAINS(error_of([] { parse_hardware_model("name = \"x\"\n[compute\n", "bad.toml"); }), "bad.toml:2");
  EXPECT_CONTAINS(error_of([] { parse_hardware_model(with_line_replaced("name", "title = \"x\""), "hw.toml"); }),
                  "unknown key 'title'");
}
