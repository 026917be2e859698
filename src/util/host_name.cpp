#include "fractrain/util/host_name.h"

#include <unistd.h>

namespace fractrain {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

}  // namespace fractrain
