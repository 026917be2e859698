#include "fractrain/data/vocabulary.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

constexpr std::string_view kHeader = "fractrain vocabulary v1";

}  // namespace

Vocabulary::Vocabulary() {
  add(std::string(kUnknown), 0);
  add(std::string(kEndOfLine), 0);
}

void Vocabulary::add(std::string word, int64_t count) {
  ids_.emplace(word, static_cast<int32_t>(words_.size()));
  words_.push_back(std::move(word));
  counts_.push_back(count);
}

Vocabulary Vocabulary::from_counts(const std::unordered_map<std::string, int64_t>& counts, int64_t min_count) {
  if (min_count < 1) throw Error("vocabulary: min_count = " + std::to_string(min_count) + " must be >= 1");
  Vocabulary v;
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [word, count] : counts) {
    if (word == kUnknown) {
      v.counts_[kUnknownId] += count;
    } else if (word == kEndOfLine) {
      v.counts_[kEndOfLineId] += count;
    } else if (count >= min_count) {
      kept.emplace_back(word, count);
    } else {
      v.counts_[kUnknownId] += count;
    }
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (kept.size() + 2 > static_cast<size_t>(INT32_MAX))
    throw Error("vocabulary: " + std::to_string(kept.size()) + " distinct words do not fit 32-bit ids; raise the "
                "cut-off (data.vocab_min_count)");
  for (auto& [word, count] : kept) v.add(std::move(word), count);
  return v;
}

int32_t Vocabulary::id(std::string_view word) const {
  // Heterogeneous lookup needs C++20; a temporary string per lookup is what encoding costs.
  const auto it = ids_.find(std::string(word));
  return it == ids_.end() ? kUnknownId : it->second;
}

const std::string& Vocabulary::word(int64_t id) const {
  if (id < 0 || id >= size())
    throw Error("vocabulary: id " + std::to_string(id) + " is outside [0, " + std::to_string(size()) + ")");
  return words_[static_cast<size_t>(id)];
}

int64_t Vocabulary::count(int64_t id) const {
  word(id);  // range check
  return counts_[static_cast<size_t>(id)];
}

std::string Vocabulary::to_text() const {
  std::string out = std::string(kHeader) + " " + std::to_string(size()) + "\n";
  for (size_t i = 0; i < words_.size(); ++i) out += words_[i] + " " + std::to_string(counts_[i]) + "\n";
  return out;
}

Vocabulary Vocabulary::from_text(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  std::string line;
  auto fail = [&](int64_t line_number, const std::string& problem) -> Error {
    return Error(source + ":" + std::to_string(line_number) + ": " + problem +
                 "; this is not a vocabulary written by fractrain (or it was edited): delete it to rebuild it from the "
                 "training split");
  };
  if (!std::getline(in, line) || line.rfind(kHeader, 0) != 0) throw fail(1, "missing the '" + std::string(kHeader) + "' header");
  int64_t declared = -1;
  try {
    declared = std::stoll(line.substr(kHeader.size()));
  } catch (const std::exception&) {
  }
  if (declared < 2) throw fail(1, "the header does not give a word count >= 2");
  Vocabulary v;
  v.words_.clear();
  v.counts_.clear();
  v.ids_.clear();
  int64_t line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    const auto space = line.rfind(' ');
    if (space == std::string::npos || space == 0) throw fail(line_number, "expected 'word count'");
    std::string word = line.substr(0, space);
    if (word.find_first_of(" \t\r") != std::string::npos) throw fail(line_number, "a word contains whitespace");
    int64_t count = -1;
    try {
      size_t used = 0;
      count = std::stoll(line.substr(space + 1), &used);
      if (used != line.size() - space - 1) count = -1;
    } catch (const std::exception&) {
    }
    if (count < 0) throw fail(line_number, "the count is not a non-negative integer");
    if (v.ids_.count(word)) throw fail(line_number, "'" + word + "' appears twice");
    v.add(std::move(word), count);
  }
  if (v.size() != declared)
    throw fail(line_number, "the header declares " + std::to_string(declared) + " words, the file has " +
                                std::to_string(v.size()));
  if (v.words_[kUnknownId] != kUnknown || v.words_[kEndOfLineId] != kEndOfLine)
    throw fail(2, "ids 0 and 1 must be <unk> and <eos>");
  return v;
}

void Vocabulary::save(const std::string& path) const { write_file_atomically(path, to_text()); }

Vocabulary Vocabulary::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read vocabulary '" + path + "': missing or unreadable");
  std::ostringstream text;
  text << in.rdbuf();
  return from_text(text.str(), path);
}

}  // namespace fractrain
