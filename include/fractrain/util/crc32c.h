#pragma once
// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF), the checksum
// of TFRecord files (TensorBoard event files), and the mask TFRecord applies to it.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fractrain {

// The CRC-32C of `size` bytes; pass a previous result as `crc` to continue it over more bytes.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view bytes) { return crc32c(bytes.data(), bytes.size()); }

// TFRecord stores masked CRCs: a CRC of data that itself holds CRCs would otherwise be weak.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace fractrain
