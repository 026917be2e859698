#pragma once
// The one exception type fractrain throws for anything a user can fix (bad config, bad file, bad name).
// Messages name the offending file/field/value and say what to do instead; the CLI prints them verbatim.
#include <stdexcept>
#include <string>

namespace fractrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace fractrain
