#pragma once
// The word vocabulary of a token corpus (WikiText format): built from the training split with a frequency
// cut-off, saved with a run so that evaluation and resumed runs map words to the same ids.
//
// Ids: 0 is <unk> (every word below the cut-off, and every word not in the training split), 1 is <eos> (the end
// of each line); then the kept words by count, most frequent first, ties in byte-wise lexicographic order, so
// the same training text and cut-off always give the same ids.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fractrain {

class Vocabulary {
 public:
  static constexpr std::string_view kUnknown = "<unk>";
  static constexpr std::string_view kEndOfLine = "<eos>";
  static constexpr int32_t kUnknownId = 0;
  static constexpr int32_t kEndOfLineId = 1;

  // Only <unk> and <eos>.
  Vocabulary();

  // Keeps the words seen at least `min_count` times (min_count >= 1). Occurrences of <unk> and <eos> in the
  // counts go to their reserved ids.
  static Vocabulary from_counts(const std::unordered_map<std::string, int64_t>& counts, int64_t min_count);

  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  // kUnknownId for a word not in the vocabulary.
  int32_t id(std::string_view word) const;
  // Throws fractrain::Error for an id outside [0, size()).
  const std::string& word(int64_t id) const;
  // Training-split occurrences of the word (for <unk>: of the words folded into it, and literal <unk>s).
  int64_t count(int64_t id) const;

  // Text form: a header line, then "word count" per line, in id order. from_text throws fractrain::Error
  // naming `source` and the line for anything else (a vocabulary is read back, never guessed).
  std::string to_text() const;
  static Vocabulary from_text(const std::string& text, const std::string& source);
  void save(const std::string& path) const;
  static Vocabulary load(const std::string& path);

  bool operator==(const Vocabulary& other) const { return words_ == other.words_ && counts_ == other.counts_; }
  bool operator!=(const Vocabulary& other) const { return !(*this == other); }

 private:
  void add(std::string word, int64_t count);

  std::vector<std::string> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace fractrain
