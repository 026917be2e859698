#pragma once
// Turns dataset samples into a normalised float batch, with the standard CIFAR augmentation (random crop
// from a zero-padded image, random horizontal flip). Every random choice is a pure function of
// (seed, epoch, sample index), so a batch is the same whatever the thread count and after a resume.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "fractrain/data/image_dataset.h"

namespace fractrain {

struct AugmentConfig {
  int crop_padding = 0;          // pad each side by this many zero pixels, then crop back to H x W at random
  bool horizontal_flip = false;  // mirror left-right with probability 0.5
};

// The random choices for one sample in one epoch. The output pixel (y, x) reads the source pixel
// (y + shift_y, (flip ? W-1-x : x) + shift_x), or the zero pixel when that is outside the image; shifts are
// in [-crop_padding, crop_padding]. Both implementations below use this, so they agree bit for bit.
struct AugmentDraw {
  int64_t shift_y = 0;
  int64_t shift_x = 0;
  bool flip = false;
};
AugmentDraw draw_augment(const AugmentConfig& aug, uint64_t seed, uint64_t epoch, int64_t sample_index);

// float32 [B, C, H, W] with (pixel / 255 - mean[c]) / stddev[c] for the samples at `indices` (in that order),
// augmented when `augment` is true. One fused parallel pass that writes straight into the output.
// Throws fractrain::Error for a negative crop_padding, an index outside the dataset, or mean/stddev that do not
// match the channel count.
at::Tensor assemble_batch(const ImageDataset& data, const std::vector<int64_t>& indices, const AugmentConfig& aug,
                          bool augment, uint64_t seed, uint64_t epoch);

// The same result built the obvious way, with per-sample tensor ops (pad, slice, flip, normalise); slow, for
// tests only.
at::Tensor assemble_batch_reference(const ImageDataset& data, const std::vector<int64_t>& indices,
                                    const AugmentConfig& aug, bool augment, uint64_t seed, uint64_t epoch);

}  // namespace fractrain
