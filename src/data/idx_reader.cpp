#include "fractrain/data/idx_reader.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "fractrain/util/error.h"

namespace fractrain {

namespace {

// IDX dimensions larger than this are certainly a corrupt header, not a real image.
constexpr uint32_t kMaxIdxSide = 1u << 16;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// "1000 bytes" or "1000 bytes (decompressed)", so a gzip file's size is not confused with its on-disk size.
std::string content_size(const FileBytes& file) {
  return std::to_string(file.bytes.size()) + " bytes" + (file.gzipped ? " once decompressed" : "");
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// Explains the magic we found, since the usual mistakes are swapping the image and label files or pointing at
// something that is not IDX at all (an HTML error page saved by a failed download, a tar archive).
std::string magic_hint(uint32_t found) {
  if (found == kIdxImagesMagic) return "this is an IDX image file; check that the image and label paths are not swapped";
  if (found == kIdxLabelsMagic) return "this is an IDX label file; check that the image and label paths are not swapped";
  if ((found >> 24) == '<') return "this looks like an HTML page (a failed download?); re-download the file";
  return "this is not an IDX file of unsigned bytes; re-download it";
}

struct IdxPayload {
  FileBytes file;
  std::vector<uint32_t> dims;
  size_t header_bytes = 0;
};

// Reads and checks the header and the exact payload size for an IDX file with the given magic.
IdxPayload read_idx(const std::string& path, uint32_t magic, const char* what) {
  IdxPayload idx;
  idx.file = read_file_bytes(path);
  const size_t num_dims = magic & 0xffu;
  idx.header_bytes = 4 * (1 + num_dims);
  const auto& bytes = idx.file.bytes;
  // The magic first: a short file of the wrong kind (labels given as images) is better explained by it.
  if (bytes.size() >= 4) {
    const uint32_t found = read_be32(bytes.data());
    if (found != magic) {
      throw Error(path + ": bad magic number " + std::to_string(found) + " (" + hex32(found) + "), expected " +
                  std::to_string(magic) + " (" + hex32(magic) + ", IDX " + what + "); " + magic_hint(found));
    }
  }
  if (bytes.size() < idx.header_bytes) {
    throw Error(path + ": too short for an IDX " + what + " header (" + std::to_string(idx.header_bytes) +
                " bytes): the file has " + content_size(idx.file) + "; re-download it");
  }
  uint64_t payload = 1;
  for (size_t d = 0; d < num_dims; ++d) {
    const uint32_t dim = read_be32(bytes.data() + 4 * (1 + d));
    if (dim == 0 || (d > 0 && dim > kMaxIdxSide)) {
      throw Error(path + ": header has dimension " + std::to_string(d) + " = " + std::to_string(dim) +
                  ", which no real dataset has; the file is corrupt, re-download it");
    }
    idx.dims.push_back(dim);
    payload *= dim;  // cannot overflow: N < 2^32 and each side <= 2^16
  }
  const uint64_t expected = idx.header_bytes + payload;
  std::string shape = std::to_string(idx.dims[0]) + " " + what;
  if (num_dims == 3) shape += " of " + std::to_string(idx.dims[1]) + "x" + std::to_string(idx.dims[2]);
  if (bytes.size() < expected) {
    throw Error(path + ": truncated: header says " + shape + " (" + std::to_string(expected) +
                " bytes) but the file has " + content_size(idx.file) + "; re-download it");
  }
  if (bytes.size() > expected) {
    throw Error(path + ": " + std::to_string(bytes.size() - expected) + " unexpected bytes after the last of " +
                shape + " (header says " + std::to_string(expected) + " bytes, the file has " +
                content_size(idx.file) + "); the file is corrupt or not a plain IDX file, re-download it");
  }
  return idx;
}

}  // namespace

FileBytes read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path + ": file not found");
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, expected a file");
  errno = 0;
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (!file) {
    throw Error(path + ": cannot open: " + (errno ? std::strerror(errno) : "out of memory") +
                "; check the file permissions");
  }
  // Buffers sized to the file, up to 1 MiB (zlib's) and 4 MiB (our read chunks, doubling): a real dataset
  // reads in large chunks, a small file (a test's, a fuzzer's) does not allocate and clear megabytes.
  const auto disk_size = std::filesystem::file_size(path, ec);
  const uintmax_t size_hint = ec ? uintmax_t{1} << 22 : disk_size;
  gzbuffer(file.get(), static_cast<unsigned>(std::clamp<uintmax_t>(size_hint, 8192, 1u << 20)));

  FileBytes out;
  if (!ec) out.bytes.reserve(static_cast<size_t>(disk_size));  // a lower bound when gzipped
  constexpr unsigned kMaxChunk = 1u << 22;
  auto chunk = static_cast<unsigned>(std::clamp<uintmax_t>(size_hint, 4096, kMaxChunk));
  while (true) {
    const size_t old_size = out.bytes.size();
    out.bytes.resize(old_size + chunk);
    const int got = gzread(file.get(), out.bytes.data() + old_size, chunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      throw Error(path + ": cannot read: " + (code == Z_ERRNO ? std::strerror(errno) : message) +
                  " (corrupt gzip data?); re-download the file");
    }
    out.bytes.resize(old_size + static_cast<size_t>(got));
    if (got == 0) break;
    chunk = std::min(2 * chunk, kMaxChunk);
  }
  // A gzip stream cut short reads as a clean end of file with a Z_BUF_ERROR flag; report it as such rather
  // than as a payload size mismatch, which would point at the wrong cause.
  int code = 0;
  const char* message = gzerror(file.get(), &code);
  if (code != Z_OK) {
    throw Error(path + ": cannot read: " + message + " (truncated or corrupt gzip file); re-download the file");
  }
  out.gzipped = gzdirect(file.get()) == 0;
  out.bytes.shrink_to_fit();
  return out;
}

at::Tensor read_idx_images(const std::string& path) {
  const IdxPayload idx = read_idx(path, kIdxImagesMagic, "images");
  const int64_t n = idx.dims[0], rows = idx.dims[1], cols = idx.dims[2];
  at::Tensor images = at::empty({n, 1, rows, cols}, at::kByte);
  std::memcpy(images.data_ptr<uint8_t>(), idx.file.bytes.data() + idx.header_bytes,
              static_cast<size_t>(n * rows * cols));
  return images;
}

at::Tensor read_idx_labels(const std::string& path) {
  const IdxPayload idx = read_idx(path, kIdxLabelsMagic, "labels");
  const int64_t n = idx.dims[0];
  at::Tensor labels = at::empty({n}, at::kLong);
  int64_t* out = labels.data_ptr<int64_t>();
  const uint8_t* in = idx.file.bytes.data() + idx.header_bytes;
  for (int64_t i = 0; i < n; ++i) out[i] = in[i];
  return labels;
}

}  // namespace fractrain
