#pragma once
// One table of names for an enum: parsing (with a did-you-mean), printing and listing all come from it, so a
// name is spelled once. Used for precision modes, models, DFQ execution modes.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {

template <class E>
class NameTable {
 public:
  struct Entry {
    E value;
    std::string name;
  };

  // `noun` finishes messages: "precision mode", "DFQ execution".
  NameTable(std::string noun, std::vector<Entry> entries) : noun_(std::move(noun)), entries_(std::move(entries)) {}

  const std::string& name(E value) const {
    for (const auto& e : entries_)
      if (e.value == value) return e.name;
    throw Error("internal: a " + noun_ + " without a name");
  }
  std::optional<E> find(const std::string& text) const {
    for (const auto& e : entries_)
      if (e.name == text) return e.value;
    return std::nullopt;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }
  // "" when `text` names an entry; otherwise the end of the sentence "<key> = <text> ...":
  // "is not a known precision mode: use static, pfq-manual or dfq; did you mean 'dfq'?".
  std::string problem(const std::string& text) const {
    if (find(text)) return "";
    return "is not a known " + noun_ + ": use " + choices() + did_you_mean(text, names());
  }
  // Throws fractrain::Error "<where> = '<text>' is not a known ..." for an unknown name.
  E parse(const std::string& text, const std::string& where) const {
    if (auto v = find(text)) return *v;
    throw Error(where + " = '" + text + "' " + problem(text));
  }
  // "a, b or c".
  std::string choices() const { return choice_list(names()); }

 private:
  std::string noun_;
  std::vector<Entry> entries_;
};

}  // namespace fractrain
