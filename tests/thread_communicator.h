#pragma once
// Communicators for tests: n threads of one process, each acting as one rank, meet in shared memory. They give
// distributed code (BatchNorm statistics, gradient averaging) real rank-to-rank semantics without processes or
// sockets, and deterministic results: every reduction adds in rank order, once, and every rank receives the
// same bits.
//
// Matching: each communicator numbers its collectives 0, 1, 2, ...; collective k of every rank must have the
// same kind and tensor shapes and dtypes, or every rank gets a fractrain::Error naming both `what`s (this is
// how tests catch ranks that launch collectives in different orders). start_all_reduce takes a copy of the
// tensors at once and completes at wait(). A rank that waits longer than `timeout` throws, and a rank that fails
// inside run_ranks aborts the others' waits, so a test bug fails fast instead of hanging CI.
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "fractrain/dist/communicator.h"

namespace fractrain::test_support {

// n communicators (ranks 0..n-1) that share one meeting point; backend_name() is "threads". Each must be used
// from one thread at a time. Independent calls give independent groups.
std::vector<std::shared_ptr<Communicator>> make_thread_communicators(
    int n, std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Runs body(communicator of rank r) on one thread per communicator, joins them all and rethrows the first
// exception any of them threw (by time). A failing rank aborts the collectives the others are waiting in.
void run_ranks(const std::vector<std::shared_ptr<Communicator>>& communicators,
               const std::function<void(Communicator&)>& body);
// The same with fresh communicators: run_ranks(make_thread_communicators(n), body).
void run_ranks(int n, const std::function<void(Communicator&)>& body);

}  // namespace fractrain::test_support
