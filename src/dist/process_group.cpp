// connect_process_group: the TCPStore rendezvous and the backend behind the Communicator.
//
// The rendezvous counts the ranks itself (each adds 1 to a key, then all poll it until it reaches the world size
// or the timeout passes) instead of TCPStore's waitWorkers, for two reasons measured on LibTorch 1.13: a missing
// rank otherwise surfaces as "Socket Timeout" from deep inside Gloo's connectFullMesh after up to twice the
// timeout, and the count lets the error say how many ranks did arrive. The backend connects only once everyone
// is there. c10d's own failures are mapped to messages that say what to do (see map_store_error).
#include <arpa/inet.h>
#include <signal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cctype>
#include <thread>

#include "c10d_communicator.h"
#include "c10d_compat.h"
#include "fractrain/dist/process_group.h"
#include "fractrain/util/error.h"
#include "fractrain/util/host_name.h"

#if FRACTRAIN_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#endif

// SIGPIPE's handler while ranks are connected (connect_process_groups says why).
extern "C" void ignore_broken_pipe(int) {}

namespace fractrain {
namespace {

using Clock = std::chrono::steady_clock;
using dist_detail::exception_cause;
using dist_detail::seconds_text;

void validate(const ProcessGroupOptions& options) {
  if (options.world_size < 1) {
    throw Error(fmt::format("world size {} is invalid: it must be at least 1", options.world_size));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    throw Error(fmt::format("rank {} is out of range for world size {}: ranks are 0..{}", options.rank,
                            options.world_size, options.world_size - 1));
  }
  if (options.local_rank < 0) throw Error(fmt::format("local rank {} is invalid: it must be >= 0", options.local_rank));
  if (options.backend != "gloo" && options.backend != "nccl") {
    throw Error(fmt::format("process group backend '{}' is unknown: use gloo (CPU) or nccl (CUDA)", options.backend));
  }
  if (options.world_size == 1) return;  // nothing to connect to
  if (options.master_addr.empty()) {
    throw Error("the master address is empty: pass --master HOST:PORT or set MASTER_ADDR");
  }
  if (options.master_port < 1 || options.master_port > 65535) {
    throw Error(fmt::format("master port {} is out of range: use a port in 1..65535", options.master_port));
  }
  if (options.timeout.count() <= 0) {
    throw Error(fmt::format("process group timeout {} ms is invalid: it must be positive", options.timeout.count()));
  }
  if (options.restart_count < 0) {
    throw Error(fmt::format("restart count {} is invalid: it must be >= 0", options.restart_count));
  }
}

#if FRACTRAIN_HAVE_C10D

std::string master_text(const ProcessGroupOptions& options) {
  return fmt::format("{}:{}", options.master_addr, options.master_port);
}

// The store: rank 0 hosts it (unless torchrun's agent does), everyone else connects, retrying until the timeout.
c10::intrusive_ptr<c10d::Store> open_store(const ProcessGroupOptions& options) {
  const bool server = options.rank == 0 && !options.agent_store;
  try {
    return c10::make_intrusive<c10d::TCPStore>(
        options.master_addr, c10d_compat::tcp_store_options(options.master_port, server, options.timeout));
  } catch (const std::exception& e) {
    const std::string cause = exception_cause(e);
    // Matched on the text, lower-cased, because the exception types changed in 2.x (c10d::SocketError and
    // TimeoutError became c10::DistNetworkError and friends) and so did the wording (libuv's "address already in
    // use"). 1.13: "The server socket has failed to bind to [::]:P (errno: 98 - Address already in use)".
    std::string lower = cause;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (server && lower.find("in use") != std::string::npos) {
      throw Error(fmt::format("rank 0: port {} on {} is in use: pick another --master port (or MASTER_PORT), or stop "
                              "the process that holds it",
                              options.master_port, options.master_addr));
    }
    // 1.13: c10d::TimeoutError "The client socket has timed out after Ns while trying to connect to (H, P)";
    // a refused connection is retried until then.
    if (!server && lower.find("timed out") != std::string::npos) {
      throw Error(fmt::format("rank {}: could not reach the master at {} within {} s: start rank 0 (it hosts the "
                              "rendezvous) or check --master / MASTER_ADDR and MASTER_PORT",
                              options.rank, master_text(options), seconds_text(options.timeout)));
    }
    throw Error(fmt::format("rank {}: could not {} the rendezvous store at {}: {}", options.rank,
                            server ? "start" : "connect to", master_text(options), cause));
  }
}

// Every rank announces itself and waits for the others, until the deadline.
void wait_for_all_ranks(c10d::Store& store, const ProcessGroupOptions& options, Clock::time_point deadline) {
  try {
    if (store.add("rank_" + std::to_string(options.rank), 1) > 1) {
      throw Error(fmt::format("rank {}: another process already joined as rank {} at {}: give every process its own "
                              "RANK",
                              options.rank, options.rank, master_text(options)));
    }
    int64_t joined = store.add("joined", 1);
    while (joined < options.world_size) {
      if (Clock::now() >= deadline) {
        throw Error(fmt::format("rank {}: only {} of {} ranks joined within {} s at {}; start the missing ranks or "
                                "check --master / MASTER_ADDR",
                                options.rank, joined, options.world_size, seconds_text(options.timeout),
                                master_text(options)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      joined = store.add("joined", 0);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}: lost the rendezvous store at {} while waiting for the other ranks: {} (did "
                            "rank 0 exit? see its output)",
                            options.rank, master_text(options), exception_cause(e)));
  }
}

#if FRACTRAIN_HAVE_GLOO
// The address Gloo listens on and announces to its peers: the local address of the route to the master (a UDP
// connect() sends nothing but picks it), so it is reachable from other machines when the master is, and 127.0.0.1
// on loopback. The host name is the fallback when the master's address cannot be resolved here.
std::string local_address_towards(const ProcessGroupOptions& options) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(options.master_addr.c_str(), std::to_string(options.master_port).c_str(), &hints, &found) != 0) {
    return host_name();
  }
  std::string address;
  for (addrinfo* a = found; a && address.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof(local);
    char text[INET6_ADDRSTRLEN] = {};
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      const void* raw = local.ss_family == AF_INET6
                            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                            : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
      if (inet_ntop(local.ss_family, raw, text, sizeof(text))) address = text;
    }
    ::close(fd);
  }
  freeaddrinfo(found);
  return address.empty() ? host_name() : address;
}

std::shared_ptr<Communicator> connect_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                           const ProcessGroupOptions& options, const std::string& prefix) {
  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local_address_towards(options)));
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>(prefix, store),
                                                             options.rank, options.world_size, gloo_options);
    return dist_detail::make_c10d_communicator(group, store, options.rank, options.world_size, "gloo",
                                               options.timeout, options.spin_wait);
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}: connecting Gloo between the {} ranks failed: {} (a peer died or is stuck; see "
                            "its output)",
                            options.rank, options.world_size, exception_cause(e)));
  }
}
#endif

#if FRACTRAIN_HAVE_NCCL
// Not run by the test suite (no GPU on the build machine, no NCCL in Debian's LibTorch): written against the 1.13
// headers and the 2.x API described in the notes.
std::shared_ptr<Communicator> connect_nccl(const c10::intrusive_ptr<c10d::Store>& store,
                                           const ProcessGroupOptions& options, const std::string& prefix) {
  const int devices = static_cast<int>(c10::cuda::device_count());
  if (options.local_rank >= devices) {
    throw Error(fmt::format("rank {}: local rank {} needs cuda:{}, but this machine has {} CUDA device(s): start at "
                            "most {} ranks per node",
                            options.rank, options.local_rank, options.local_rank, devices, devices));
  }
  try {
    // Before NCCL creates anything: its communicator and streams belong to the current device.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(options.local_rank));
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = options.timeout;
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>(prefix, store),
                                                             options.rank, options.world_size, nccl_options);
    c10d::ProcessGroupNCCL* raw = group.get();  // the communicator owns the group and outlives this callback
    return dist_detail::make_c10d_communicator(group, store, options.rank, options.world_size, "nccl",
                                               options.timeout, /*spin_wait=*/false,
                                               [raw] { c10d_compat::shutdown_nccl(*raw); });
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}: connecting NCCL between the {} ranks failed: {}", options.rank,
                            options.world_size, exception_cause(e)));
  }
}
#endif

#endif  // FRACTRAIN_HAVE_C10D

}  // namespace

bool process_group_backend_available(const std::string& backend) {
  if (backend == "gloo") return FRACTRAIN_HAVE_GLOO;
  if (backend == "nccl") return FRACTRAIN_HAVE_NCCL;
  return false;
}

std::shared_ptr<Communicator> connect_process_group(const ProcessGroupOptions& options) {
  return connect_process_groups(options, 1).front();
}

std::vector<std::shared_ptr<Communicator>> connect_process_groups(const ProcessGroupOptions& options, int groups) {
  validate(options);
  if (groups < 1) throw Error(fmt::format("cannot connect {} process groups: at least 1", groups));
  if (options.world_size == 1) return std::vector<std::shared_ptr<Communicator>>(groups, make_single_process_communicator());
  if (options.backend == "gloo" && !FRACTRAIN_HAVE_GLOO) {
    throw Error(fmt::format("fractrain was built without Gloo (the headers <gloo/rendezvous/store.h> were not found "
                            "at build time), so it cannot connect {} ranks: install libgloo-dev (scripts/setup.sh "
                            "does) and rebuild fractrain (re-run cmake, then build)",
                            options.world_size));
  }
  if (options.backend == "nccl" && !FRACTRAIN_HAVE_NCCL) {
    throw Error("this LibTorch has no NCCL (Debian's is CPU-only): use backend gloo, or build fractrain against a "
                "CUDA LibTorch (-DCMAKE_PREFIX_PATH=<its cmake directory>)");
  }
#if FRACTRAIN_HAVE_C10D
  // Gloo writes to its peers' sockets with writev, which raises SIGPIPE when the peer has died: the default action
  // ends this process at once, before the collective can fail with an error naming the dead peer
  // (DistProcessGroup.PeerThatDiesFailsTheSurvivorsCollectiveAtOnce died of it in CI). Handled, the write returns
  // EPIPE and the error surfaces (Python ignores SIGPIPE for PyTorch). A handler that does nothing rather than
  // SIG_IGN: programs this process starts (sweep runs, gnuplot) get the default action back at exec.
  ::signal(SIGPIPE, ignore_broken_pipe);
  const auto deadline = Clock::now() + options.timeout;
  c10::intrusive_ptr<c10d::Store> store = open_store(options);
  if (options.agent_store) {
    // torch.distributed's layout under torchrun's agent store (rendezvous.py, _create_c10d_store).
    store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(options.restart_count), store);
  }
  store = c10::make_intrusive<c10d::PrefixStore>("fractrain", store);
  wait_for_all_ranks(*store, options, deadline);
  // Each group under its own store prefix: the backends keep their keys apart.
  std::vector<std::shared_ptr<Communicator>> connected;
  for (int g = 0; g < groups; ++g) {
    const std::string prefix = options.backend + (g == 0 ? "" : std::to_string(g));
#if FRACTRAIN_HAVE_GLOO
    if (options.backend == "gloo") connected.push_back(connect_gloo(store, options, prefix));
#endif
#if FRACTRAIN_HAVE_NCCL
    if (options.backend == "nccl") connected.push_back(connect_nccl(store, options, prefix));
#endif
  }
  if (static_cast<int>(connected.size()) == groups) return connected;
#endif
  throw Error(fmt::format("process group backend '{}' is not available in this build", options.backend));
}

}  // namespace fractrain
