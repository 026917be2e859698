#pragma once
// The one place that knows which LibTorch fractrain is built against, for the c10d code in src/dist (private:
// no public header includes c10d or gloo, so an installed fractrain's consumer needs neither).
//
// What differs between Debian's LibTorch 1.13 and the 2.x wheels (see /work/shared/notes/distributed.md §2):
// - 1.13: ProcessGroupGloo and ProcessGroupNCCL derive from c10d::ProcessGroup; 2.x: from c10d::Backend, with
//   ProcessGroup a dispatching front end. fractrain calls the backend directly, through C10dBackendPtr.
// - c10::optional (1.13) vs std::optional (2.x; later an alias): TCPStoreOptions::numWorkers is either.
// - ProcessGroupNCCL::shutdown() exists only in recent 2.x.
// - ReduceOp is an enum class in 1.13 and a struct around RedOpType in 2.x; both accept ReduceOp::SUM etc.
//
// Availability: Debian's torch_cpu target defines USE_C10D_GLOO, but ProcessGroupGloo.hpp needs the headers of
// libgloo-dev, which LibTorch does not ship (the pip wheel probably lacks them too), so FRACTRAIN_HAVE_GLOO also
// asks the compiler whether they are there. USE_C10D_NCCL comes from a CUDA LibTorch's CMake target.
#include <torch/version.h>

// FRACTRAIN_GLOO_HEADERS_MISMATCH (set by CMake): the gloo headers found belong to another LibTorch than the one
// built against (libgloo-dev matches Debian's); class layouts could differ, so Gloo stays off.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/rendezvous/store.h>) && !defined(FRACTRAIN_GLOO_HEADERS_MISMATCH)
#define FRACTRAIN_HAVE_GLOO 1
#else
#define FRACTRAIN_HAVE_GLOO 0
#endif

#if defined(USE_C10D_NCCL)
#define FRACTRAIN_HAVE_NCCL 1
#else
#define FRACTRAIN_HAVE_NCCL 0
#endif

#define FRACTRAIN_HAVE_C10D (FRACTRAIN_HAVE_GLOO || FRACTRAIN_HAVE_NCCL)

#if FRACTRAIN_HAVE_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#if FRACTRAIN_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if FRACTRAIN_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace fractrain::c10d_compat {

// The object collectives are called on: the backend itself (2.x) or the process group that is the backend (1.13).
#if TORCH_VERSION_MAJOR >= 2
using BackendPtr = c10::intrusive_ptr<c10d::Backend>;
#else
using BackendPtr = c10::intrusive_ptr<c10d::ProcessGroup>;
#endif

// TCPStoreOptions without the numWorkers count (fractrain counts the ranks itself, see process_group.cpp), so the
// optional's type never needs naming.
inline c10d::TCPStoreOptions tcp_store_options(int port, bool is_server, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;  // members assigned one by one: 2.x adds fields (masterListenFd, useLibUV)
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = is_server;
  options.waitWorkers = false;
  options.timeout = timeout;
  return options;
}

#if FRACTRAIN_HAVE_NCCL
// Stops NCCL's watchdog and communicators before the process group is destroyed; 2.x warns (and may hang at exit)
// without it. 1.13 and early 2.x have no shutdown(): destruction alone does it there.
inline void shutdown_nccl(c10d::ProcessGroupNCCL& group) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  group.shutdown();
#else
  (void)group;
#endif
}
#endif

}  // namespace fractrain::c10d_compat

#endif  // FRACTRAIN_HAVE_C10D
