#include "fractrain/util/tfrecord.h"

#include <algorithm>

#include "fractrain/util/crc32c.h"
#include "fractrain/util/error.h"
#include "fractrain/util/little_endian.h"

namespace fractrain {

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  append_little_endian(out, data.size(), 8);
  append_little_endian(out, mask_crc32c(crc32c(out.data(), 8)), 4);
  out.append(data);
  append_little_endian(out, mask_crc32c(crc32c(data)), 4);
  return out;
}

TFRecordReader::TFRecordReader(std::string path) : path_(std::move(path)), in_(path_, std::ios::binary) {
  if (!in_) throw Error("cannot read " + path_ + ": check that the file exists and is readable");
}

void TFRecordReader::damaged(const std::string& what) const {
  throw Error(path_ + ": TFRecord at byte " + std::to_string(offset_) + " " + what);
}

bool TFRecordReader::next(std::string& data) {
  char header[12];
  in_.read(header, sizeof header);
  if (in_.gcount() == 0 && in_.eof()) return false;
  if (in_.gcount() != sizeof header) damaged("is cut short in its length header (a write was interrupted?)");
  const uint64_t length = read_little_endian(header, 8);
  if (mask_crc32c(crc32c(header, 8)) != static_cast<uint32_t>(read_little_endian(header + 8, 4)))
    damaged("has a damaged length (checksum mismatch)");
  // The length is checked, so a huge value is a real record size and not a flipped bit; still read it in
  // pieces so a file cut short fails on its missing bytes, not on an allocation.
  data.clear();
  char buffer[1 << 16];
  for (uint64_t left = length; left > 0;) {
    const auto chunk = static_cast<std::streamsize>(std::min<uint64_t>(left, sizeof buffer));
    in_.read(buffer, chunk);
    if (in_.gcount() != chunk) damaged("is cut short in its data (a write was interrupted?)");
    data.append(buffer, static_cast<size_t>(chunk));
    left -= static_cast<uint64_t>(chunk);
  }
  char footer[4];
  in_.read(footer, sizeof footer);
  if (in_.gcount() != sizeof footer) damaged("is cut short in its data checksum (a write was interrupted?)");
  if (mask_crc32c(crc32c(data)) != static_cast<uint32_t>(read_little_endian(footer, 4)))
    damaged("has damaged data (checksum mismatch)");
  offset_ += 16 + length;
  return true;
}

}  // namespace fractrain
