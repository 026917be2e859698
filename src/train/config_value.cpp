#include "config_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "fractrain/util/error.h"

namespace fractrain::config {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04X", c);
          out += buf;
        } else {
          out += ch;  // UTF-8 passes through unchanged
        }
    }
  }
  return out + "\"";
}

// std::to_chars without a precision gives the shortest text that reads back to the same double; TOML then
// needs a '.' or an exponent so that the value stays a float, and spells the non-finite values inf/nan.
std::string toml_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  // general (printf %g style) keeps 1e-4 readable as 0.0001 and still picks the shortest exact digits.
  char* end = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general).ptr;
  std::string text(buf, end);
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

int64_t parse_int(const std::string& text) {
  const std::string t = trim(text);
  int64_t value = 0;
  const char* first = t.data();
  if (!t.empty() && t[0] == '+') ++first;  // from_chars rejects '+', people write it
  const auto [end, ec] = std::from_chars(first, t.data() + t.size(), value);
  if (t.empty() || ec == std::errc::invalid_argument || end != t.data() + t.size()) {
    throw Error("'" + text + "' is not an integer");
  }
  if (ec == std::errc::result_out_of_range) throw Error("'" + text + "' does not fit in a 64-bit integer");
  return value;
}

double parse_number(const std::string& t) {
  // from_chars, not strtod: it ignores the C locale's decimal separator, so "0.1" means 0.1 everywhere.
  double v = 0;
  const char* first = t.data();
  if (!t.empty() && t[0] == '+') ++first;
  const auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
  if (t.empty() || ec == std::errc::invalid_argument || end != t.data() + t.size()) {
    throw Error("'" + t + "' is not a number");
  }
  if (ec == std::errc::result_out_of_range) throw Error("'" + t + "' is out of the range of a double");
  return v;
}

// "[a, b]" or "a,b" (the shell often eats brackets); `text` is the value as given, for the message.
template <class T, class ParseItem>
std::vector<T> parse_list(const std::string& t, const std::string& text, ParseItem parse_item, const char* plural,
                          const char* singular, const char* example) {
  std::string body = t;
  if (!body.empty() && body.front() == '[') {
    if (body.back() != ']') throw Error("'" + text + "' is not a list: missing the closing ']'");
    body = trim(body.substr(1, body.size() - 2));
  }
  std::vector<T> list;
  if (body.empty()) return list;
  size_t start = 0;
  while (true) {
    const auto comma = body.find(',', start);
    const std::string item = trim(body.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    try {
      list.push_back(parse_item(item));
    } catch (const Error&) {
      throw Error(std::string("'") + text + "' is not a list of " + plural + " ('" + item + "' is not " + singular +
                  "); write it as " + example);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return list;
}

}  // namespace

const char* kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::Bool: return "bool";
    case ValueKind::Int: return "int";
    case ValueKind::Float: return "float";
    case ValueKind::String: return "string";
    case ValueKind::IntList: return "int list";
    case ValueKind::FloatList: return "float list";
  }
  return "?";
}

const char* kind_phrase(ValueKind kind) {
  switch (kind) {
    case ValueKind::Bool: return "a boolean (true or false)";
    case ValueKind::Int: return "an integer";
    case ValueKind::Float: return "a number";
    case ValueKind::String: return "a string";
    case ValueKind::IntList: return "a list of integers, e.g. [80, 120]";
    case ValueKind::FloatList: return "a list of numbers, e.g. [0.5, 0.75]";
  }
  return "?";
}

std::string to_toml_text(const Value& value) {
  struct Printer {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return toml_float(d); }
    std::string operator()(const std::string& s) const { return toml_string(s); }
    std::string operator()(const std::vector<int64_t>& list) const {
      std::string out = "[";
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + std::to_string(list[i]);
      return out + "]";
    }
    std::string operator()(const std::vector<double>& list) const {
      std::string out = "[";
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + toml_float(list[i]);
      return out + "]";
    }
  };
  return std::visit(Printer{}, value);
}

nlohmann::json to_json_value(const Value& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

Value parse_cli_value(ValueKind kind, const std::string& text) {
  const std::string t = trim(text);
  switch (kind) {
    case ValueKind::Bool:
      if (t == "true") return true;
      if (t == "false") return false;
      throw Error("'" + text + "' is not a boolean: use true or false");
    case ValueKind::Int: return parse_int(t);
    case ValueKind::Float: return parse_number(t);
    case ValueKind::String:
      // The shell usually eats the quotes; accept them when it did not.
      if (t.size() >= 2 && t.front() == '"' && t.back() == '"') return t.substr(1, t.size() - 2);
      return t;
    case ValueKind::IntList:
      return parse_list<int64_t>(t, text, parse_int, "integers", "an integer", "[80,120] or 80,120");
    case ValueKind::FloatList:
      return parse_list<double>(t, text, parse_number, "numbers", "a number", "[0.5,0.75] or 0.5,0.75");
  }
  throw Error("unsupported config value kind");
}

}  // namespace fractrain::config
