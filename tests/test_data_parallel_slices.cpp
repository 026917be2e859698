// What lets N data-parallel ranks reproduce one process sample for sample: a rank's slice of a batch gets the
// stochastic-rounding noise the whole batch would give those samples (noise_first_index), and a loader's shards of
// a batch are that batch (BatchShard).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "fractrain/data/batch_loader.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// Slice [first, last) of rows of x quantized on its own with the noise starting at its first element equals the
// same rows of x quantized whole, bit for bit, in the fused kernel and the reference. The slice boundaries fall
// inside a Philox tile of 64 words (rows of 37 elements), where a wrong offset would show.
TEST(DataParallelSlices, StochasticRoundingNoiseOfASliceContinuesTheWholeTensors) {
  const at::Tensor x = at::randn({10, 37}, at::TensorOptions().dtype(at::kFloat));
  QuantizeOptions whole;
  whole.rounding = Rounding::Stochastic;
  whole.noise = PhiloxStream{7, 3};
  const QuantRange range = tensor_range(x);
  const at::Tensor expected = fake_quantize(x, 4, range, whole);
  for (const auto& [first, last] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5, 10}, {3, 7}, {9, 10}}) {
    QuantizeOptions part = whole;
    part.noise_first_index = static_cast<uint64_t>(first * x.size(1));
    const at::Tensor slice = x.slice(0, first, last).contiguous();
    EXPECT_TRUE(at::equal(fake_quantize(slice, 4, range, part), expected.slice(0, first, last)))
        << "rows " << first << ".." << last;
    EXPECT_TRUE(at::equal(reference::fake_quantize(slice, 4, range, part), expected.slice(0, first, last)))
        << "reference, rows " << first << ".." << last;
    const std::vector<int> bits(static_cast<size_t>(last - first), 4);
    EXPECT_TRUE(at::equal(fake_quantize_rows(slice, bits, range, part), expected.slice(0, first, last)));
  }
}

// quantize_gradient of sample slice [k, ...) with first_sample = k and the whole gradient's range is the whole
// gradient's quantization of those samples.
TEST(DataParallelSlices, GradientQuantizationOfASampleSliceMatchesTheWholeBatch) {
  const at::Tensor g = at::randn({8, 3, 5, 5});
  GradientQuantization spec;
  spec.bits = 6;
  spec.noise = PhiloxStream{11, 2};
  const at::Tensor whole = quantize_gradient(g.clone(), spec);

  // Each half quantized on the whole tensor's range, which a RangeAgreement supplies across ranks.
  struct Fixed : RangeAgreement {
    QuantRange range;
    QuantRange agree(QuantRange, bool) override { return range; }
    bool any_rank(bool local) override { return local; }
  };
  auto agreement = std::make_shared<Fixed>();
  agreement->range = tensor_range(g);
  spec.range_agreement = agreement;
  for (int64_t first : {0, 4}) {
    spec.first_sample = first;
    const at::Tensor half = quantize_gradient(g.slice(0, first, first + 4).clone(), spec);
    EXPECT_TRUE(at::equal(half, whole.slice(0, first, first + 4))) << "samples from " << first;
  }
}

std::shared_ptr<const ImageDataset> labelled_dataset(int64_t n) {
  auto data = std::make_shared<ImageDataset>();
  data->name = "labelled";
  data->images = at::randint(0, 256, {n, 1, 6, 6}, at::kByte);
  data->labels = at::arange(n, at::kLong);
  data->num_classes = n;
  data->mean = {0.5f};
  data->stddev = {0.25f};
  return data;
}

// Shards 0..n-1 of every batch, concatenated, are the batch one loader returns: the same samples in the same order
// with the same augmentation, epoch after epoch (shuffled, augmented, drop_last).
TEST(DataParallelSlices, ShardsOfABatchAreThatBatch) {
  const auto data = labelled_dataset(50);
  AugmentConfig aug;
  aug.crop_padding = 2;
  aug.horizontal_flip = true;
  BatchLoader whole(data, 12, true, true, aug, true, 5);
  for (int64_t shards : {2, 3, 4}) {
    std::vector<std::unique_ptr<BatchLoader>> parts;
    for (int64_t i = 0; i < shards; ++i)
      parts.push_back(std::make_unique<BatchLoader>(data, 12, true, true, aug, true, 5, BatchShard{i, shards}));
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      for (int64_t b = 0; b < whole.batches_per_epoch(); ++b) {
        const Batch expected = whole.get(epoch, b);
        std::vector<at::Tensor> images, labels;
        for (const auto& p : parts) {
          const Batch got = p->get(epoch, b);
          EXPECT_EQ(got.images.size(0), 12 / shards);
          images.push_back(got.images);
          labels.push_back(got.labels);
        }
        EXPECT_TRUE(at::equal(at::cat(images), expected.images)) << shards << " shards, epoch " << epoch << " batch " << b;
        EXPECT_TRUE(at::equal(at::cat(labels), expected.labels));
      }
    }
  }
}

TEST(DataParallelSlices, ALoaderRefusesAShardThatDoesNotExist) {
  const auto data = labelled_dataset(20);
  EXPECT_THROW(BatchLoader(data, 4, false, false, AugmentConfig{}, false, 1, BatchShard{2, 2}), Error);
  EXPECT_THROW(BatchLoader(data, 4, false, false, AugmentConfig{}, false, 1, BatchShard{0, 0}), Error);
}

}  // namespace
}  // namespace fractrain
