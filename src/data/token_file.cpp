#include "fractrain/data/token_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::string printable_prefix(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 32 && c < 127) ? c : '?';
  return out;
}

// Line (1-based) of byte `offset`, for messages.
int64_t line_of(std::string_view text, size_t offset) {
  int64_t line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

void check_text(const std::string& path, std::string_view text) {
  if (text.empty()) throw Error(path + ": the token file is empty; re-create or re-download it");
  const void* nul = std::memchr(text.data(), '\0', text.size());
  if (nul) {
    const size_t offset = static_cast<const char*>(nul) - text.data();
    throw Error(path + ": NUL byte at offset " + std::to_string(offset) + " (line " +
                std::to_string(line_of(text, offset)) +
                "): this is not a text token file (a binary or compressed file?); point data.path at the folder "
                "holding the unzipped wiki.*.tokens files");
  }
  int64_t words = 0;
  size_t offset = 0;
  for_each_token(text, [&](std::string_view token) {
    if (token.data() != Vocabulary::kEndOfLine.data()) {
      ++words;
      offset = static_cast<size_t>(token.data() - text.data());
      if (token.size() > kMaxTokenBytes)
        throw Error(path + ": line " + std::to_string(line_of(text, offset)) + " has a token of " +
                    std::to_string(token.size()) + " bytes starting '" + printable_prefix(token) +
                    "' (the limit is " + std::to_string(kMaxTokenBytes) +
                    "): this is not a space-separated word-level token file");
    }
  });
  if (words == 0) throw Error(path + ": the token file has no words (only blank lines); re-create or re-download it");
}

}  // namespace

std::string read_token_text(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": file not found");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, expected a token file");
  const auto size = fs::file_size(path, ec);
  // /proc/self/fd paths (memfd) and pipes may report no size: read them and check the size afterwards.
  if (!ec && size > kMaxTokenFileBytes)
    throw Error(path + ": " + std::to_string(size) + " bytes is larger than any token file this reader takes (" +
                std::to_string(kMaxTokenFileBytes) + " bytes); check the path");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno) + "; check the file permissions");
  std::string text;
  if (!ec) text.reserve(static_cast<size_t>(size));
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxTokenFileBytes)
      throw Error(path + ": more than " + std::to_string(kMaxTokenFileBytes) +
                  " bytes, larger than any token file this reader takes; check the path");
  }
  if (in.bad()) throw Error(path + ": read error: " + std::strerror(errno));
  check_text(path, text);
  return text;
}

std::unordered_map<std::string, int64_t> count_tokens(std::string_view text) {
  std::unordered_map<std::string, int64_t> counts;
  std::string key;
  for_each_token(text, [&](std::string_view token) {
    key.assign(token.data(), token.size());
    ++counts[key];
  });
  return counts;
}

at::Tensor encode_tokens(std::string_view text, const Vocabulary& vocabulary) {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 5);  // WikiText: about 5.5 bytes per token
  for_each_token(text, [&](std::string_view token) { ids.push_back(vocabulary.id(token)); });
  at::Tensor out = at::empty({static_cast<int64_t>(ids.size())}, at::kInt);
  if (!ids.empty()) std::memcpy(out.data_ptr<int32_t>(), ids.data(), ids.size() * sizeof(int32_t));
  return out;
}

}  // namespace fractrain
