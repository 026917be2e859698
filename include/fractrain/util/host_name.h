#pragma once
#include <string>

namespace fractrain {

// This machine's host name, usable inside a file name ('/' replaced by '_'); "localhost" when it cannot be read.
// It names who holds a directory lock and which machine wrote a TensorBoard event file.
std::string host_name();

}  // namespace fractrain
