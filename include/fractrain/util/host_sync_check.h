#pragma once
// Makes any host synchronisation that LibTorch's CUDA calls make (item(), a blocking copy, a stream or device
// synchronise) throw instead of running, while alive: the check that a GPU training step never waits for the
// device (issue 15; TrainOptions::forbid_host_sync). LibTorch's own sync debug mode does the work; builds without
// the CUDA kernels have no GPU to wait for, and the check does nothing there.
namespace fractrain {

class HostSyncIsAnError {
 public:
  explicit HostSyncIsAnError(bool active = true);
  ~HostSyncIsAnError();
  HostSyncIsAnError(const HostSyncIsAnError&) = delete;
  HostSyncIsAnError& operator=(const HostSyncIsAnError&) = delete;

 private:
  bool active_;
};

}  // namespace fractrain
