#pragma once
// OpenMP on threads of fractrain's own that run ATen ops next to the training step (the batch loader's prefetch).

namespace fractrain {

// Makes ATen's parallel loops on the calling thread run on that thread alone, for the rest of its life; other
// threads, and LibTorch's default for new ones (at::set_num_threads), keep theirs. Call it first on a helper
// thread. It sets the count in the OpenMP runtime fractrain is compiled with (in GCC builds LibTorch's own,
// libgomp). Why: the training step already runs on every core, and each thread that starts an OpenMP parallel loop
// gets a team of its own. Once libgomp manages more threads than there are CPUs it lets idle workers spin only
// about a hundred times before they sleep in the kernel (its throttled spin count), so the training team's worker
// then sleeps and is woken between each of its parallel passes: the batch loader's team of two made Fashion-MNIST
// epochs 14-19 % slower (docs/integer.md, "Measurements, 2026-12-06 (fifth)").
void run_parallel_loops_on_this_thread_only();

}  // namespace fractrain
