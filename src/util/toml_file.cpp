#include "fractrain/util/toml_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "fractrain/util/error.h"

namespace fractrain {

std::string read_text_file(const std::string& path, const std::string& what, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + what + " '" + path + "': " + std::strerror(errno) + "; " + hint);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

toml::table parse_toml(const std::string& text, const std::string& source_name) {
  try {
    return toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    throw Error(fmt::format("{}:{}:{}: TOML syntax error: {}", source_name, begin.line, begin.column, e.description()));
  }
}

}  // namespace fractrain
