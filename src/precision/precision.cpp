#include "fractrain/precision/precision.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "fractrain/util/error.h"

namespace fractrain {

std::string to_string(const Precision& p) {
  if (p.skip) return "skip";
  if (p.is_full()) return "fp32";
  if (p.act == p.weight) return "fw" + std::to_string(p.act) + "bw" + std::to_string(p.grad);
  return "a" + std::to_string(p.act) + "w" + std::to_string(p.weight) + "g" + std::to_string(p.grad);
}

void check_bits(int bits, const std::string& what) {
  if (bits < 0 || bits > 32)
    throw Error(what + " = " + std::to_string(bits) +
                " is out of range: bits must be 0 (full precision) or 1..32");
}

Precision parse_precision(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != '-' && c != '/' && c != '_' && c != ' ') s += static_cast<char>(std::tolower(c));
  if (s == "fp32" || s == "full") return Precision::full();
  static const std::regex fw_bw("fw(\\d{1,2})bw(\\d{1,2})");
  std::smatch m;
  if (std::regex_match(s, m, fw_bw)) {
    Precision p = Precision::fw_bw(std::stoi(m[1]), std::stoi(m[2]));
    check_bits(p.act, "FW bits in '" + text + "'");
    check_bits(p.grad, "BW bits in '" + text + "'");
    return p;
  }
  throw Error("cannot read precision '" + text + "': write fp32 or fwNbwM (e.g. fw8bw8, FW-8/BW-16)");
}

}  // namespace fractrain
