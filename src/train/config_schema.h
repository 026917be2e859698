#pragma once
// The one table of config keys. Parsing TOML, --set overrides, validation, to_toml/to_json, --help-config
// and unknown-key detection all walk this table, so adding a key is one line and no key is spelled twice.
#include <functional>
#include <string>
#include <vector>

#include "config_value.h"
#include "fractrain/train/run_config.h"

namespace fractrain::config {

// "" when the value is acceptable; otherwise the end of the sentence "<key> = <value> ...", e.g.
// "is out of range: bits must be 0 (full precision) or 1..32".
using Check = std::function<std::string(const Value&)>;

struct KeyDescriptor {
  std::string key;  // "section.leaf"
  ValueKind kind;
  std::string description;
  std::function<Value(const RunConfig&)> get;
  std::function<void(RunConfig&, const Value&)> set;  // only with a value of `kind` that `problem` accepted
  Check problem;
};

// All keys, grouped by section, in the order to_toml prints them.
const std::vector<KeyDescriptor>& key_table();

// nullptr when `key` is not a config key.
const KeyDescriptor* find_key(const std::string& key);

// "unknown config key 'K' in WHERE; did you mean 'S'?" (or a hint to --help-config when nothing is close).
std::string unknown_key_message(const std::string& key, const std::string& where);

// True when `name` is a section ("train"), i.e. the part before the dot of some key.
bool is_section(const std::string& name);

}  // namespace fractrain::config
