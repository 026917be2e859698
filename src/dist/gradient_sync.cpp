#include "fractrain/dist/gradient_sync.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <unordered_set>

#include "fractrain/util/error.h"

namespace fractrain {

std::string gradient_communication_name(GradientCommunication comm) {
  switch (comm) {
    case GradientCommunication::Fp32: return "fp32";
    case GradientCommunication::Fp16: return "fp16";
    case GradientCommunication::Bw: return "bw";
  }
  return "?";
}

GradientCommunication parse_gradient_communication(const std::string& name) {
  for (GradientCommunication c : {GradientCommunication::Fp32, GradientCommunication::Fp16, GradientCommunication::Bw})
    if (gradient_communication_name(c) == name) return c;
  throw Error("unknown gradient communication '" + name + "': expected fp32, fp16 or bw");
}

namespace detail {

at::Tensor rounding_noise_at(const PhiloxStream& noise, uint64_t first, int64_t count) {
  at::Tensor out = at::empty({count}, at::TensorOptions().dtype(at::kFloat));
  float* p = out.data_ptr<float>();
  int64_t i = 0;
  while (i < count) {
    // PhiloxStream::word's layout: element 16 * w + b of a 64-element tile is word w of block b.
    const uint64_t tile = (first + static_cast<uint64_t>(i)) >> 6;
    Philox4x32 blocks[16];
    for (uint64_t b = 0; b < 16; ++b) blocks[b] = noise.block(tile * 16 + b);
    const int64_t tile_end = static_cast<int64_t>((tile + 1) * 64 - first);
    for (; i < count && i < tile_end; ++i) {
      const unsigned position = static_cast<unsigned>((first + static_cast<uint64_t>(i)) & 63);
      p[i] = PhiloxStream::word_to_uniform(blocks[position & 15].v[position >> 4]) - 0.5f;
    }
  }
  return out;
}

namespace {
// Codes of 9..16 bits reach 65535, one past int16; shifting by 2^15 fits them and halves int32's bytes.
constexpr float kInt16Offset = 32768.0f;
}  // namespace

WireCodes quantize_for_wire(const at::Tensor& flat, int bits, const PhiloxStream& noise, uint64_t first) {
  if (bits < 1 || bits > 16)
    throw Error("gradient communication bw: backward bit width " + std::to_string(bits) +
                " is outside 1..16 (use 0 for an fp32 step)");
  WireCodes out;
  float hi = 0.0f;
  if (flat.numel() > 0) {
    out.lo = flat.min().item<float>();
    hi = flat.max().item<float>();
  }
  const float levels = static_cast<float>((1u << bits) - 1);
  // The quantizer's formulas with float operands and tensor ops, as reference::fake_quantize evaluates them,
  // so that rank 0 (noise offset 0) reproduces fake_quantize bit for bit.
  out.s = std::max((hi - out.lo) / levels, 1e-8f);
  const at::TensorOptions f32 = flat.options().dtype(at::kFloat);
  const at::Tensor lo_t = at::full({}, out.lo, f32), s_t = at::full({}, out.s, f32);
  at::Tensor t = (flat - lo_t) / s_t + rounding_noise_at(noise, first, flat.numel()).to(flat.device());
  t = t.clamp(0.0, static_cast<double>(levels)).round();
  out.codes = bits <= 8 ? t.to(at::kByte) : (t - kInt16Offset).to(at::kShort);
  return out;
}

at::Tensor dequantize_from_wire(const at::Tensor& codes, float lo, float s) {
  at::Tensor t = codes.to(at::kFloat);
  if (codes.scalar_type() == at::kShort) t = t + kInt16Offset;
  const at::TensorOptions f32 = t.options();
  return t * at::full({}, s, f32) + at::full({}, lo, f32);
}

}  // namespace detail

struct GradientSynchronizer::Bucket {
  std::vector<int> params;
  std::vector<int64_t> offsets;  // of each parameter in flat
  int64_t numel = 0;
  at::Tensor flat;               // float32
  int pending = 0;               // parameters not yet ready this step
  bool launched = false;
  GradientCommunication sent_as = GradientCommunication::Fp32;
  at::Tensor wire;               // Fp16: the half buffer being reduced
  std::unique_ptr<PendingCollective> reduce;
  std::vector<at::Tensor> gathered_codes, gathered_ranges;  // Bw: every rank's codes and (lo, s)
};

// Hooks outlive nothing they point to: the synchronizer cuts the link when it goes away.
struct GradientSynchronizer::HookLink {
  std::mutex mutex;
  GradientSynchronizer* owner = nullptr;
};

namespace {

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::shared_ptr<void> link, std::mutex* mutex, GradientSynchronizer** owner, int parameter)
      : link_(std::move(link)), mutex_(mutex), owner_(owner), parameter_(parameter) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    std::lock_guard<std::mutex> lock(*mutex_);
    if (*owner_) (*owner_)->mark_ready(parameter_);
    return outputs;
  }
  const void* link() const { return link_.get(); }

 private:
  std::shared_ptr<void> link_;  // keeps mutex_ and owner_ alive
  std::mutex* mutex_;
  GradientSynchronizer** owner_;
  int parameter_;
};

}  // namespace

GradientSynchronizer::GradientSynchronizer(std::shared_ptr<Communicator> communicator,
                                           std::vector<at::Tensor> parameters, GradientSyncOptions options)
    : communicator_(std::move(communicator)), options_(options), link_(std::make_shared<HookLink>()) {
  if (!communicator_) throw Error("GradientSynchronizer: no communicator");
  if (options_.bucket_bytes <= 0)
    throw Error("GradientSynchronizer: bucket_bytes must be positive, got " + std::to_string(options_.bucket_bytes));
  std::unordered_set<const void*> seen;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const at::Tensor& p = parameters[i];
    if (!p.defined() || !p.requires_grad()) continue;
    if (p.scalar_type() != at::kFloat)
      throw Error("GradientSynchronizer: parameter " + std::to_string(i) + " is " +
                  std::string(c10::toString(p.scalar_type())) + "; only float32 parameters are supported");
    if (!seen.insert(p.unsafeGetTensorImpl()).second)
      throw Error("GradientSynchronizer: parameter " + std::to_string(i) + " is listed twice");
    parameters_.push_back(p);
  }

  // Reverse registration order, a new bucket once the current one reaches bucket_bytes.
  bucket_of_.assign(parameters_.size(), -1);
  for (int i = static_cast<int>(parameters_.size()) - 1; i >= 0; --i) {
    if (buckets_.empty() || buckets_.back()->numel * 4 >= options_.bucket_bytes)
      buckets_.push_back(std::make_unique<Bucket>());
    Bucket& b = *buckets_.back();
    b.params.push_back(i);
    b.offsets.push_back(b.numel);
    b.numel += parameters_[static_cast<size_t>(i)].numel();
    bucket_of_[static_cast<size_t>(i)] = static_cast<int>(buckets_.size()) - 1;
  }
  for (auto& b : buckets_) {
    const at::Tensor& first = parameters_[static_cast<size_t>(b->params.front())];
    b->flat = at::zeros({b->numel}, first.options().requires_grad(false));
    b->pending = static_cast<int>(b->params.size());
    bucket_params_.push_back(b->params);
  }
  ready_.assign(parameters_.size(), 0);

  link_->owner = this;
  if (options_.launch_from_hooks) {
    for (size_t i = 0; i < parameters_.size(); ++i) {
      std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(parameters_[i]);
      if (!accumulator)
        throw Error("GradientSynchronizer: parameter " + std::to_string(i) + " is not a leaf that accumulates gradients");
      accumulator->add_post_hook(
          std::make_unique<ReadyHook>(link_, &link_->mutex, &link_->owner, static_cast<int>(i)));
      accumulators_.push_back(std::move(accumulator));
    }
  }
}

GradientSynchronizer::~GradientSynchronizer() {
  {
    std::lock_guard<std::mutex> lock(link_->mutex);
    link_->owner = nullptr;
  }
  for (auto& accumulator : accumulators_) {
    auto& hooks = accumulator->post_hooks();
    hooks.erase(std::remove_if(hooks.begin(), hooks.end(),
                               [&](const std::unique_ptr<torch::autograd::FunctionPostHook>& hook) {
                                 auto* ours = dynamic_cast<ReadyHook*>(hook.get());
                                 return ours && ours->link() == link_.get();
                               }),
                hooks.end());
  }
}

void GradientSynchronizer::begin_step(int backward_bits, uint64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  step_begun_ = true;
  step_bits_ = backward_bits;
  step_ = step;
  // Parameters that became ready before begin_step (in Bw mode) can go now.
  if (options_.launch_from_hooks) launch_ready_buckets_locked(true);
}

void GradientSynchronizer::mark_ready(int parameter) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto p = static_cast<size_t>(parameter);
  Bucket& bucket = *buckets_[static_cast<size_t>(bucket_of_[p])];
  if (ready_[p]) {
    if (bucket.launched)
      throw Error("GradientSynchronizer: parameter " + std::to_string(parameter) +
                  " received another gradient after its bucket was sent; with several backward passes per step, "
                  "construct it with launch_from_hooks = false");
    return;
  }
  ready_[p] = 1;
  bucket.pending -= 1;
  launch_ready_buckets_locked(true);
}

void GradientSynchronizer::launch_ready_buckets_locked(bool from_hook) {
  // Bw buckets need the step's bit width and number, which only begin_step/finish_step give.
  if (options_.comm == GradientCommunication::Bw && !step_begun_) return;
  while (next_bucket_ < static_cast<int>(buckets_.size()) && buckets_[static_cast<size_t>(next_bucket_)]->pending == 0)
    launch_locked(next_bucket_++, from_hook);
}

void GradientSynchronizer::launch_locked(int index, bool from_hook) {
  Bucket& b = *buckets_[static_cast<size_t>(index)];
  for (size_t j = 0; j < b.params.size(); ++j) {
    const at::Tensor& param = parameters_[static_cast<size_t>(b.params[j])];
    at::Tensor slot = b.flat.slice(0, b.offsets[j], b.offsets[j] + param.numel());
    const at::Tensor& grad = param.grad();
    if (!grad.defined()) {
      slot.zero_();  // unused on this rank: contributes zeros
      continue;
    }
    if (grad.is_sparse())
      throw Error("GradientSynchronizer: parameter " + std::to_string(b.params[j]) + " has a sparse gradient");
    slot.copy_(grad.reshape({-1}));
  }

  GradientCommunication comm = options_.comm;
  if (comm == GradientCommunication::Bw && step_bits_ == 0) comm = GradientCommunication::Fp32;
  b.sent_as = comm;
  const std::string what = "gradient bucket " + std::to_string(index);
  switch (comm) {
    case GradientCommunication::Fp32:
      b.reduce = communicator_->start_all_reduce({b.flat}, ReduceOp::Sum, what);
      current_.bytes += b.flat.numel() * 4;
      break;
    case GradientCommunication::Fp16:
      b.wire = (b.flat / communicator_->world_size()).to(at::kHalf);
      b.reduce = communicator_->start_all_reduce({b.wire}, ReduceOp::Sum, what);
      current_.bytes += b.wire.numel() * 2;
      break;
    case GradientCommunication::Bw: {
      const PhiloxStream noise{options_.seed, mix_stream(static_cast<uint64_t>(index), step_)};
      const uint64_t first = static_cast<uint64_t>(communicator_->rank()) * static_cast<uint64_t>(b.numel);
      detail::WireCodes wire = detail::quantize_for_wire(b.flat, step_bits_, noise, first);
      const at::Tensor range = at::tensor({wire.lo, wire.s}, b.flat.options());
      b.gathered_codes = communicator_->all_gather(wire.codes, what + " codes");
      b.gathered_ranges = communicator_->all_gather(range, what + " ranges");
      current_.bytes += wire.codes.numel() * static_cast<int64_t>(wire.codes.element_size()) + 2 * 4;
      break;
    }
  }
  b.launched = true;
  current_.launch_order.push_back(index);
  current_.bucket_comm.push_back(comm);
  if (from_hook) current_.launched_during_backward += 1;
}

void GradientSynchronizer::finish_step(int backward_bits, uint64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (step_begun_ && (backward_bits != step_bits_ || step != step_))
    throw Error("GradientSynchronizer: finish_step(" + std::to_string(backward_bits) + ", " + std::to_string(step) +
                ") does not match begin_step(" + std::to_string(step_bits_) + ", " + std::to_string(step_) + ")");
  step_begun_ = true;
  step_bits_ = backward_bits;
  step_ = step;
  while (next_bucket_ < static_cast<int>(buckets_.size())) launch_locked(next_bucket_++, false);

  // Which parameters have a gradient on some rank (sum of 0/1 flags > 0).
  at::Tensor defined = at::zeros({static_cast<int64_t>(parameters_.size())},
                                 at::TensorOptions().dtype(at::kInt));
  int32_t* flags = defined.data_ptr<int32_t>();
  for (size_t i = 0; i < parameters_.size(); ++i) flags[i] = parameters_[i].grad().defined() ? 1 : 0;
  if (!parameters_.empty()) defined = defined.to(parameters_.front().device());
  communicator_->all_reduce({defined}, ReduceOp::Sum, "gradient definedness");
  current_.bytes += defined.numel() * 4;
  defined = defined.cpu();
  flags = defined.data_ptr<int32_t>();

  const int world = communicator_->world_size();
  for (auto& bucket : buckets_) {
    Bucket& b = *bucket;
    switch (b.sent_as) {
      case GradientCommunication::Fp32:
        b.reduce->wait();
        b.flat.div_(world);
        break;
      case GradientCommunication::Fp16:
        b.reduce->wait();
        b.flat.copy_(b.wire);
        break;
      case GradientCommunication::Bw: {
        at::Tensor sum;
        for (size_t r = 0; r < b.gathered_codes.size(); ++r) {
          const at::Tensor range = b.gathered_ranges[r].cpu();
          const at::Tensor x_hat =
              detail::dequantize_from_wire(b.gathered_codes[r], range[0].item<float>(), range[1].item<float>());
          sum = r == 0 ? x_hat : sum + x_hat;
        }
        b.flat.copy_(sum / world);
        break;
      }
    }
    b.reduce.reset();
    b.wire = at::Tensor();
    b.gathered_codes.clear();
    b.gathered_ranges.clear();
    for (size_t j = 0; j < b.params.size(); ++j) {
      at::Tensor& param = parameters_[static_cast<size_t>(b.params[j])];
      if (flags[b.params[j]] == 0) continue;  // undefined on every rank: stays undefined
      const at::Tensor average = b.flat.slice(0, b.offsets[j], b.offsets[j] + param.numel()).view(param.sizes());
      if (param.grad().defined())
        param.mutable_grad().copy_(average);
      else
        param.mutable_grad() = average.clone();
    }
    b.launched = false;
    b.pending = static_cast<int>(b.params.size());
  }

  std::fill(ready_.begin(), ready_.end(), 0);
  next_bucket_ = 0;
  step_begun_ = false;
  total_bytes_ += current_.bytes;
  last_step_ = std::move(current_);
  current_ = StepRecord{};
}

}  // namespace fractrain
