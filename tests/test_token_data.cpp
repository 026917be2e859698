// WikiText-format token files: the reader's quirks (CRLF, blank lines, trailing spaces, no final newline, UTF-8),
// its refusals (missing, empty, binary, absurd tokens), the vocabulary's cut-off and ordering, and batchify.
#include <ATen/ATen.h>

#include "fractrain/data/lm_batches.h"
#include "fractrain/data/token_corpus.h"
#include "fractrain/data/token_file.h"
#include "fractrain/data/vocabulary.h"
#include "test_support.h"

namespace fractrain {
namespace {

using test_support::error_of;
using test_support::TempDir;
using test_support::write_file;

std::vector<std::string> tokens_of(const std::string& text) {
  std::vector<std::string> out;
  for_each_token(text, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

using Tokens = std::vector<std::string>;

TEST(TokenFile, EveryLineEndsWithEosBlankLinesIncluded) {
  EXPECT_EQ(tokens_of(" = Heading = \n\n the cat <unk> sat \n"),
            (Tokens{"=", "Heading", "=", "<eos>", "<eos>", "the", "cat", "<unk>", "sat", "<eos>"}));
}

TEST(TokenFile, CrlfTabsTrailingSpacesAndMissingFinalNewline) {
  EXPECT_EQ(tokens_of("a  b\t c \r\nd e   \r\n\r\nf"), (Tokens{"a", "b", "c", "<eos>", "d", "e", "<eos>", "<eos>", "f", "<eos>"}));
  EXPECT_EQ(tokens_of(""), Tokens{});
}

TEST(TokenFile, Utf8PassesThroughAsBytes) {
  EXPECT_EQ(tokens_of("caf\xc3\xa9 \xe2\x80\x94 na\xc3\xafve\n"),
            (Tokens{"caf\xc3\xa9", "\xe2\x80\x94", "na\xc3\xafve", "<eos>"}));
}

TEST(TokenFile, RefusesMissingEmptyBinaryAndAbsurdFiles) {
  TempDir dir("tokens");
  EXPECT_CONTAINS(error_of([&] { read_token_text(dir.file("nope.tokens")); }), "nope.tokens: file not found");
  write_file(dir.file("empty.tokens"), "");
  EXPECT_CONTAINS(error_of([&] { read_token_text(dir.file("empty.tokens")); }), "empty");
  write_file(dir.file("blank.tokens"), "\n \r\n\n");
  EXPECT_CONTAINS(error_of([&] { read_token_text(dir.file("blank.tokens")); }), "no words");
  write_file(dir.file("binary.tokens"), std::string("ab\ncd\0ef", 8));
  const std::string binary = error_of([&] { read_token_text(dir.file("binary.tokens")); });
  EXPECT_CONTAINS(binary, "NUL byte at offset 5 (line 2)");
  write_file(dir.file("long.tokens"), "ok\n" + std::string(kMaxTokenBytes + 1, 'x') + "\n");
  EXPECT_CONTAINS(error_of([&] { read_token_text(dir.file("long.tokens")); }), "line 2 has a token of 4097 bytes");
  EXPECT_CONTAINS(error_of([&] { read_token_text(dir.str()); }), "is a directory");
}

TEST(Vocabulary, CutOffAndDeterministicOrder) {
  const auto counts = count_tokens("b a c a\nb a d\n<unk> z\n");
  // a:3 b:2 then c, d, z once each; eos 3 times.
  const Vocabulary all = Vocabulary::from_counts(counts, 1);
  ASSERT_EQ(all.size(), 7);
  EXPECT_EQ(all.word(0), "<unk>");
  EXPECT_EQ(all.word(1), "<eos>");
  EXPECT_EQ(all.word(2), "a");
  EXPECT_EQ(all.word(3), "b");
  EXPECT_EQ(all.word(4), "c");  // ties in lexicographic order
  EXPECT_EQ(all.word(5), "d");
  EXPECT_EQ(all.word(6), "z");
  EXPECT_EQ(all.count(1), 3);
  EXPECT_EQ(all.count(0), 1);  // the literal <unk>
  const Vocabulary cut = Vocabulary::from_counts(counts, 2);
  ASSERT_EQ(cut.size(), 4);
  EXPECT_EQ(cut.count(0), 4);  // <unk> + c, d, z
  EXPECT_EQ(cut.id("c"), Vocabulary::kUnknownId);
  EXPECT_EQ(cut.id("never-seen"), Vocabulary::kUnknownId);
  EXPECT_EQ(cut.id("b"), 3);
  const at::Tensor ids = encode_tokens("a c b\nz", cut);
  EXPECT_TRUE(ids.equal(at::tensor({2, 0, 3, 1, 0, 1}, at::kInt)));
  EXPECT_CONTAINS(error_of([&] { Vocabulary::from_counts(counts, 0); }), "min_count = 0");
}

TEST(Vocabulary, SavesAndLoadsExactlyAndRefusesDamage) {
  TempDir dir("vocab");
  const Vocabulary v = Vocabulary::from_counts(count_tokens("x y y caf\xc3\xa9\n"), 1);
  v.save(dir.file("vocab.txt"));
  EXPECT_EQ(Vocabulary::load(dir.file("vocab.txt")), v);
  std::string text = v.to_text();
  EXPECT_CONTAINS(error_of([&] { Vocabulary::from_text("hello\n", "v.txt"); }), "v.txt:1: missing");
  EXPECT_CONTAINS(error_of([&] { Vocabulary::from_text(text + "extra 1\n", "v.txt"); }), "declares 5 words, the file has 6");
  EXPECT_CONTAINS(error_of([&] { Vocabulary::from_text(text.substr(0, text.size() - 2) + "x\n", "v.txt"); }),
                  "count is not");
}

TEST(TokenCorpus, FindsSplitsAndNamesExpectedPaths) {
  TempDir dir("corpus");
  const std::string missing = error_of([&] { load_token_corpus("wikitext103", dir.str(), 1); });
  EXPECT_CONTAINS(missing, dir.file("wiki.train.tokens"));
  EXPECT_CONTAINS(missing, dir.file("wikitext-103/wiki.train.tokens"));
  EXPECT_CONTAINS(missing, "wikitext-103-v1.zip");
  EXPECT_CONTAINS(error_of([&] { load_token_corpus("wordnet-lm", dir.str(), 1); }), "make_wordnet_corpus.py");
  EXPECT_CONTAINS(error_of([&] { load_token_corpus("wikitext-103", dir.str(), 1); }), "did you mean 'wikitext103'");
  write_file(dir.file("wikitext-103/wiki.train.tokens"), "a b a\n");
  write_file(dir.file("wikitext-103/wiki.valid.tokens"), "a q\n");
  const TokenCorpus c = load_token_corpus("wikitext103", dir.str(), 1);
  EXPECT_EQ(c.vocabulary.size(), 4);
  EXPECT_TRUE(c.train.equal(at::tensor({2, 3, 2, 1}, at::kInt)));
  EXPECT_TRUE(c.valid.equal(at::tensor({2, 0, 1}, at::kInt)));  // q is not in the training split
}

TEST(LmBatches, BatchifyWindowsAndNextTokenTargets) {
  // 0..22: 3 streams of 7 (21, 22 dropped): [0..6], [7..13], [14..20]; windows of 2 over 6 positions.
  const at::Tensor stream = at::arange(23, at::kInt);
  LmBatches b(stream, 3, 2, /*shuffle=*/false, /*keep_last_partial=*/false, 1, "s");
  EXPECT_EQ(b.batches_per_epoch(), 3);
  EXPECT_EQ(b.tokens_per_epoch(), 18);
  const LmBatch w1 = b.get(0, 1);
  EXPECT_TRUE(w1.inputs.equal(at::tensor({2, 3, 9, 10, 16, 17}, at::kLong).view({3, 2})));
  EXPECT_TRUE(w1.targets.equal(at::tensor({3, 4, 10, 11, 17, 18}, at::kLong).view({3, 2})));
  // Windows of 4: one full window, and a last one of 2 kept for evaluation only.
  EXPECT_EQ(LmBatches(stream, 3, 4, false, false, 1, "s").batches_per_epoch(), 1);
  LmBatches eval(stream, 3, 4, false, true, 1, "s");
  ASSERT_EQ(eval.batches_per_epoch(), 2);
  EXPECT_TRUE(eval.get(0, 1).targets.equal(at::tensor({5, 6, 12, 13, 19, 20}, at::kLong).view({3, 2})));
}

TEST(LmBatches, ShuffledOrderIsSeededAndSeekResumes) {
  const at::Tensor stream = at::arange(1000, at::kInt);
  LmBatches a(stream, 4, 8, true, false, 7, "s"), b(stream, 4, 8, true, false, 7, "s");
  const auto order = a.epoch_order(0);
  EXPECT_NE(order, a.epoch_order(1));
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], static_cast<int64_t>(i));
  for (int i = 0; i < 40; ++i) a.next();  // into the second epoch (30 windows each)
  b.seek(a.next_epoch(), a.next_batch_in_epoch());
  EXPECT_TRUE(a.next().inputs.equal(b.next().inputs));
}

TEST(LmBatches, TooShortStreamNamesTheKeys) {
  const std::string e = error_of([] { LmBatches(at::arange(20, at::kInt), 4, 8, true, false, 1, "the train split"); });
  EXPECT_CONTAINS(e, "the train split has 20 tokens");
  EXPECT_CONTAINS(e, "lower train.batch_size or data.sequence_length");
}

}  // namespace
}  // namespace fractrain
