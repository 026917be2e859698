#pragma once
// The Communicator over a c10d backend (Gloo or NCCL), private to src/dist: process_group.cpp makes one after the
// rendezvous. Only compiled where c10d_compat.h finds a backend.
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "c10d_compat.h"
#include "fractrain/dist/communicator.h"

namespace fractrain::dist_detail {

// A c10d or gloo exception's message without LibTorch's backtrace, on one line.
std::string exception_cause(const std::exception& error);
std::string exception_cause(const std::exception_ptr& error);
// "3", "0.5", "10": a configured duration (a timeout) in seconds for messages.
std::string seconds_text(std::chrono::duration<double> duration);

#if FRACTRAIN_HAVE_C10D
// `name` is "gloo" or "nccl" (Gloo rejects bfloat16, which is checked before launching). `store` keeps the store
// (and, on rank 0, its server) alive as long as the group; `before_destroy` runs first in the destructor (NCCL's
// shutdown). `spin_wait`: waiting for a collective polls it (yielding the core) before blocking
// (ProcessGroupOptions::spin_wait); only for host-side backends (Gloo), whose completion is the host's.
std::shared_ptr<Communicator> make_c10d_communicator(c10d_compat::BackendPtr backend,
                                                     c10::intrusive_ptr<c10d::Store> store, int rank,
                                                     int world_size, std::string name,
                                                     std::chrono::milliseconds timeout, bool spin_wait,
                                                     std::function<void()> before_destroy = {});
#endif

}  // namespace fractrain::dist_detail
