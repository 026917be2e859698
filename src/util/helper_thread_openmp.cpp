#include "fractrain/util/helper_thread_openmp.h"

#include <ATen/Parallel.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fractrain {

void run_parallel_loops_on_this_thread_only() {
  // LibTorch sets a thread's OpenMP thread count to its default on the thread's first parallel loop or count query,
  // behind a per-thread flag in an inline function of its headers. Where that function is not exported (the pip
  // wheels' LibTorch 2.x), the copy compiled into fractrain (which at::parallel_for in fractrain's code runs) and
  // LibTorch's own (which its ops and at::get_num_threads run) are two flags: trip both first, so that neither can
  // undo the setting below later.
  at::internal::lazy_init_num_threads();
  (void)at::get_num_threads();
#if defined(_OPENMP)
  // The calling thread's own count (OpenMP's nthreads-var is per thread). at::set_num_threads(1) would also change
  // LibTorch's default for every later thread and its other pools.
  omp_set_num_threads(1);
#endif
}

}  // namespace fractrain
