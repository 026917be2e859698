#pragma once
// BatchNorm over the channels of NCHW inputs, synchronised across data-parallel ranks.
//
// A drop-in for torch::nn::BatchNorm2d in fractrain's models: the same options and defaults (eps 1e-5,
// momentum 0.1, affine, running statistics), and the same parameter and buffer names (weight, bias,
// running_mean, running_var, num_batches_tracked), so checkpoints written with BatchNorm2d load unchanged.
//
// - No communicator, world size 1, or eval mode: exactly torch::nn::BatchNorm2d (the same torch::batch_norm
//   call, bit for bit).
// - World size > 1 in training: normalises with the statistics of the global batch (the concatenation of every
//   rank's batch), as one BatchNorm over that batch would. Forward: one allreduce of per-channel [sum, sum of
//   squares] and the sample count; backward: one allreduce of per-channel [sum(dy), sum(dy * x_hat)], from
//   which dx is exact for the global batch. Every rank must call forward (and backward) of every synchronised
//   layer the same number of times in the same order, a rank with an empty batch included (it contributes
//   zeros).
//
// Gradients of weight and bias are this rank's share (sums over its own samples), as in PyTorch's
// SyncBatchNorm: the gradient averaging that follows (gradient_sync.h) combines them like every other
// parameter's, which gives exactly the single-process gradient. Allreducing them here too would count the
// other ranks' samples twice.
//
// Give the BatchNorm layers a communicator of their own (a separate process group) when the gradient
// averaging launches collectives from autograd hooks: both run during backward, and a parameter that is unused
// on one rank only moves a bucket launch relative to the BatchNorm collectives on that rank.
#include <torch/nn/module.h>
#include <torch/nn/options/batchnorm.h>

#include <memory>

#include "fractrain/dist/communicator.h"

namespace fractrain {

class SyncBatchNorm2d : public torch::nn::Module {
 public:
  // torch::nn::BatchNormOptions converts from the channel count: SyncBatchNorm2d(64).
  explicit SyncBatchNorm2d(const torch::nn::BatchNormOptions& options);

  at::Tensor forward(const at::Tensor& input);
  // Training under DFQ's masked execution (models/gated_block.h): the statistics are those of the samples whose
  // entry of `runs` (float [N], 1 or 0) is 1, as if the others were not in the batch; the others are normalised
  // with them too (the caller discards their outputs) and get no gradient through them. When no sample runs,
  // no running statistic changes. All of it in tensor ops, so nothing returns to the host. In one process
  // only. Undefined `runs`, or eval mode: forward(input).
  at::Tensor forward(const at::Tensor& input, const at::Tensor& runs);

  // relu(scale * forward(input) + residual), scale per sample (float [N]; DFQ's gated blocks), residual and scale
  // optional (a scale needs a residual). With fused kernels on (set_fused_kernels), in training, in one process
  // and on float32 contiguous NCHW CPU tensors: one fused op (fused_batch_norm.h: the same maths, not torch's
  // rounding); otherwise exactly torch's ops in that order.
  at::Tensor forward_relu(const at::Tensor& input, const at::Tensor& residual = {}, const at::Tensor& scale = {});

  // Off by default: forward_relu then is torch's ops, bit for bit.
  void set_fused_kernels(bool on) { fused_kernels_ = on; }
  bool fused_kernels() const { return fused_kernels_; }

  // nullptr: no synchronisation (the default).
  void set_communicator(std::shared_ptr<Communicator> communicator) { communicator_ = std::move(communicator); }
  const std::shared_ptr<Communicator>& communicator() const { return communicator_; }
  const torch::nn::BatchNormOptions& options() const { return options_; }
  void reset_running_stats();

  void pretty_print(std::ostream& stream) const override;

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  // The factor torch::nn::BatchNorm2d passes as momentum (and its num_batches_tracked update).
  double running_average_factor();
  at::Tensor synchronised_forward(const at::Tensor& input, double factor);

  torch::nn::BatchNormOptions options_;
  std::shared_ptr<Communicator> communicator_;
  bool fused_kernels_ = false;
};

// Sets `communicator` on every SyncBatchNorm2d in `model` (the model itself included); returns how many.
int set_batch_norm_communicator(torch::nn::Module& model, std::shared_ptr<Communicator> communicator);

// Turns the fused BatchNorm + ReLU kernels on or off on every SyncBatchNorm2d in `model` (itself included);
// returns how many (train.fused_batch_norm).
int set_fused_batch_norm(torch::nn::Module& model, bool on);

}  // namespace fractrain
