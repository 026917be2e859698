#pragma once
// Averages parameter gradients over data-parallel ranks, in buckets, like PyTorch DDP's Reducer (see
// shared/notes/distributed.md sections 3, 4 and 6), with a choice of what goes on the wire.
//
// Buckets of about `bucket_bytes` cover the parameters in reverse registration order (gradients arrive roughly
// in that order), each with one flat buffer. During backward, a post-hook on every parameter's AccumulateGrad
// node marks it ready, and a completed bucket is sent at once so communication overlaps the rest of backward;
// buckets are always launched in index order, so every rank starts the same collectives in the same order.
// finish_step() sends the rest (a gradient missing on this rank counts as zeros), waits, and writes the
// average (sum / world size) into every .grad().
//
// A parameter whose gradient is undefined on every rank keeps an undefined gradient: torch optimizers skip
// such parameters, whereas a zero gradient would still apply momentum and weight decay, which a single
// process would not. Definedness is agreed with one small allreduce of per-parameter flags.
//
// Precision on the wire:
//  - Fp32: the gradients as they are (the default; the average matches one process on the global batch to
//    float32 rounding of the sum).
//  - Fp16: each bucket is divided by the world size, cast to half, summed, cast back (PyTorch's FP16_COMPRESS;
//    dividing first keeps the sum from overflowing half's range).
//  - Bw: each bucket is quantized to the step's backward bit width with stochastic rounding (fractrain's
//    quantizer, DESIGN.md 4.1, over this rank's bucket range [min, max]; noise element i of rank r is
//    PhiloxStream{seed, mix_stream(bucket, step)}.uniform(r * bucket_numel + i), so ranks draw different noise);
//    the integer codes (uint8 up to 8 bits, int16 up to 16) and (lo, s) are all-gathered, because sums of
//    codes with per-rank ranges are meaningless; every rank dequantizes and adds them in rank order, then
//    divides. Bit width 0 (an FP32 step) sends that step in Fp32.
//
// Several backward passes per step (gradient accumulation) need launch_from_hooks = false: a bucket sent
// during the first pass would miss the later ones (the hook throws fractrain::Error if that happens).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fractrain/dist/communicator.h"
#include "fractrain/random/philox.h"

namespace torch::autograd {
struct Node;
}

namespace fractrain {

enum class GradientCommunication { Fp32, Fp16, Bw };

// "fp32", "fp16", "bw"; parse throws fractrain::Error naming the value and the choices.
std::string gradient_communication_name(GradientCommunication comm);
GradientCommunication parse_gradient_communication(const std::string& name);

struct GradientSyncOptions {
  int64_t bucket_bytes = 1 << 20;
  GradientCommunication comm = GradientCommunication::Fp32;
  uint64_t seed = 0;  // the key of the Bw rounding noise; the run seed
  // Launch buckets from AccumulateGrad hooks during backward (overlap); false: all in finish_step().
  bool launch_from_hooks = true;
};

class GradientSynchronizer {
 public:
  // `parameters` in registration order (model->parameters()); those that do not require grad are left out
  // (they never get a gradient). Float32 parameters only; a parameter given twice is an error.
  GradientSynchronizer(std::shared_ptr<Communicator> communicator, std::vector<at::Tensor> parameters,
                       GradientSyncOptions options = {});
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  // Optional, before backward: the step's backward bit width and number, which Bw buckets need before they
  // can be sent from hooks (without it they wait for finish_step; Fp32 and Fp16 never need it).
  void begin_step(int backward_bits, uint64_t step);
  // After backward: sends what is left, waits, writes averages into .grad(). backward_bits and step must match
  // begin_step's when it was called.
  void finish_step(int backward_bits, uint64_t step);

  // Payload bytes this rank contributed to collectives: in the last finished step, and in total.
  int64_t step_bytes_communicated() const { return last_step_.bytes; }
  int64_t bytes_communicated() const { return total_bytes_; }

  struct StepRecord {
    std::vector<int> launch_order;       // bucket indices in the order they were sent (always 0, 1, 2, ...)
    int launched_during_backward = 0;    // how many of them a hook sent
    std::vector<GradientCommunication> bucket_comm;  // what each bucket was sent as
    int64_t bytes = 0;
  };
  const StepRecord& last_step() const { return last_step_; }
  // Parameter indices (into the constructor's list) of each bucket.
  const std::vector<std::vector<int>>& buckets() const { return bucket_params_; }
  const GradientSyncOptions& options() const { return options_; }

  // The hook's entry point (public for the hook class; not for callers).
  void mark_ready(int parameter);

 private:
  struct Bucket;
  struct HookLink;
  void launch_ready_buckets_locked(bool from_hook);
  void launch_locked(int bucket, bool from_hook);
  void wait_and_write_back();

  std::shared_ptr<Communicator> communicator_;
  std::vector<at::Tensor> parameters_;
  GradientSyncOptions options_;
  std::vector<std::vector<int>> bucket_params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<int> bucket_of_;  // parameter -> bucket
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive: parameters hold them weakly
  std::shared_ptr<HookLink> link_;

  std::mutex mutex_;  // hooks may run on autograd worker threads
  std::vector<char> ready_;
  int next_bucket_ = 0;
  bool step_begun_ = false;
  int step_bits_ = 0;
  uint64_t step_ = 0;
  StepRecord current_, last_step_;
  int64_t total_bytes_ = 0;
};

namespace detail {
// Stochastic-rounding noise in [-0.5, 0.5): element i is noise.uniform(first + i) - 0.5 (the quantizer's
// convention, at an offset), computed a Philox tile (16 blocks, 64 words) at a time.
at::Tensor rounding_noise_at(const PhiloxStream& noise, uint64_t first, int64_t count);

// A bucket as the Bw mode sends it: integer codes t (stored as t in uint8 up to 8 bits, t - 32768 in int16 up
// to 16) and x_hat = t * s + lo.
struct WireCodes {
  at::Tensor codes;
  float lo = 0.0f, s = 1e-8f;
};
// fake_quantize(flat, bits, tensor_range(flat), stochastic, noise) but with noise element i taken from
// noise index first + i, returning the codes. bits in 1..16.
WireCodes quantize_for_wire(const at::Tensor& flat, int bits, const PhiloxStream& noise, uint64_t first);
at::Tensor dequantize_from_wire(const at::Tensor& codes, float lo, float s);
}  // namespace detail

}  // namespace fractrain
