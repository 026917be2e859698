#pragma once
// A config value as the key table sees it, independent of which struct field holds it: one small variant
// lets TOML parsing, --set parsing, printing and JSON share one code path per type instead of one per key.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fractrain::config {

enum class ValueKind { Bool, Int, Float, String, IntList, FloatList };

using Value = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// "bool", "int", "float", "string", "int list", "float list": shown by --help-config and in type errors.
const char* kind_name(ValueKind kind);

// "a boolean (true or false)", "an integer", ...: for "expected ..." in type errors.
const char* kind_phrase(ValueKind kind);

// TOML text of the value; parses back to exactly the same value (floats use the shortest round-trip form).
std::string to_toml_text(const Value& value);

nlohmann::json to_json_value(const Value& value);

// Parses a --set value; throws fractrain::Error(reason) when `text` is not a `kind`; the caller adds the key.
Value parse_cli_value(ValueKind kind, const std::string& text);

}  // namespace fractrain::config
