// The batch loader: shuffles are seeded permutations, next() walks exactly the batches get() describes,
// seek() resumes exactly, and the result does not depend on the thread count; its prefetch thread runs ATen's
// parallel loops alone (util/helper_thread_openmp.h). Also take_subset.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "fractrain/data/batch_loader.h"
#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"
#include "fractrain/util/helper_thread_openmp.h"
#include "test_support.h"

namespace fractrain {
namespace {

using namespace test_support;

// n images of 3x5x4 whose first pixel encodes the sample index, so batches can be traced back to samples.
std::shared_ptr<const ImageDataset> indexed_dataset(int64_t n) {
  auto data = std::make_shared<ImageDataset>();
  data->name = "indexed";
  data->images = at::empty({n, 3, 5, 4}, at::kByte);
  uint8_t* p = data->images.data_ptr<uint8_t>();
  const PhiloxStream rng{42, 0};
  for (int64_t i = 0; i < data->images.numel(); ++i) p[i] = static_cast<uint8_t>(rng.word(i));
  data->labels = at::arange(n, at::kLong);
  data->num_classes = n;
  data->mean = {0.5f, 0.4f, 0.3f};
  data->stddev = {0.25f, 0.2f, 0.3f};
  return data;
}

std::vector<int64_t> labels_of(const Batch& b) {
  const at::Tensor l = b.labels.contiguous();
  return std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

void expect_same_batch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.batch_in_epoch, b.batch_in_epoch);
  EXPECT_EQ(labels_of(a), labels_of(b));
  EXPECT_TRUE(at::equal(a.images, b.images)) << "epoch " << a.epoch << " batch " << a.batch_in_epoch;
}

const AugmentConfig kCifarAug{2, true};

TEST(BatchLoader, BatchesPerEpoch) {
  const auto data = indexed_dataset(103);
  EXPECT_EQ(BatchLoader(data, 10, true, false, {}, false, 1).batches_per_epoch(), 11);
  EXPECT_EQ(BatchLoader(data, 10, true, true, {}, false, 1).batches_per_epoch(), 10);
  EXPECT_EQ(BatchLoader(data, 103, true, true, {}, false, 1).batches_per_epoch(), 1);
  EXPECT_EQ(BatchLoader(data, 500, true, false, {}, false, 1).batches_per_epoch(), 1);
}

TEST(BatchLoader, EpochOrderIsASeededPermutation) {
  const auto data = indexed_dataset(1000);
  const BatchLoader a(data, 10, true, false, {}, false, 7), b(data, 10, true, false, {}, false, 7);
  const BatchLoader other_seed(data, 10, true, false, {}, false, 8);
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    const std::vector<int64_t> order = a.epoch_order(epoch);
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity) << "not a permutation in epoch " << epoch;
    EXPECT_NE(order, identity);
    EXPECT_EQ(order, b.epoch_order(epoch));
    EXPECT_NE(order, a.epoch_order(epoch + 1));
    EXPECT_NE(order, other_seed.epoch_order(epoch));
  }
  // Every sample should land in every slot equally often over many epochs: check slot 0 is not sticky.
  std::vector<int64_t> first_counts(10, 0);
  const auto small = indexed_dataset(10);
  const BatchLoader s(small, 2, true, false, {}, false, 3);
  for (int64_t epoch = 0; epoch < 5000; ++epoch) ++first_counts[s.epoch_order(epoch)[0]];
  for (const int64_t c : first_counts) EXPECT_NEAR(c, 500, 5 * 21.2);

  EXPECT_EQ(BatchLoader(data, 10, false, false, {}, false, 7).epoch_order(3), identity);
}

TEST(BatchLoader, NextWalksEpochsLikeGet) {
  const auto data = indexed_dataset(23);
  BatchLoader loader(data, 5, true, false, kCifarAug, true, 11);
  ASSERT_EQ(loader.batches_per_epoch(), 5);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    const std::vector<int64_t> order = loader.epoch_order(epoch);
    for (int64_t b = 0; b < 5; ++b) {
      EXPECT_EQ(loader.next_epoch(), epoch);
      EXPECT_EQ(loader.next_batch_in_epoch(), b);
      const Batch batch = loader.next();
      expect_same_batch(batch, loader.get(epoch, b));
      ASSERT_EQ(batch.images.sizes(), (std::vector<int64_t>{b < 4 ? 5 : 3, 3, 5, 4}));
      const std::vector<int64_t> labels = labels_of(batch);
      EXPECT_TRUE(std::equal(labels.begin(), labels.end(), order.begin() + 5 * b));
      // The images are those samples, augmented with this epoch's draws.
      std::vector<int64_t> indices(order.begin() + 5 * b, order.begin() + 5 * b + labels.size());
      EXPECT_TRUE(at::equal(batch.images, assemble_batch_reference(*data, indices, kCifarAug, true, 11, epoch)));
      seen.insert(seen.end(), labels.begin(), labels.end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(23);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "epoch " << epoch << " does not visit every sample once";
  }
}

TEST(BatchLoader, DropLastSkipsThePartialBatch) {
  BatchLoader loader(indexed_dataset(23), 5, false, true, {}, false, 1);
  for (int64_t i = 0; i < 9; ++i) {
    const Batch b = loader.next();
    EXPECT_EQ(b.epoch, i / 4);
    EXPECT_EQ(b.batch_in_epoch, i % 4);
    EXPECT_EQ(b.labels.size(0), 5);
    EXPECT_EQ(b.labels[0].item<int64_t>(), 5 * (i % 4));
  }
}

TEST(BatchLoader, SeekResumesExactly) {
  const auto data = indexed_dataset(37);
  BatchLoader full(data, 8, true, false, kCifarAug, true, 5);
  std::vector<Batch> walk;
  for (int i = 0; i < 14; ++i) walk.push_back(full.next());  // 5 batches per epoch: epochs 0, 1, 2

  // A fresh loader resumed mid-run, as after loading a checkpoint.
  BatchLoader resumed(data, 8, true, false, kCifarAug, true, 5);
  resumed.seek(1, 3);
  for (int i = 8; i < 14; ++i) expect_same_batch(resumed.next(), walk[i]);

  // Seeking a loader that has a prefetch in flight discards the stale batch.
  BatchLoader jumpy(data, 8, true, false, kCifarAug, true, 5);
  jumpy.next();
  jumpy.next();
  jumpy.seek(0, 0);
  for (int i = 0; i < 7; ++i) expect_same_batch(jumpy.next(), walk[i]);
  jumpy.seek(2, 2);
  expect_same_batch(jumpy.next(), walk[12]);
  expect_same_batch(jumpy.next(), walk[13]);
}

TEST(BatchLoader, IdenticalForOneAndTwoThreads) {
  const auto data = indexed_dataset(200);
  const int saved = at::get_num_threads();
  std::vector<Batch> runs[2];
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    BatchLoader loader(data, 64, true, false, kCifarAug, true, 99);
    for (int i = 0; i < 9; ++i) runs[threads - 1].push_back(loader.next());
  }
  at::set_num_threads(saved);
  for (int i = 0; i < 9; ++i) expect_same_batch(runs[0][i], runs[1][i]);
}

TEST(BatchLoader, BadArgumentsThrowClearErrors) {
  const auto data = indexed_dataset(10);
  EXPECT_NE(error_of([&] { BatchLoader(data, 0, true, false, {}, false, 1); }).find("batch size 0"),
            std::string::npos);
  auto empty = std::make_shared<ImageDataset>();
  empty->name = "nothing";
  empty->images = at::empty({0, 1, 2, 2}, at::kByte);
  empty->labels = at::empty({0}, at::kLong);
  EXPECT_NE(error_of([&] { BatchLoader(empty, 4, true, false, {}, false, 1); }).find("'nothing' is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { BatchLoader(data, 11, true, true, {}, false, 1); }).find("fewer than one batch"),
            std::string::npos);
  BatchLoader loader(data, 4, true, false, {}, false, 1);
  EXPECT_NE(error_of([&] { loader.seek(0, 3); }).find("batches 0..2"), std::string::npos);
  EXPECT_NE(error_of([&] { loader.get(-1, 0); }).find("epoch -1"), std::string::npos);
}

TEST(BatchLoader, DestructorJoinsWithPrefetchInFlight) {
  for (int i = 0; i < 20; ++i) {
    BatchLoader loader(indexed_dataset(500), 250, true, false, kCifarAug, true, i);
    loader.next();  // leaves the next batch being prepared
  }
}

// Restores LibTorch's default thread count when a test ends.
struct ThreadCountRestorer {
  int saved = at::get_num_threads();
  ~ThreadCountRestorer() { at::set_num_threads(saved); }
};

int64_t threads_of_this_process() {
  int64_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) n += entry.is_directory() ? 1 : 0;
  return n;
}

// The thread count once it holds still (the same in three reads 20 ms apart, for at most about 2 s): threads that
// libgomp releases from a shrinking team, or that were just joined, leave the list a moment later.
int64_t settled_threads_of_this_process() {
  int64_t last = threads_of_this_process();
  for (int same = 0, tries = 0; same < 2 && tries < 100; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const int64_t now = threads_of_this_process();
    same = now == last ? same + 1 : 0;
    last = now;
  }
  return last;
}

TEST(HelperThreadOpenMP, ParallelLoopsRunOnTheCallingThreadOnly) {
  ThreadCountRestorer restore;
  at::set_num_threads(2);
  int helper_count = 0, later_count = 0;
  std::atomic<int> helper_chunks{0}, main_chunks{0};
  std::thread([&] {
    run_parallel_loops_on_this_thread_only();
    helper_count = at::get_num_threads();
    at::parallel_for(0, 1000, 1, [&](int64_t, int64_t) { ++helper_chunks; });
  }).join();
  std::thread([&] { later_count = at::get_num_threads(); }).join();
  at::parallel_for(0, 1000, 1, [&](int64_t, int64_t) { ++main_chunks; });
  EXPECT_EQ(helper_count, 1);
  EXPECT_EQ(helper_chunks.load(), 1) << "the helper's loop ran in parallel";
  // Neither the calling thread's count nor LibTorch's default for new threads changed.
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(later_count, 2);
  EXPECT_EQ(main_chunks.load(), 2);
}

// The prefetch thread assembles a batch whose normalisation is a parallel loop (300 samples x 3 planes of 20
// pixels, grain 819) while the caller runs two threads. On its own, that loop would give the prefetch thread an
// OpenMP team, and libgomp a third thread to manage on top of the caller's team.
TEST(BatchLoader, PrefetchRunsItsParallelLoopsOnItsOwnThreadAlone) {
  ThreadCountRestorer restore;
  at::set_num_threads(2);
  const auto data = indexed_dataset(700);
  at::parallel_for(0, 1000, 1, [](int64_t, int64_t) {});  // the caller's team has its two threads before counting
  const int64_t before = settled_threads_of_this_process();
  BatchLoader loader(data, 300, true, false, kCifarAug, true, 5);
  loader.next();  // assembled on this thread; the second batch is then prefetched
  loader.next();  // the prefetched batch (the third is being prefetched now)
  EXPECT_EQ(settled_threads_of_this_process(), before + 1) << "the prefetch thread started threads of its own";
}

TEST(ImageDataset, TakeSubsetIsSeededSortedAndExact) {
  const auto data = indexed_dataset(100);
  const ImageDataset a = take_subset(*data, 30, 4), b = take_subset(*data, 30, 4), c = take_subset(*data, 30, 5);
  ASSERT_EQ(a.size(), 30);
  const at::Tensor la = a.labels, lb = b.labels, lc = c.labels;
  EXPECT_TRUE(at::equal(la, lb));
  EXPECT_FALSE(at::equal(la, lc));
  EXPECT_TRUE(at::equal(std::get<0>(la.sort()), la)) << "subset must keep the original order";
  EXPECT_EQ(std::get<0>(at::_unique(la)).numel(), 30) << "no sample twice";
  EXPECT_TRUE(at::equal(a.images, data->images.index_select(0, la)));  // labels are the original indices
  EXPECT_EQ(a.mean, data->mean);
  EXPECT_EQ(a.name, data->name);
  EXPECT_EQ(take_subset(*data, 0, 1).size(), 100);
  EXPECT_EQ(take_subset(*data, 100, 1).size(), 100);
  EXPECT_EQ(take_subset(*data, 1000, 1).size(), 100);

  // Each sample is picked with probability 30/100.
  std::vector<int64_t> picked(100, 0);
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const at::Tensor l = take_subset(*data, 30, seed).labels;
    for (int64_t i = 0; i < 30; ++i) ++picked[l[i].item<int64_t>()];
  }
  for (const int64_t count : picked) EXPECT_NEAR(count, 600, 5 * 20.5);
}

}  // namespace
}  // namespace fractrain
