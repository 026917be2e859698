#include "fractrain/data/batch_transform.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <string>

#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

// Tags the augmentation streams so they never coincide with another consumer of the run seed that also
// mixes small integers (a layer id and a step, say) into its stream.
constexpr uint64_t kAugmentPurpose = 0x4175676d656e7421ull;  // "Augment!"

void check_inputs(const ImageDataset& data, const std::vector<int64_t>& indices, const AugmentConfig& aug) {
  const std::string name = "dataset '" + data.name + "'";
  if (!data.images.defined() || data.images.dim() != 4 || data.images.scalar_type() != at::kByte ||
      !data.images.is_contiguous() || !data.images.device().is_cpu()) {
    throw Error(name + ": images must be a contiguous CPU uint8 tensor [N, C, H, W]");
  }
  const size_t channels = static_cast<size_t>(data.channels());
  if (data.mean.size() != channels || data.stddev.size() != channels) {
    throw Error(name + " has " + std::to_string(channels) + " channel(s) but " + std::to_string(data.mean.size()) +
                " mean and " + std::to_string(data.stddev.size()) + " stddev value(s); give one of each per channel");
  }
  for (size_t c = 0; c < channels; ++c) {
    if (!(data.stddev[c] > 0.0f)) {
      throw Error(name + ": stddev[" + std::to_string(c) + "] = " + std::to_string(data.stddev[c]) +
                  " must be positive");
    }
  }
  if (aug.crop_padding < 0) {
    throw Error("crop_padding = " + std::to_string(aug.crop_padding) + " must be >= 0 (0 disables the random crop)");
  }
  for (const int64_t index : indices) {
    if (index < 0 || index >= data.size()) {
      throw Error(name + ": sample index " + std::to_string(index) + " is outside [0, " +
                  std::to_string(data.size()) + ")");
    }
  }
}

}  // namespace

AugmentDraw draw_augment(const AugmentConfig& aug, uint64_t seed, uint64_t epoch, int64_t sample_index) {
  const PhiloxStream rng{seed, mix_stream(mix_stream(epoch, kAugmentPurpose), static_cast<uint64_t>(sample_index))};
  AugmentDraw draw;
  if (aug.crop_padding > 0) {
    const uint64_t positions = 2 * static_cast<uint64_t>(aug.crop_padding) + 1;
    draw.shift_y = static_cast<int64_t>(rng.below(0, positions)) - aug.crop_padding;
    draw.shift_x = static_cast<int64_t>(rng.below(1, positions)) - aug.crop_padding;
  }
  if (aug.horizontal_flip) draw.flip = rng.uniform(8) < 0.5f;  // index 8: the first word of block 2, unused above
  return draw;
}

at::Tensor assemble_batch(const ImageDataset& data, const std::vector<int64_t>& indices, const AugmentConfig& aug,
                          bool augment, uint64_t seed, uint64_t epoch) {
  check_inputs(data, indices, aug);
  const int64_t batch = static_cast<int64_t>(indices.size());
  const int64_t C = data.channels(), H = data.height(), W = data.width(), plane = H * W;
  at::Tensor out = at::empty({batch, C, H, W}, at::kFloat);
  if (batch == 0) return out;

  // A 256-entry table per channel replaces the per-pixel divide; the arithmetic matches the reference exactly.
  std::vector<float> table(static_cast<size_t>(C) * 256);
  for (int64_t c = 0; c < C; ++c) {
    for (int v = 0; v < 256; ++v) {
      table[c * 256 + v] = (static_cast<float>(v) / 255.0f - data.mean[c]) / data.stddev[c];
    }
  }
  std::vector<AugmentDraw> draws(static_cast<size_t>(batch));
  if (augment) {
    for (int64_t b = 0; b < batch; ++b) draws[b] = draw_augment(aug, seed, epoch, indices[b]);
  }

  const uint8_t* src = data.images.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  // One task per (sample, channel) plane keeps even a batch of one parallel for 3-channel images.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(plane, 1));
  at::parallel_for(0, batch * C, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / C, c = task % C;
      const AugmentDraw& d = draws[b];
      const uint8_t* in = src + (indices[b] * C + c) * plane;
      const float* lut = table.data() + c * 256;
      const float zero = lut[0];  // padding is a zero pixel, normalised like any other
      float* o = dst + task * plane;
      // Output columns whose source column lies inside the image (see AugmentDraw for the mapping).
      const int64_t x_lo = std::clamp<int64_t>(d.flip ? d.shift_x : -d.shift_x, 0, W);
      const int64_t x_hi = std::clamp<int64_t>(d.flip ? W + d.shift_x : W - d.shift_x, 0, W);
      for (int64_t y = 0; y < H; ++y) {
        float* row = o + y * W;
        const int64_t sy = y + d.shift_y;
        if (sy < 0 || sy >= H) {
          std::fill(row, row + W, zero);
          continue;
        }
        const uint8_t* in_row = in + sy * W;
        std::fill(row, row + x_lo, zero);
        if (d.flip) {
          const uint8_t* mirrored = in_row + (W - 1) + d.shift_x;  // source column = W-1-x + shift_x
          for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[mirrored[-x]];
        } else {
          const uint8_t* shifted = in_row + d.shift_x;
          for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[shifted[x]];
        }
        std::fill(row + std::max(x_lo, x_hi), row + W, zero);
      }
    }
  });
  return out;
}

at::Tensor assemble_batch_reference(const ImageDataset& data, const std::vector<int64_t>& indices,
                                    const AugmentConfig& aug, bool augment, uint64_t seed, uint64_t epoch) {
  check_inputs(data, indices, aug);
  const int64_t C = data.channels(), H = data.height(), W = data.width();
  const at::Tensor mean = at::tensor(at::ArrayRef<float>(data.mean)).view({C, 1, 1});
  const at::Tensor stddev = at::tensor(at::ArrayRef<float>(data.stddev)).view({C, 1, 1});
  std::vector<at::Tensor> samples;
  for (const int64_t index : indices) {
    at::Tensor image = data.images[index].to(at::kFloat);  // [C, H, W], still in 0..255
    if (augment) {
      const int64_t p = aug.crop_padding;
      const AugmentDraw d = draw_augment(aug, seed, epoch, index);
      const at::Tensor padded = at::constant_pad_nd(image, {p, p, p, p}, 0.0);
      image = padded.slice(1, p + d.shift_y, p + d.shift_y + H).slice(2, p + d.shift_x, p + d.shift_x + W);
      if (d.flip) image = image.flip({2});
    }
    samples.push_back(image.div(255.0f).sub(mean).div(stddev));
  }
  if (samples.empty()) return at::empty({0, C, H, W}, at::kFloat);
  return at::stack(samples);
}

}  // namespace fractrain
