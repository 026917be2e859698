// The conventional (torchrun) environment of a rank, parsed strictly: a typo in RANK must stop the run with the
// variable's name, not join the group as rank 0.
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "fractrain/dist/launch.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using Lookup = std::function<const char*(const char*)>;

int parse_int(const char* name, const char* value, int minimum, int maximum, const std::string& meaning) {
  const std::string text(value);
  int parsed = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    throw Error(fmt::format("{}='{}' is not a whole number: set it to {}", name, text, meaning));
  }
  if (parsed < minimum || parsed > maximum) {
    throw Error(fmt::format("{}={} is out of range: it must be {}", name, parsed, meaning));
  }
  return parsed;
}

int int_variable(const Lookup& lookup, const char* name, int fallback, int minimum, int maximum,
                 const std::string& meaning) {
  const char* value = lookup(name);
  return value ? parse_int(name, value, minimum, maximum, meaning) : fallback;
}

bool bool_variable(const Lookup& lookup, const char* name) {
  const char* value = lookup(name);
  if (!value) return false;
  std::string text(value);
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0" || text.empty()) return false;
  throw Error(fmt::format("{}='{}' is not a boolean: set it to True or False", name, value));
}

}  // namespace

ProcessGroupOptions DistributedEnvironment::process_group_options(std::chrono::milliseconds timeout,
                                                                  const std::string& backend) const {
  ProcessGroupOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.local_rank = local_rank;
  options.master_addr = master_addr;
  options.master_port = master_port;
  options.timeout = timeout;
  options.backend = backend;
  options.agent_store = agent_store;
  options.restart_count = restart_count;
  return options;
}

std::optional<DistributedEnvironment> distributed_environment_from(const Lookup& lookup) {
  const char* world = lookup("WORLD_SIZE");
  if (!world) return std::nullopt;
  constexpr int kMax = 1 << 20;
  DistributedEnvironment env;
  env.world_size = parse_int("WORLD_SIZE", world, 1, kMax, "the number of ranks, at least 1");
  const char* rank = lookup("RANK");
  if (!rank) {
    throw Error(fmt::format("WORLD_SIZE={} is set but RANK is not: set RANK to this process's rank (0..{})",
                            env.world_size, env.world_size - 1));
  }
  const std::string rank_range = fmt::format("this process's rank, 0..{} (WORLD_SIZE={})", env.world_size - 1,
                                             env.world_size);
  env.rank = parse_int("RANK", rank, 0, env.world_size - 1, rank_range);
  env.local_world_size = int_variable(lookup, "LOCAL_WORLD_SIZE", env.world_size, 1, env.world_size,
                                      fmt::format("the ranks on this node, 1..{} (WORLD_SIZE)", env.world_size));
  env.local_rank = int_variable(lookup, "LOCAL_RANK", lookup("LOCAL_WORLD_SIZE") ? 0 : env.rank, 0,
                                env.local_world_size - 1,
                                fmt::format("this process's rank on its node, 0..{} (LOCAL_WORLD_SIZE={})",
                                            env.local_world_size - 1, env.local_world_size));
  if (!lookup("LOCAL_RANK") && lookup("LOCAL_WORLD_SIZE")) {
    throw Error(fmt::format("LOCAL_WORLD_SIZE={} is set but LOCAL_RANK is not: set LOCAL_RANK to this process's "
                            "rank on its node (0..{})",
                            env.local_world_size, env.local_world_size - 1));
  }
  const char* addr = lookup("MASTER_ADDR");
  if (addr) env.master_addr = addr;
  if (env.world_size > 1 && env.master_addr.empty()) {
    throw Error(fmt::format("WORLD_SIZE={} but MASTER_ADDR is {}: set MASTER_ADDR to the host of rank 0",
                            env.world_size, addr ? "empty" : "unset"));
  }
  env.master_port = int_variable(lookup, "MASTER_PORT", env.master_port, 1, 65535, "a TCP port, 1..65535");
  env.agent_store = bool_variable(lookup, "TORCHELASTIC_USE_AGENT_STORE");
  env.restart_count = int_variable(lookup, "TORCHELASTIC_RESTART_COUNT", 0, 0, kMax, "a count, 0 or more");
  return env;
}

std::optional<DistributedEnvironment> distributed_environment_from_env() {
  return distributed_environment_from([](const char* name) { return std::getenv(name); });
}

}  // namespace fractrain
