#include "fractrain/util/crc32c.h"

#include <array>

namespace fractrain {
namespace {

// table[b]: the CRC register after shifting byte b through the reflected polynomial, one byte per lookup.
std::array<uint32_t, 256> make_table() {
  constexpr uint32_t kPolynomial = 0x82F63B78u;
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b;
    for (int bit = 0; bit < 8; ++bit) r = (r & 1u) ? (r >> 1) ^ kPolynomial : r >> 1;
    table[b] = r;
  }
  return table;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t r = ~crc;  // undoes the final XOR of a previous result (and sets the initial 0xFFFFFFFF for crc = 0)
  for (size_t i = 0; i < size; ++i) r = table[(r ^ p[i]) & 0xFFu] ^ (r >> 8);
  return ~r;
}

}  // namespace fractrain
