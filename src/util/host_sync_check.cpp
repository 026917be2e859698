#include "fractrain/util/host_sync_check.h"

#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace fractrain {

#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
HostSyncIsAnError::HostSyncIsAnError(bool active) : active_(active) {
  if (active_) c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
}

HostSyncIsAnError::~HostSyncIsAnError() {
  if (active_) c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
}
#else
// No GPU to wait for: nothing to check.
HostSyncIsAnError::HostSyncIsAnError(bool active) : active_(active) { (void)active_; }
HostSyncIsAnError::~HostSyncIsAnError() = default;
#endif

}  // namespace fractrain
