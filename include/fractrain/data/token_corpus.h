#pragma once
// The named token corpora (WikiText format) and loading their three splits as id streams over one vocabulary.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "fractrain/data/vocabulary.h"

namespace fractrain {

enum class TokenSplit { Train, Valid, Test };
const char* token_split_name(TokenSplit split);  // "train", "valid", "test"

// "wikitext103" (WikiText-103) and "wordnet-lm" (scripts/make_wordnet_corpus.py), both wiki.{train,valid,test}.tokens.
std::vector<std::string> token_dataset_names();
bool is_token_dataset(const std::string& name);
// data/wikitext-103, data/wordnet-lm (relative to the working directory).
std::string default_token_data_dir(const std::string& name);

// The split's file: DIR/wiki.SPLIT.tokens, or DIR/wikitext-103/wiki.SPLIT.tokens (where the archive unzips to)
// when only that exists. Throws fractrain::Error naming both paths tried and how to get the files.
std::string token_file_path(const std::string& name, const std::string& dir, TokenSplit split);

struct TokenCorpus {
  std::string name;
  Vocabulary vocabulary;
  at::Tensor train, valid;  // int32 [N] token ids, <eos> at each line end
  std::string train_path, valid_path;
};

// Reads the train and valid splits (dir empty = the default). The vocabulary is built from the training split
// with the cut-off `min_count`, unless `fixed` is given (a run's saved vocabulary: resumed runs and evaluation).
TokenCorpus load_token_corpus(const std::string& name, const std::string& dir, int64_t min_count,
                              const Vocabulary* fixed = nullptr);

// One more split encoded with an existing vocabulary (the test split, for evaluation).
at::Tensor load_token_split(const std::string& name, const std::string& dir, TokenSplit split,
                            const Vocabulary& vocabulary);

}  // namespace fractrain
