// What a small allreduce costs two ranks on this machine, as a data-parallel step's BatchNorm statistics and
// quantizer ranges see it (about 40-80 of them per ResNet-20 step). Each iteration, each rank computes (a busy loop
// of W us, 10 % longer on one rank and 10 % shorter on the other, alternating, so that each waits for the other in
// turn) and then all-reduces 33 doubles over Gloo on 127.0.0.1. Reported: the time per iteration beyond the
// slower rank's work (1.1 W), for ranks that poll while they wait (train.comm_wait = spin) and ranks that block.
//
//   bench_collective_latency [--iterations 200] [--work-us 0,2000,5000]
//
// Stop other work on the machine first: the second rank needs a core of its own.
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "fractrain/dist/launch.h"
#include "fractrain/dist/process_group.h"

namespace {

using Clock = std::chrono::steady_clock;

void busy_for(double microseconds) {
  const auto until = Clock::now() + std::chrono::duration<double, std::micro>(microseconds);
  volatile double sink = 0;
  while (Clock::now() < until) sink = sink + 1.0;
}

std::vector<double> parse_list(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stod(item));
  return out;
}

// Microseconds per iteration on this rank, for each work size.
std::vector<double> run_rank(int rank, int port, bool spin, int iterations, const std::vector<double>& works) {
  fractrain::ProcessGroupOptions options;
  options.rank = rank;
  options.world_size = 2;
  options.master_port = port;
  options.timeout = std::chrono::seconds(60);
  options.spin_wait = spin;
  const auto group = fractrain::connect_process_group(options);
  at::Tensor values = at::zeros({33}, at::kDouble);
  std::vector<double> out;
  for (const double work : works) {
    group->all_reduce({values}, fractrain::ReduceOp::Sum, "warm-up");
    const auto start = Clock::now();
    for (int i = 0; i < iterations; ++i) {
      const bool longer = (i + rank) % 2 == 0;
      busy_for(work * (longer ? 1.1 : 0.9));
      group->all_reduce({values}, fractrain::ReduceOp::Sum, "statistics");
    }
    out.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count() / iterations);
  }
  group->barrier("end");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 200;
  std::vector<double> works = {0, 2000, 5000};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--iterations") {
      iterations = std::atoi(argv[i + 1]);
    } else if (flag == "--work-us") {
      works = parse_list(argv[i + 1]);
    } else {
      std::fprintf(stderr, "bench_collective_latency: unknown option %s (--iterations N, --work-us A,B,...)\n",
                   argv[i]);
      return 2;
    }
  }
  if (!fractrain::process_group_backend_available("gloo")) {
    std::fprintf(stderr, "bench_collective_latency: this build has no Gloo (Debian's LibTorch has it)\n");
    return 1;
  }
  at::set_num_threads(1);
  std::printf("wait   work_us  us_per_iteration  beyond_slower_rank_us\n");
  for (const bool spin : {true, false}) {
    const int port = fractrain::pick_free_loopback_port();
    const pid_t child = fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    try {
      const auto times = run_rank(child == 0 ? 1 : 0, port, spin, iterations, works);
      if (child == 0) std::_Exit(0);
      int status = 0;
      waitpid(child, &status, 0);
      for (size_t w = 0; w < works.size(); ++w)
        std::printf("%-6s %7.0f  %16.1f  %21.1f\n", spin ? "spin" : "block", works[w], times[w],
                    times[w] - 1.1 * works[w]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_collective_latency: %s\n", e.what());
      if (child == 0) std::_Exit(1);
      return 1;
    }
  }
  return 0;
}
