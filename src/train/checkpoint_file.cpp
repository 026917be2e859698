#include "fractrain/train/checkpoint_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <torch/serialize.h>

#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "fractrain/util/little_endian.h"

namespace fractrain {
namespace {

constexpr char kMagic[] = "FRACTRAIN-CHECKPOINT\n";
constexpr size_t kMagicSize = sizeof(kMagic) - 1;
constexpr size_t kCrcSize = 4;

// zlib's length argument is 32-bit; feed it in chunks so multi-GB payloads are checksummed correctly.
uint32_t crc32_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

// POSIX rather than iostreams: one allocation of the right size, and errno survives for the message
// (an ifstream "opens" a directory and then reads nothing).
std::string read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error("cannot open checkpoint '" + path + "': " + std::strerror(err) + "; check the path");
  }
  struct stat st {};
  std::string bytes;
  int err = 0;
  if (::fstat(fd, &st) != 0) err = errno;
  if (err == 0) bytes.resize(static_cast<size_t>(std::max<off_t>(st.st_size, 0)));
  size_t done = 0;
  while (err == 0 && done < bytes.size()) {
    const ssize_t n = ::read(fd, &bytes[done], bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;  // shrank while reading: parse what is there, the length checks will say truncated
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (err != 0) throw Error("cannot read checkpoint '" + path + "': " + std::strerror(err));
  bytes.resize(done);
  return bytes;
}

std::string hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Saturating, because a damaged length field can hold anything up to 2^64 - 1.
uint64_t add_lengths(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

std::string truncated(const std::string& path, uint64_t needed, size_t have) {
  return "checkpoint '" + path + "' is truncated: its header promises at least " + std::to_string(needed) +
         " bytes but the file has " + std::to_string(have) +
         "; it was probably cut short by a crash or a full disk: resume from an earlier checkpoint";
}

struct Container {
  CheckpointMeta meta;
  size_t payload_offset = 0;
  size_t payload_size = 0;
};

CheckpointMeta parse_meta(const std::string& path, const std::string& text, int version) {
  try {
    const auto j = nlohmann::json::parse(text);
    CheckpointMeta meta;
    meta.format_version = version;
    meta.model_name = j.at("model_name").get<std::string>();
    meta.step = j.at("step").get<int64_t>();
    meta.epoch = j.at("epoch").get<int64_t>();
    meta.extra = j.contains("extra") ? j.at("extra") : nlohmann::json::object();
    return meta;
  } catch (const nlohmann::json::exception& e) {
    // The checksum already matched, so this is a writer bug or a hand-edited file, not bit rot.
    throw Error("checkpoint '" + path + "' has unreadable metadata (" + e.what() +
                "); it was not written by this fractrain version's save_checkpoint");
  }
}

// Checks run in the order that gives the most useful message: is it ours, can we read this version, is it
// complete, is it intact. Only then is anything parsed.
Container parse_container(const std::string& path, const std::string& bytes) {
  const size_t size = bytes.size();
  const size_t magic_seen = std::min(size, kMagicSize);
  if (bytes.compare(0, magic_seen, kMagic, magic_seen) != 0) {
    throw Error("'" + path + "' is not a fractrain checkpoint (it does not start with \"FRACTRAIN-CHECKPOINT\")");
  }
  size_t pos = kMagicSize;
  if (size < pos + 4) throw Error(truncated(path, pos + 4, size));
  const auto version = static_cast<uint32_t>(read_little_endian(bytes.data() + pos, 4));
  pos += 4;
  if (version != kCheckpointFormatVersion) {
    // Every format version ends in a CRC over the rest, so a flipped version field reads as damage rather
    // than as a file from the future.
    const bool intact =
        size >= pos + kCrcSize &&
        crc32_of(bytes.data(), size - kCrcSize) == read_little_endian(bytes.data() + size - kCrcSize, 4);
    if (!intact) {
      throw Error("checkpoint '" + path + "' is corrupt: checksum mismatch (its header reads format version " +
                  std::to_string(version) + "); resume from an earlier checkpoint");
    }
    throw Error("checkpoint '" + path + "' was written by format version " + std::to_string(version) +
                ", this build reads " + std::to_string(kCheckpointFormatVersion) +
                "; load it with the fractrain version that wrote it");
  }
  if (size < pos + 8) throw Error(truncated(path, pos + 8, size));
  const uint64_t meta_size = read_little_endian(bytes.data() + pos, 8);
  pos += 8;
  if (meta_size > size - pos) throw Error(truncated(path, add_lengths(pos, meta_size), size));
  const size_t meta_offset = pos;
  pos += meta_size;
  if (size < pos + 8) throw Error(truncated(path, pos + 8, size));
  const uint64_t payload_size = read_little_endian(bytes.data() + pos, 8);
  pos += 8;
  if (payload_size > size - pos || size - pos - payload_size < kCrcSize) {
    throw Error(truncated(path, add_lengths(pos + kCrcSize, payload_size), size));
  }
  const size_t payload_offset = pos;
  pos += payload_size;
  if (size - pos != kCrcSize) {
    throw Error("checkpoint '" + path + "' is corrupt: " + std::to_string(size - pos - kCrcSize) +
                " unexpected bytes after the payload; resume from an earlier checkpoint");
  }
  const auto stored = static_cast<uint32_t>(read_little_endian(bytes.data() + pos, 4));
  const uint32_t computed = crc32_of(bytes.data(), pos);
  if (stored != computed) {
    throw Error("checkpoint '" + path + "' is corrupt: checksum mismatch (stored " + hex32(stored) + ", computed " +
                hex32(computed) + "); resume from an earlier checkpoint");
  }
  Container c;
  c.meta = parse_meta(path, bytes.substr(meta_offset, meta_size), static_cast<int>(version));
  c.payload_offset = payload_offset;
  c.payload_size = payload_size;
  return c;
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointMeta& meta,
                     const std::function<void(torch::serialize::OutputArchive&)>& write_payload) {
  std::string payload;
  {
    torch::serialize::OutputArchive archive;
    write_payload(archive);
    archive.save_to([&payload](const void* data, size_t n) {
      payload.append(static_cast<const char*>(data), n);
      return n;
    });
  }
  std::string meta_text;
  try {
    nlohmann::json j = {
        {"model_name", meta.model_name}, {"step", meta.step}, {"epoch", meta.epoch}, {"extra", meta.extra}};
    meta_text = j.dump(2);  // indented: `head -c 2000 file.ckpt` shows a readable summary
  } catch (const nlohmann::json::exception& e) {
    throw Error("cannot write checkpoint '" + path + "': its metadata cannot be stored as JSON (" + e.what() + ")");
  }

  std::string bytes;
  bytes.reserve(kMagicSize + 4 + 8 + meta_text.size() + 8 + payload.size() + kCrcSize);
  bytes.append(kMagic, kMagicSize);
  append_little_endian(bytes, kCheckpointFormatVersion, 4);
  append_little_endian(bytes, meta_text.size(), 8);
  bytes += meta_text;
  append_little_endian(bytes, payload.size(), 8);
  bytes += payload;
  append_little_endian(bytes, crc32_of(bytes.data(), bytes.size()), 4);
  write_file_atomically(path, bytes);
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  return parse_container(path, read_whole_file(path)).meta;
}

CheckpointMeta load_checkpoint(const std::string& path, const std::string& expected_model_name,
                               const std::function<void(torch::serialize::InputArchive&)>& read_payload,
                               const std::string& map_location) {
  const std::string bytes = read_whole_file(path);
  Container c = parse_container(path, bytes);
  if (!expected_model_name.empty() && c.meta.model_name != expected_model_name) {
    throw Error("checkpoint '" + path + "' was written for model " + c.meta.model_name + " but this run uses " +
                expected_model_name + "; set model.name = \"" + c.meta.model_name +
                "\" to resume it, or start a fresh run in another output.dir");
  }
  c10::optional<torch::Device> device;
  if (!map_location.empty()) {
    try {
      device = torch::Device(map_location);
    } catch (const c10::Error&) {
      throw Error("cannot load checkpoint '" + path + "' onto device '" + map_location +
                  "': not a device; use cpu, cuda or cuda:N");
    }
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data() + c.payload_offset, c.payload_size, device);
  } catch (const c10::Error& e) {
    throw Error("checkpoint '" + path +
                "' passed its checksum but torch cannot read its payload: " + e.what_without_backtrace());
  }
  try {
    read_payload(archive);
  } catch (const c10::Error& e) {
    // Typically a parameter name or shape this model does not have: the model changed since the save.
    throw Error("checkpoint '" + path + "' does not fit this " + c.meta.model_name +
                " model: " + e.what_without_backtrace() + "; was the model definition changed since it was saved?");
  }
  return c.meta;
}

}  // namespace fractrain
