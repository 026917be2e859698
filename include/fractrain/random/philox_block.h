#pragma once
// Counter-based random numbers (Philox4x32-10, Salmon et al., SC 2011): the generator itself, for host and device
// code alike (FRACTRAIN_HD), so that a CUDA kernel draws exactly the words the CPU kernels draw. Nothing here
// includes more than <cstdint>: CUDA sources include it without LibTorch or the standard containers.
//
// Why counter-based: a random number is a pure function of (key, counter), so stochastic rounding and data
// augmentation give the same bits whatever the thread count, the device, the order work is split in, or whether
// the run was resumed from a checkpoint. There is no generator state to save.
#include <cstdint>

#include "fractrain/util/host_device.h"

namespace fractrain {

struct Philox4x32 {
  uint32_t v[4];
};

FRACTRAIN_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// Four 32-bit random words for the 128-bit counter (c0..c3) under the 64-bit key (k0, k1).
FRACTRAIN_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kMul0, c0, hi0, lo0);
    philox_mulhilo(kMul1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// A stream of random numbers addressed by (key, stream, index): key is usually the run seed, stream names
// the consumer (a layer, a pass, an epoch), index the element or sample.
struct PhiloxStream {
  uint64_t key = 0;
  uint64_t stream = 0;

  // Four words for the block counter `block_index`.
  FRACTRAIN_HD Philox4x32 block(uint64_t block_index) const {
    return philox4x32_10(static_cast<uint32_t>(block_index), static_cast<uint32_t>(block_index >> 32),
                         static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                         static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32));
  }
  // The random word of element `index`. Elements come in tiles of 64 = 16 blocks x 4 words, laid out
  // word-major (element 16 * w + b of a tile is word w of block b), so that a vectorised kernel computes 16
  // blocks side by side and stores each word as one contiguous run. See philox_tile_uniform.
  FRACTRAIN_HD uint32_t word(uint64_t index) const {
    const uint64_t tile = index >> 6;
    const unsigned position = static_cast<unsigned>(index & 63);
    return block(tile * 16 + (position & 15)).v[position >> 4];
  }
  // Uniform in [0, 1) with 24 random bits (exactly representable in float).
  FRACTRAIN_HD float uniform(uint64_t index) const { return word_to_uniform(word(index)); }
  FRACTRAIN_HD static float word_to_uniform(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n) (n > 0); the modulo bias is below 2^-32 * n, negligible for dataset sizes.
  FRACTRAIN_HD uint64_t below(uint64_t index, uint64_t n) const {
    const Philox4x32 r = block(index);
    const uint64_t wide = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
    return wide % n;
  }
};

// Mixes several identifiers into one 64-bit stream id (splitmix64 finaliser), so that e.g. (epoch, purpose)
// pairs map to well-separated streams.
FRACTRAIN_HD uint64_t mix_stream(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace fractrain
