#include "fractrain/util/helper_thread_openmp.h"

#include <ATen/Parallel.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fractrain {

void run_parallel_loops_on_this_thread_only() {
  // LibTorch sets a thread's OpenMP thread count to its default on the thread's first call into it: make that call
  // first, so that it cannot undo the setting below later.
  (void)at::get_num_threads();
#if defined(_OPENMP)
  // The calling thread's own count (OpenMP's nthreads-var is per thread). at::set_num_threads(1) would also change
  // LibTorch's default for every later thread and its other pools.
  omp_set_num_threads(1);
#endif
}

}  // namespace fractrain
