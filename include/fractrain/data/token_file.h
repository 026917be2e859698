#pragma once
// Word-level token files in the WikiText format (wiki.train.tokens, ...): words separated by spaces, rare words
// already replaced by <unk>, " = Heading = " lines and blank lines. As in the standard language-modelling setup
// (fairseq, PyTorch's word_language_model), every line, blank ones included, ends with an <eos> token.
// Tolerated: CRLF line ends, tabs and runs of spaces, trailing spaces, a missing final newline. Bytes are not
// decoded: UTF-8 (or anything else without NUL bytes) passes through as opaque words.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fractrain/data/vocabulary.h"

namespace fractrain {

// Anything longer is not a word of a text corpus: a binary file, or a file without separators.
constexpr size_t kMaxTokenBytes = 4096;
// Far above WikiText-103's 540 MB training file; anything this big is not a token file meant for this reader.
constexpr uint64_t kMaxTokenFileBytes = uint64_t{8} << 30;

// The file's bytes, checked to be a token file: present, not over kMaxTokenFileBytes, no NUL byte, no token over
// kMaxTokenBytes, at least one word. Throws fractrain::Error naming the path and the line/offset.
std::string read_token_text(const std::string& path);

// Calls fn(word) for each word of `text` in order, and fn(Vocabulary::kEndOfLine) at the end of every line (a
// last line without a newline included).
template <class Fn>
void for_each_token(std::string_view text, Fn&& fn) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const char c = text[i];
    if (c == '\n') {
      fn(Vocabulary::kEndOfLine);
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      ++i;
    } else {
      const size_t start = i;
      while (i < n && text[i] != '\n' && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\v' &&
             text[i] != '\f')
        ++i;
      fn(text.substr(start, i - start));
    }
  }
  if (n > 0 && text[n - 1] != '\n') fn(Vocabulary::kEndOfLine);
}

// Occurrences of every token (<eos> included).
std::unordered_map<std::string, int64_t> count_tokens(std::string_view text);

// int32 [N]: the ids of every token of `text`, <eos> included (words not in `vocabulary` become <unk>).
at::Tensor encode_tokens(std::string_view text, const Vocabulary& vocabulary);

}  // namespace fractrain
