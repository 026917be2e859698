#pragma once
// Where a data-parallel step's time goes: a Communicator that forwards every collective to another and adds up
// the wall time this rank spends in them (starting them, and waiting for them), and how many there were.
#include <atomic>
#include <cstdint>
#include <memory>

#include "fractrain/dist/communicator.h"

namespace fractrain {

struct CommunicationClock {
  std::atomic<int64_t> nanoseconds{0};
  std::atomic<int64_t> collectives{0};
  double seconds() const { return static_cast<double>(nanoseconds.load()) * 1e-9; }
};

std::shared_ptr<Communicator> with_timing(std::shared_ptr<Communicator> inner, std::shared_ptr<CommunicationClock> clock);

}  // namespace fractrain
