#include "fractrain/quant/range_memo.h"

#include <c10/core/StorageImpl.h>
#include <c10/util/intrusive_ptr.h>

#include <array>
#include <mutex>
#include <vector>

namespace fractrain::range_memo {
namespace {

struct Entry {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage{c10::intrusive_ptr<c10::StorageImpl>()};
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
  at::ScalarType dtype = at::kFloat;
  uint32_t version = 0;
  QuantRange range;
};

// A ResNet block's tensors are quantized right after they are written; a few entries cover the longest gap.
constexpr size_t kEntries = 8;

struct Memo {
  std::mutex mutex;
  std::array<Entry, kEntries> entries;
  size_t next = 0;
};

Memo& memo() {
  static Memo* m = new Memo;  // never destroyed: a quantizer running during exit still finds it
  return *m;
}

bool same_values(const Entry& e, const at::Tensor& t) {
  const c10::intrusive_ptr<c10::StorageImpl> alive = e.storage.lock();
  return alive && alive.get() == t.storage().unsafeGetStorageImpl() && e.offset == t.storage_offset() &&
         e.dtype == t.scalar_type() && e.version == t._version() && t.sizes().equals(e.sizes) &&
         t.strides().equals(e.strides);
}

bool has_storage(const at::Tensor& t) { return t.defined() && t.has_storage() && !t.is_inference(); }

}  // namespace

void remember(const at::Tensor& t, QuantRange range) {
  if (!has_storage(t)) return;
  Memo& m = memo();
  std::lock_guard<std::mutex> lock(m.mutex);
  Entry& e = m.entries[m.next];
  m.next = (m.next + 1) % kEntries;
  e.storage = c10::weak_intrusive_ptr<c10::StorageImpl>(t.storage().getWeakStorageImpl());
  e.offset = t.storage_offset();
  e.sizes = t.sizes().vec();
  e.strides = t.strides().vec();
  e.dtype = t.scalar_type();
  e.version = t._version();
  e.range = range;
}

std::optional<QuantRange> recall(const at::Tensor& t) {
  if (!has_storage(t)) return std::nullopt;
  Memo& m = memo();
  std::lock_guard<std::mutex> lock(m.mutex);
  for (const Entry& e : m.entries)
    if (same_values(e, t)) return e.range;
  return std::nullopt;
}

void forget(const at::Tensor& t) {
  if (!has_storage(t)) return;
  Memo& m = memo();
  std::lock_guard<std::mutex> lock(m.mutex);
  // Every entry on t's storage, whatever its view: a write through one view changes what the others see.
  for (Entry& e : m.entries) {
    const c10::intrusive_ptr<c10::StorageImpl> alive = e.storage.lock();
    if (alive && alive.get() == t.storage().unsafeGetStorageImpl()) e = Entry{};
  }
}

}  // namespace fractrain::range_memo
