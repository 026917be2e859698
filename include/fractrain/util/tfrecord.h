#pragma once
// TFRecord framing, the container of TensorBoard event files. Each record is
//   uint64 length (little endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
// so a reader can tell a torn or damaged record from a good one.
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace fractrain {

// One record, framed.
std::string tfrecord_frame(std::string_view data);

// Reads the records of one file in order. Damage (a checksum mismatch, a record cut short) throws
// fractrain::Error naming the file and the byte offset of the record.
class TFRecordReader {
 public:
  explicit TFRecordReader(std::string path);
  // The next record's data; false at the end of the file.
  bool next(std::string& data);
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void damaged(const std::string& what) const;

  std::string path_;
  std::ifstream in_;
  uint64_t offset_ = 0;  // where the record being read starts
};

}  // namespace fractrain
