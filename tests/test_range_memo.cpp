// Ranges remembered by a tensor's producer (quant/range_memo.h): recalled for the same values only, and used by
// tensor_range.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/range_memo.h"

namespace fractrain {
namespace {

// A range no scan would find, so that a recall is told apart from a scan.
constexpr QuantRange kMarked{-7.0f, 9.0f};

bool recalls_marked(const at::Tensor& t) {
  const std::optional<QuantRange> r = range_memo::recall(t);
  return r && r->lo == kMarked.lo && r->hi == kMarked.hi;
}

TEST(RangeMemo, RecalledForTheSameValuesThroughViewsAndDetach) {
  const at::Tensor t = torch::rand({4, 3, 5, 5});
  range_memo::remember(t, kMarked);
  EXPECT_TRUE(recalls_marked(t));
  EXPECT_TRUE(recalls_marked(t.detach()));
  EXPECT_TRUE(recalls_marked(t.view_as(t)));
  EXPECT_TRUE(recalls_marked(t.contiguous()));
  const QuantRange used = tensor_range(t);  // the quantizer's range comes from the memo
  EXPECT_EQ(used.lo, kMarked.lo);
  EXPECT_EQ(used.hi, kMarked.hi);
}

TEST(RangeMemo, NotRecalledForOtherValues) {
  const at::Tensor t = torch::rand({4, 3, 5, 5});
  range_memo::remember(t, kMarked);
  EXPECT_FALSE(recalls_marked(t.slice(0, 1)));  // other elements (offset)
  EXPECT_FALSE(recalls_marked(t.view({12, 25})));  // other sizes
  EXPECT_FALSE(recalls_marked(t.transpose(2, 3)));  // other strides
  EXPECT_FALSE(recalls_marked(t.clone()));           // other storage
  EXPECT_FALSE(recalls_marked(torch::rand({4, 3, 5, 5})));

  // An in-place op, on the tensor or on a view of it, bumps the shared version counter.
  t.add_(1.0);
  EXPECT_FALSE(recalls_marked(t));
  range_memo::remember(t, kMarked);
  t.view({-1}).narrow(0, 0, 1).fill_(100.0f);
  EXPECT_FALSE(recalls_marked(t));
  const QuantRange scanned = tensor_range(t);
  EXPECT_EQ(scanned.hi, 100.0f);

  // forget(), and the quantizer rewriting a tensor through its data pointer.
  range_memo::remember(t, kMarked);
  range_memo::forget(t.detach());
  EXPECT_FALSE(recalls_marked(t));
  at::Tensor g = torch::randn({64});
  range_memo::remember(g, kMarked);
  fake_quantize_out(g, 4, tensor_range(g), QuantizeOptions{}, g);
  EXPECT_FALSE(recalls_marked(g));
}

TEST(RangeMemo, ADeadTensorsEntryNeverMatchesANewOne) {
  const void* address = nullptr;
  {
    const at::Tensor t = torch::rand({256, 256});
    address = t.data_ptr();
    range_memo::remember(t, kMarked);
  }
  // The allocator may hand the same memory to the next tensor of that size; the entry names the dead storage.
  for (int i = 0; i < 4; ++i) {
    const at::Tensor u = torch::rand({256, 256});
    EXPECT_FALSE(recalls_marked(u)) << (u.data_ptr() == address ? "same address" : "other address");
  }
}

TEST(RangeMemo, KeepsTheLatestEntries) {
  std::vector<at::Tensor> tensors;
  for (int i = 0; i < 20; ++i) {
    tensors.push_back(torch::rand({8}));
    range_memo::remember(tensors.back(), kMarked);
  }
  EXPECT_TRUE(recalls_marked(tensors.back()));
  EXPECT_FALSE(recalls_marked(tensors.front()));  // pushed out: scanned again, never wrong
}

}  // namespace
}  // namespace fractrain
