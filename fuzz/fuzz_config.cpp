// libFuzzer target: a TOML recipe and a --set assignment are parsed, typed and validated, or refused with
// fractrain::Error (syntax errors with file and line, unknown keys, wrong types, out-of-range values).
#include <string>

#include "fractrain/train/run_config.h"
#include "fractrain/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    fractrain::RunConfig config = fractrain::parse_run_config(text, "fuzz.toml");
    // What was accepted must write back to TOML that reads to the same config.
    if (fractrain::parse_run_config(fractrain::to_toml(config), "roundtrip") != config) __builtin_trap();
  } catch (const fractrain::Error&) {
  }
  try {
    fractrain::RunConfig config;
    fractrain::apply_override(config, text);
  } catch (const fractrain::Error&) {
  }
  return 0;
}
