#include "fractrain/util/allocator_tuning.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fractrain {

void tune_allocator_for_training() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // blocks below 32 MiB come from the heap and are reused
  mallopt(M_TRIM_THRESHOLD, 512 << 20);  // give memory back to the OS only past 512 MiB of free heap top
#endif
}

}  // namespace fractrain
