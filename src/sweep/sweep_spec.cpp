#include "fractrain/sweep/sweep_spec.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"
#include "fractrain/util/toml_file.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

std::string where(const std::string& source, const toml::node& node) {
  const auto& s = node.source().begin;
  return fmt::format("{}:{}:{}", source, s.line, s.column);
}

// Refuses keys a table should not have, with a did-you-mean: a typo must not silently drop a method.
void check_keys(const toml::table& table, const std::vector<std::string>& allowed, const std::string& what,
                const std::string& source) {
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      throw Error(fmt::format("{}: unknown key '{}' in {}{} (allowed: {})", where(source, node), k, what,
                              did_you_mean(k, allowed), fmt::join(allowed, ", ")));
  }
}

std::string get_string(const toml::table& table, const std::string& key, const std::string& what,
                       const std::string& source, bool required, const std::string& fallback = "") {
  const toml::node* node = table.get(key);
  if (!node) {
    if (required) throw Error(fmt::format("{}: {} has no '{}'", source, what, key));
    return fallback;
  }
  const auto value = node->value<std::string>();
  if (!value || value->empty())
    throw Error(fmt::format("{}: {}.{} must be a non-empty string", where(source, *node), what, key));
  return *value;
}

std::vector<std::string> get_strings(const toml::table& table, const std::string& key, const std::string& what,
                                     const std::string& source) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (!node) return out;
  const auto* array = node->as_array();
  if (!array) throw Error(fmt::format("{}: {}.{} must be a list of strings", where(source, *node), what, key));
  for (const auto& item : *array) {
    const auto value = item.value<std::string>();
    if (!value) throw Error(fmt::format("{}: {}.{} must be a list of strings", where(source, item), what, key));
    out.push_back(*value);
  }
  return out;
}

// `what`.seeds of `table` (sweep or method), or `absent` when the table has none.
std::vector<uint64_t> get_seeds(const toml::table& table, const char* what, const std::string& source,
                                std::vector<uint64_t> absent) {
  const toml::node* node = table.get("seeds");
  if (!node) return absent;
  const auto* array = node->as_array();
  std::vector<uint64_t> seeds;
  if (array) {
    for (const auto& item : *array) {
      const auto value = item.value<int64_t>();
      if (!value || *value < 0) {
        array = nullptr;
        break;
      }
      if (std::find(seeds.begin(), seeds.end(), static_cast<uint64_t>(*value)) != seeds.end())
        throw Error(fmt::format("{}: {}.seeds lists {} twice", where(source, item), what, *value));
      seeds.push_back(static_cast<uint64_t>(*value));
    }
  }
  if (!array || seeds.empty())
    throw Error(fmt::format("{}: {}.seeds must be a non-empty list of seeds >= 0, e.g. [1, 2]", where(source, *node),
                            what));
  return seeds;
}

// Names become directory names: keep them to one portable path component.
void check_name(const std::string& name, const std::string& what, const std::string& source) {
  const bool ok = !name.empty() && name != "." && name != ".." && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!ok)
    throw Error(fmt::format("{}: {} name '{}' must be letters, digits, '-', '_' or '.' (it names a directory)",
                            source, what, name));
}

struct MethodEntry {
  std::string name, config;
  std::vector<std::string> set;
  std::vector<uint64_t> seeds;  // the sweep's, or the method's own subset of them
};
struct SettingEntry {
  std::string name, pretrain;
  std::vector<std::string> set, pretrain_set, methods;
};

const toml::array* array_of_tables(const toml::table& root, const std::string& key, const std::string& source) {
  const toml::node* node = root.get(key);
  if (!node) return nullptr;
  const auto* array = node->as_array();
  if (!array || !array->is_array_of_tables())
    throw Error(fmt::format("{}: '{}' must be written as [[{}]] tables", where(source, *node), key, key));
  return array;
}

RunConfig resolve(const std::string& recipe, const std::vector<std::vector<std::string>>& override_lists,
                  const std::string& run_label, const std::string& source) {
  RunConfig config = load_run_config(recipe);
  for (const auto& list : override_lists) {
    for (const auto& o : list) {
      try {
        apply_override(config, o);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: run {}: override '{}': {}", source, run_label, o, e.what()));
      }
    }
  }
  try {
    validate_precision_schedule(config.precision);
    validate_dfq(config);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: run {}: {}", source, run_label, e.what()));
  }
  return config;
}

}  // namespace

std::string run_label(const std::string& setting, const std::string& method, uint64_t seed) {
  return setting + "/" + method + "/seed-" + std::to_string(seed);
}

SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& extra_overrides) {
  return parse_sweep_spec(read_text_file(path, "sweep spec", "check the path (examples live in configs/sweeps/)"),
                          path, extra_overrides);
}

SweepSpec parse_sweep_spec(const std::string& toml_text, const std::string& source,
                           const std::vector<std::string>& extra_overrides) {
  const toml::table root = parse_toml(toml_text, source);
  check_keys(root, {"sweep", "method", "setting"}, "the sweep spec", source);
  const toml::table* sweep = root["sweep"].as_table();
  if (!sweep) throw Error(source + ": no [sweep] table (it names the output directory and the seeds)");
  check_keys(*sweep, {"output", "seeds", "set", "baseline", "reference"}, "[sweep]", source);

  SweepSpec spec;
  spec.source = source;
  spec.output = get_string(*sweep, "output", "sweep", source, true);
  spec.seeds = get_seeds(*sweep, "sweep", source, {1});
  const std::vector<std::string> sweep_set = get_strings(*sweep, "set", "sweep", source);
  spec.baseline = get_string(*sweep, "baseline", "sweep", source, false);
  spec.reference = get_string(*sweep, "reference", "sweep", source, false);

  std::vector<MethodEntry> methods;
  const toml::array* method_tables = array_of_tables(root, "method", source);
  if (!method_tables || method_tables->empty())
    throw Error(source + ": no [[method]] tables: list at least one method (name and config recipe)");
  for (const auto& node : *method_tables) {
    const auto& t = *node.as_table();
    check_keys(t, {"name", "config", "set", "seeds"}, "[[method]]", source);
    MethodEntry m{get_string(t, "name", "method", source, true), get_string(t, "config", "method", source, true),
                  get_strings(t, "set", "method", source), get_seeds(t, "method", source, spec.seeds)};
    check_name(m.name, "method", source);
    // A subset, so that every run of the sweep keeps its place in the seed-by-seed order and its pairing.
    for (uint64_t seed : m.seeds)
      if (std::find(spec.seeds.begin(), spec.seeds.end(), seed) == spec.seeds.end())
        throw Error(fmt::format("{}: method '{}' lists seed {}, which sweep.seeds does not: a method's seeds are a "
                                "subset of the sweep's",
                                source, m.name, seed));
    if (m.name == "pretrain") throw Error(source + ": 'pretrain' is reserved for settings' pretraining runs");
    for (const auto& other : methods)
      if (other.name == m.name) throw Error(source + ": method '" + m.name + "' is listed twice");
    methods.push_back(std::move(m));
    spec.methods.push_back(methods.back().name);
  }
  for (const auto* name : {&spec.baseline, &spec.reference})
    if (!name->empty() && std::find(spec.methods.begin(), spec.methods.end(), *name) == spec.methods.end())
      throw Error(fmt::format("{}: sweep names '{}' as a comparison method but no [[method]] has that name{}", source,
                              *name, did_you_mean(*name, spec.methods)));

  std::vector<SettingEntry> settings;
  if (const toml::array* setting_tables = array_of_tables(root, "setting", source)) {
    for (const auto& node : *setting_tables) {
      const auto& t = *node.as_table();
      check_keys(t, {"name", "set", "pretrain", "pretrain_set", "methods"}, "[[setting]]", source);
      SettingEntry s{get_string(t, "name", "setting", source, true), get_string(t, "pretrain", "setting", source, false),
                     get_strings(t, "set", "setting", source), get_strings(t, "pretrain_set", "setting", source),
                     get_strings(t, "methods", "setting", source)};
      check_name(s.name, "setting", source);
      for (const auto& other : settings)
        if (other.name == s.name) throw Error(source + ": setting '" + s.name + "' is listed twice");
      for (const auto& m : s.methods)
        if (std::find(spec.methods.begin(), spec.methods.end(), m) == spec.methods.end())
          throw Error(fmt::format("{}: setting '{}' names method '{}', which no [[method]] defines{}", source, s.name, m,
                                  did_you_mean(m, spec.methods)));
      if (s.pretrain.empty() && !s.pretrain_set.empty())
        throw Error(source + ": setting '" + s.name + "' has pretrain_set but no pretrain recipe");
      settings.push_back(std::move(s));
    }
  }
  if (settings.empty()) settings.push_back(SettingEntry{"standard", "", {}, {}, {}});
  for (const auto& s : settings) spec.settings.push_back(s.name);

  const fs::path out(spec.output);
  for (const auto& s : settings) {
    for (uint64_t seed : spec.seeds) {
      int pretrain_index = -1;
      if (!s.pretrain.empty()) {
        SweepRun run{s.name, "pretrain", seed, {}, -1};
        run.config = resolve(s.pretrain, {sweep_set, s.pretrain_set, extra_overrides}, run_label(run), source);
        run.config.train.seed = seed;
        run.config.output.dir = (out / run_label(run)).string();
        pretrain_index = static_cast<int>(spec.runs.size());
        spec.runs.push_back(std::move(run));
      }
      for (const auto& m : methods) {
        if (!s.methods.empty() && std::find(s.methods.begin(), s.methods.end(), m.name) == s.methods.end()) continue;
        if (std::find(m.seeds.begin(), m.seeds.end(), seed) == m.seeds.end()) continue;
        SweepRun run{s.name, m.name, seed, {}, pretrain_index};
        run.config = resolve(m.config, {sweep_set, m.set, s.set, extra_overrides}, run_label(run), source);
        run.config.train.seed = seed;
        run.config.output.dir = (out / run_label(run)).string();
        if (pretrain_index >= 0) run.config.train.init_from = spec.runs[static_cast<size_t>(pretrain_index)].config.output.dir;
        spec.runs.push_back(std::move(run));
      }
    }
  }
  // Pretraining runs first, so that with parallel jobs every dependency is done before its dependents start;
  // then seed by seed, so that a sweep cut short has complete comparisons (every setting and method) for its
  // first seeds rather than every seed of its first methods.
  std::stable_sort(spec.runs.begin(), spec.runs.end(), [](const SweepRun& a, const SweepRun& b) {
    const bool pa = a.method == "pretrain", pb = b.method == "pretrain";
    if (pa != pb) return pa;
    return a.seed < b.seed;
  });
  for (size_t i = 0; i < spec.runs.size(); ++i) {
    auto& r = spec.runs[i];
    if (r.depends_on < 0) continue;
    for (size_t j = 0; j < spec.runs.size(); ++j)
      if (spec.runs[j].method == "pretrain" && spec.runs[j].config.output.dir == r.config.train.init_from)
        r.depends_on = static_cast<int>(j);
  }
  return spec;
}

}  // namespace fractrain
