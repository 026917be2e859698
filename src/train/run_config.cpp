#include "fractrain/train/run_config.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config_schema.h"
#include "fractrain/train/lr_schedule.h"
#include "fractrain/util/error.h"
#include "fractrain/util/toml_file.h"

namespace fractrain {
namespace {

using config::KeyDescriptor;
using config::Value;
using config::ValueKind;

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }
std::string leaf_of(const std::string& key) { return key.substr(key.find('.') + 1); }

std::string location(const std::string& source, const toml::node& node) {
  const auto line = node.source().begin.line;
  return line > 0 ? fmt::format("{}:{}", source, line) : source;
}

// Scalars print as to_toml prints them, so messages quote a value the same way wherever it came from.
std::string node_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return config::to_toml_text(Value(s->get()));
  if (const auto* i = node.as_integer()) return config::to_toml_text(Value(i->get()));
  if (const auto* f = node.as_floating_point()) return config::to_toml_text(Value(f->get()));
  if (const auto* b = node.as_boolean()) return config::to_toml_text(Value(b->get()));
  std::ostringstream os;
  node.visit([&os](const auto& n) { os << n; });
  return os.str();
}

const char* toml_type_phrase(toml::node_type type) {
  switch (type) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "a date/time";
    default: return "nothing";
  }
}

// The elements of a list key; `element` converts one, or returns nothing for the wrong type.
template <class T, class Element>
std::vector<T> list_from_array(const KeyDescriptor& d, const toml::array& array, const toml::node& node,
                               const std::string& where, Element element) {
  std::vector<T> list;
  for (size_t i = 0; i < array.size(); ++i) {
    const std::optional<T> item = element(array[i]);
    if (!item) {
      throw Error(fmt::format("{}: {} = {} has the wrong type: element {} is {}, expected {}", where, d.key,
                              node_text(node), i, toml_type_phrase(array[i].type()), config::kind_phrase(d.kind)));
    }
    list.push_back(*item);
  }
  return list;
}

// Converts a TOML node to the key's kind; an integer is accepted where a float is expected (`lr = 1`),
// nothing else is coerced.
Value value_from_node(const KeyDescriptor& d, const toml::node& node, const std::string& where) {
  switch (d.kind) {
    case ValueKind::Bool:
      if (const auto* b = node.as_boolean()) return b->get();
      break;
    case ValueKind::Int:
      if (const auto* i = node.as_integer()) return i->get();
      break;
    case ValueKind::Float:
      if (const auto* f = node.as_floating_point()) return f->get();
      if (const auto* i = node.as_integer()) return static_cast<double>(i->get());
      break;
    case ValueKind::String:
      if (const auto* s = node.as_string()) return s->get();
      break;
    case ValueKind::IntList:
      if (const auto* array = node.as_array())
        return list_from_array<int64_t>(d, *array, node, where, [](const toml::node& item) -> std::optional<int64_t> {
          if (const auto* i = item.as_integer()) return i->get();
          return std::nullopt;
        });
      break;
    case ValueKind::FloatList:
      if (const auto* array = node.as_array())
        return list_from_array<double>(d, *array, node, where, [](const toml::node& item) -> std::optional<double> {
          if (const auto* f = item.as_floating_point()) return f->get();
          if (const auto* i = item.as_integer()) return static_cast<double>(i->get());
          return std::nullopt;
        });
      break;
  }
  throw Error(fmt::format("{}: {} = {} has the wrong type: expected {}, got {}", where, d.key, node_text(node),
                          config::kind_phrase(d.kind), toml_type_phrase(node.type())));
}

// The single place a value enters a RunConfig: range-checked, then stored.
void assign(RunConfig& config, const KeyDescriptor& d, const Value& value, const std::string& where) {
  const std::string problem = d.problem(value);
  if (!problem.empty()) {
    throw Error(fmt::format("{}: {} = {} {}", where, d.key, config::to_toml_text(value), problem));
  }
  d.set(config, value);
}

// Sets every key of a section table. Nested tables ([train.sub]) are walked down to their leaves so that the
// unknown key is reported in full ('train.sub.epochs') and the suggestion compares like with like.
void apply_table(RunConfig& config, const std::string& prefix, const toml::table& table, const std::string& source) {
  for (const auto& [leaf, node] : table) {
    const std::string key = prefix + "." + std::string(leaf.str());
    const std::string where = location(source, node);
    const KeyDescriptor* d = config::find_key(key);
    if (!d) {
      const auto* sub = node.as_table();
      if (sub && !sub->empty()) {
        apply_table(config, key, *sub, source);
        continue;
      }
      throw Error(config::unknown_key_message(key, where));
    }
    assign(config, *d, value_from_node(*d, node, where), where);
  }
}

}  // namespace

RunConfig load_run_config(const std::string& toml_path) {
  return parse_run_config(read_text_file(toml_path, "config file", "check the path (recipes live in configs/)"),
                          toml_path);
}

RunConfig parse_run_config(const std::string& toml_text, const std::string& source_name) {
  const toml::table root = parse_toml(toml_text, source_name);
  RunConfig config;
  for (const auto& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const std::string where = location(source_name, section_node);
    const auto* table = section_node.as_table();
    if (!table) {
      if (config::is_section(section)) {
        throw Error(fmt::format("{}: '{}' must be a table of keys ([{}] followed by key = value lines), not {}", where,
                                section, section, toml_type_phrase(section_node.type())));
      }
      throw Error(config::unknown_key_message(section, where));
    }
    apply_table(config, section, *table, source_name);
  }
  validate(config);
  try {
    validate_precision_schedule(config.precision);
    validate_lr_schedule(config.schedule);
    validate_dfq(config);
  } catch (const Error& e) {
    throw Error(source_name + ": " + e.what());
  }
  return config;
}

void apply_override(RunConfig& config, const std::string& assignment) {
  const std::string where = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos) {
    throw Error("--set '" + assignment + "' is not key=value; write e.g. --set train.batch_size=64");
  }
  const std::string key = trim(assignment.substr(0, eq));
  const KeyDescriptor* d = config::find_key(key);
  if (!d) throw Error(config::unknown_key_message(key, where));
  Value value;
  try {
    value = config::parse_cli_value(d->kind, assignment.substr(eq + 1));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {} expects {}: {}", where, key, config::kind_phrase(d->kind), e.what()));
  }
  // Work on a copy so that a refused override leaves the caller's config as it was.
  RunConfig updated = config;
  assign(updated, *d, value, where);
  validate(updated);
  config = std::move(updated);
}

std::string to_toml(const RunConfig& config) {
  const auto& table = config::key_table();
  size_t width = 0;
  for (const auto& d : table)
    width = std::max(width, leaf_of(d.key).size() + 3 + config::to_toml_text(d.get(config)).size());
  std::string out = "# fractrain run configuration: every key, resolved (defaults, recipe, --set overrides)\n";
  std::string section;
  for (const auto& d : table) {
    if (section_of(d.key) != section) {
      section = section_of(d.key);
      out += "\n[" + section + "]\n";
    }
    const std::string line = leaf_of(d.key) + " = " + config::to_toml_text(d.get(config));
    out += line + std::string(width - line.size() + 2, ' ') + "# " + d.description + "\n";
  }
  return out;
}

nlohmann::json to_json(const RunConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& d : config::key_table()) {
    j[section_of(d.key)][leaf_of(d.key)] = config::to_json_value(d.get(config));
  }
  return j;
}

void validate(const RunConfig& config) {
  for (const auto& d : config::key_table()) {
    const Value value = d.get(config);
    const std::string problem = d.problem(value);
    if (!problem.empty()) throw Error(fmt::format("{} = {} {}", d.key, config::to_toml_text(value), problem));
  }
}

bool operator==(const RunConfig& a, const RunConfig& b) {
  const auto& table = config::key_table();
  return std::all_of(table.begin(), table.end(), [&](const KeyDescriptor& d) { return d.get(a) == d.get(b); });
}

std::vector<ConfigKeyInfo> config_keys() {
  const RunConfig defaults;
  std::vector<ConfigKeyInfo> keys;
  for (const auto& d : config::key_table()) {
    keys.push_back({d.key, config::kind_name(d.kind), config::to_toml_text(d.get(defaults)), d.description});
  }
  return keys;
}

}  // namespace fractrain
