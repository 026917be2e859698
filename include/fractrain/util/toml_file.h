#pragma once
// Reading TOML files (run recipes, hardware models) with errors that name the file, line and column.
#include <toml++/toml.h>

#include <string>

namespace fractrain {

// The whole file. Throws fractrain::Error "cannot read <what> '<path>': <reason>; <hint>".
std::string read_text_file(const std::string& path, const std::string& what, const std::string& hint);

// Throws fractrain::Error "<source>:<line>:<column>: TOML syntax error: <description>".
toml::table parse_toml(const std::string& text, const std::string& source_name);

}  // namespace fractrain
