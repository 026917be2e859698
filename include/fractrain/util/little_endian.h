#pragma once
// Fixed-width unsigned integers in little-endian byte order, whatever the host's, for the binary files fractrain
// writes and reads (checkpoints, TensorBoard records): a file moves between machines unchanged.
#include <cstdint>
#include <string>

namespace fractrain {

// Appends the low `bytes` bytes of `value` to `out`, least significant first.
inline void append_little_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFu));
}

// The `bytes`-byte little-endian integer at `in`.
inline uint64_t read_little_endian(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return value;
}

}  // namespace fractrain
