#include "fractrain/data/token_corpus.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "fractrain/data/token_file.h"
#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

std::string how_to_get(const std::string& name) {
  if (name == "wordnet-lm")
    return "create them with scripts/make_wordnet_corpus.py [DIR] (needs Debian's wordnet-base package)";
  return "download wikitext-103-v1.zip (https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip, "
         "mirrored at https://wikitext.smerity.com/wikitext-103-v1.zip) and unzip it into data/, or set data.path to "
         "the folder holding wiki.train.tokens";
}

void check_name(const std::string& name) {
  if (!is_token_dataset(name))
    throw Error("unknown token dataset '" + name + "'" + did_you_mean(name, token_dataset_names()) +
                "; token datasets: wikitext103, wordnet-lm");
}

}  // namespace

const char* token_split_name(TokenSplit split) {
  switch (split) {
    case TokenSplit::Train: return "train";
    case TokenSplit::Valid: return "valid";
    case TokenSplit::Test: return "test";
  }
  return "?";
}

std::vector<std::string> token_dataset_names() { return {"wikitext103", "wordnet-lm"}; }

bool is_token_dataset(const std::string& name) {
  for (const auto& n : token_dataset_names())
    if (n == name) return true;
  return false;
}

std::string default_token_data_dir(const std::string& name) {
  check_name(name);
  return name == "wikitext103" ? "data/wikitext-103" : "data/wordnet-lm";
}

std::string token_file_path(const std::string& name, const std::string& dir, TokenSplit split) {
  check_name(name);
  const fs::path root = dir.empty() ? fs::path(default_token_data_dir(name)) : fs::path(dir);
  const std::string file = std::string("wiki.") + token_split_name(split) + ".tokens";
  const fs::path direct = root / file, nested = root / "wikitext-103" / file;
  std::error_code ec;
  if (fs::exists(direct, ec)) return direct.string();
  if (fs::exists(nested, ec)) return nested.string();
  throw Error("dataset " + name + ": no " + token_split_name(split) + " split: neither " + direct.string() + " nor " +
              nested.string() + " exists; " + how_to_get(name));
}

TokenCorpus load_token_corpus(const std::string& name, const std::string& dir, int64_t min_count,
                              const Vocabulary* fixed) {
  TokenCorpus corpus;
  corpus.name = name;
  corpus.train_path = token_file_path(name, dir, TokenSplit::Train);
  corpus.valid_path = token_file_path(name, dir, TokenSplit::Valid);
  const std::string train = read_token_text(corpus.train_path);
  corpus.vocabulary = fixed ? *fixed : Vocabulary::from_counts(count_tokens(train), min_count);
  corpus.train = encode_tokens(train, corpus.vocabulary);
  corpus.valid = encode_tokens(read_token_text(corpus.valid_path), corpus.vocabulary);
  return corpus;
}

at::Tensor load_token_split(const std::string& name, const std::string& dir, TokenSplit split,
                            const Vocabulary& vocabulary) {
  return encode_tokens(read_token_text(token_file_path(name, dir, split)), vocabulary);
}

}  // namespace fractrain
