#include "fractrain/quant/device_quantize.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <atomic>
#include <cstddef>
#include <limits>
#include <string>

#include "fractrain/quant/kernel_threads.h"
#include "fractrain/quant/range_memo.h"
#include "fractrain/util/error.h"

#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../cuda/quantize_kernels.h"
#endif

namespace fractrain::device_quant {
namespace {

std::atomic<bool> cpu_emulation{false};

void check_on_device(const at::Tensor& t, const at::Tensor& x, at::ScalarType type, const char* what) {
  if (!t.defined() || t.device() != x.device() || t.scalar_type() != type || !t.is_contiguous())
    throw Error(std::string("device quantization: ") + what + " must be a contiguous " + c10::toString(type) +
                " tensor on " + x.device().str() + ", got " +
                (t.defined() ? t.toString() + " on " + t.device().str() : std::string("an undefined tensor")));
}

// The launchers (src/cuda/quantize_kernels.h), or none in a build without the CUDA kernels.
#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
constexpr auto kQuantizeRowsLauncher = &cuda::launch_quantize_rows;
constexpr auto kRunningRangeLauncher = &cuda::launch_running_range;
constexpr auto kOptionGradientLauncher = &cuda::launch_option_gradient;
#else
constexpr std::nullptr_t kQuantizeRowsLauncher = nullptr, kRunningRangeLauncher = nullptr,
                         kOptionGradientLauncher = nullptr;
#endif

// Launches a kernel (`launcher(args, stream)`, src/cuda/quantize_kernels.h) on the current CUDA stream of `on`'s
// device and checks the launch.
template <typename Args, typename Launcher>
void launch_on_cuda(const at::Tensor& on, const char* kernel, const Args& args, Launcher launcher) {
#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
  const c10::cuda::CUDAGuard guard(on.device());
  const cudaError_t status = launcher(args, c10::cuda::getCurrentCUDAStream(on.get_device()).stream());
  if (status != cudaSuccess)
    throw Error(std::string("CUDA kernel ") + kernel + " failed to launch: " + cudaGetErrorString(status));
#else
  (void)on;
  (void)args;
  (void)launcher;
  throw Error(std::string("device quantization: kernel ") + kernel +
              " needs a build with the CUDA kernels (build against a CUDA LibTorch)");
#endif
}

// Runs the quantization kernel on x's device: launched on the current CUDA stream, or every thread of its grid
// on the CPU (threads write disjoint elements, so any order and any split give the same result).
void run_quantize_rows(const quant_math::QuantizeRowsArgs& args, const at::Tensor& x) {
  if (x.is_cuda()) {
    launch_on_cuda(x, "quantize_rows", args, kQuantizeRowsLauncher);
    return;
  }
  const int64_t threads = quant_math::quantize_rows_threads(args);
  at::parallel_for(0, threads, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) quant_math::quantize_rows_thread(args, t);
  });
}

}  // namespace

bool has_cuda_kernels() {
#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool applies(const at::Tensor& x) {
  if (x.scalar_type() != at::kFloat) return false;
  if (x.is_cuda()) return has_cuda_kernels();
  return x.device().is_cpu() && cpu_emulation.load();
}

ScopedCpuEmulation::ScopedCpuEmulation() : previous_(cpu_emulation.exchange(true)) {}
ScopedCpuEmulation::~ScopedCpuEmulation() { cpu_emulation.store(previous_); }

at::Tensor range_of(const at::Tensor& x) {
  at::Tensor range = at::zeros({2}, x.options().dtype(at::kFloat));
  if (x.numel() == 0) return range;
  at::Tensor lo = range.select(0, 0), hi = range.select(0, 1);
  at::aminmax_out(lo, hi, x);
  return range;
}

at::Tensor range_of_running(const at::Tensor& x, const at::Tensor& runs) {
  if (runs.dim() != 1 || x.dim() < 1 || runs.size(0) != x.size(0))
    throw Error("device quantization: one running flag per sample expected (" +
                std::to_string(x.dim() > 0 ? x.size(0) : 0) + "), got " + c10::str(runs.sizes()));
  if (x.numel() == 0) return at::zeros({2}, x.options().dtype(at::kFloat));
  const auto [row_lo, row_hi] = at::aminmax(x.reshape({x.size(0), -1}), 1);
  const at::Tensor ran = runs.to(x.device()) > 0;
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor lo = at::where(ran, row_lo, inf).amin(), hi = at::where(ran, row_hi, -inf).amax();
  return at::where(ran.any(), at::stack({lo, hi}), at::zeros({2}, lo.options())).to(at::kFloat).contiguous();
}

at::Tensor stream_tensor(const PhiloxStream& noise, const at::Tensor& like) {
  return at::full({1}, static_cast<int64_t>(noise.stream), like.options().dtype(at::kLong));
}

at::Tensor widths_tensor(const std::vector<int>& bits, const at::Tensor& like) {
  const std::vector<int32_t> widths(bits.begin(), bits.end());
  at::Tensor host = at::tensor(widths, at::TensorOptions().dtype(at::kInt));
  return like.device().is_cpu() ? host : host.to(like.device());
}

RowQuantization RowQuantization::over(const at::Tensor& range) {
  RowQuantization q;
  q.lo = range.narrow(0, 0, 1);
  q.hi = range.narrow(0, 1, 1);
  return q;
}

at::Tensor& quantize_rows_out(const at::Tensor& x, const RowQuantization& q, at::Tensor& out) {
  RECORD_USER_SCOPE("fractrain::device_quantize_rows");
  if (x.scalar_type() != at::kFloat) throw Error("device quantization: expected a float tensor, got " + x.toString());
  if (!out.defined() || out.sizes() != x.sizes() || out.device() != x.device() || out.scalar_type() != at::kFloat)
    throw Error("device quantization: `out` must have the shape, dtype and device of the input " + x.toString() +
                " " + c10::str(x.sizes()));
  if (x.numel() == 0) return out;
  range_memo::forget(out);  // rewritten by a kernel (often in place: out is x)
  if (q.rows < 1 || x.numel() % q.rows != 0)
    throw Error("device quantization: " + std::to_string(x.numel()) + " elements do not split into " +
                std::to_string(q.rows) + " rows");
  const int64_t ranges = q.range_stride == 0 ? 1 : q.rows;
  check_on_device(q.lo, x, at::kFloat, "the range's lower ends");
  check_on_device(q.hi, x, at::kFloat, "the range's upper ends");
  if (q.lo.numel() < ranges || q.hi.numel() < ranges)
    throw Error("device quantization: " + std::to_string(ranges) + " ranges needed, got " +
                std::to_string(q.lo.numel()));
  if (q.row_bits.defined()) {
    check_on_device(q.row_bits, x, at::kInt, "the per-row widths");
    if (q.row_bits.numel() != q.rows)
      throw Error("device quantization: " + std::to_string(q.row_bits.numel()) + " widths for " +
                  std::to_string(q.rows) + " rows");
  }
  if (q.stochastic) {
    if (q.noise_step.defined())
      check_on_device(q.noise_step, x, at::kLong, "the noise step");
    else
      check_on_device(q.noise_stream, x, at::kLong, "the noise stream");
  }

  const at::Tensor input = x.contiguous();
  at::Tensor target = out.is_contiguous() ? out : at::empty(input.sizes(), input.options());
  quant_math::QuantizeRowsArgs args;
  args.x = input.data_ptr<float>();
  args.y = target.data_ptr<float>();
  args.rows = q.rows;
  args.row_len = input.numel() / q.rows;
  args.lo = q.lo.data_ptr<float>();
  args.hi = q.hi.data_ptr<float>();
  args.range_stride = q.range_stride;
  args.row_bits = q.row_bits.defined() ? q.row_bits.data_ptr<int32_t>() : nullptr;
  args.bits = q.bits;
  args.snap_zero_point = q.snap_zero_point;
  args.stochastic = q.stochastic;
  if (q.stochastic) {
    args.noise_key = q.noise_key;
    if (q.noise_step.defined()) {
      args.noise_step = reinterpret_cast<const uint64_t*>(q.noise_step.data_ptr<int64_t>());
      args.noise_layer = q.noise_layer;
    } else {
      args.noise_stream = reinterpret_cast<const uint64_t*>(q.noise_stream.data_ptr<int64_t>());
    }
    args.noise_first_index = q.noise_first_index;
  }
  run_quantize_rows(args, input);
  if (!target.is_same(out)) out.copy_(target);
  return out;
}

at::Tensor quantize_over_own_range(const at::Tensor& x, int bits, bool snap_zero_point) {
  if (bits == 0 || x.numel() == 0) return x;
  RowQuantization q = RowQuantization::over(range_of(x));
  q.bits = bits;
  q.snap_zero_point = snap_zero_point;
  at::Tensor out = at::empty(x.sizes(), x.options());
  return quantize_rows_out(x, q, out);
}

at::Tensor quantize_per_channel(const at::Tensor& w, int bits, bool snap_zero_point) {
  if (bits == 0 || w.numel() == 0) return w;
  const at::Tensor rows = w.contiguous().view({w.size(0), -1});
  auto [lo, hi] = at::aminmax(rows, 1);
  RowQuantization q;
  q.lo = lo.contiguous();
  q.hi = hi.contiguous();
  q.range_stride = 1;
  q.rows = w.size(0);
  q.bits = bits;
  q.snap_zero_point = snap_zero_point;
  at::Tensor out = at::empty(w.sizes(), w.options());
  return quantize_rows_out(rows.view(w.sizes()), q, out);
}

at::Tensor quantize_per_input_channel(const at::Tensor& w, int bits, bool snap_zero_point) {
  if (w.dim() < 2)
    throw Error("device quantization: expected a weight [out, in, ...] of 2 or more dimensions, got " +
                std::to_string(w.dim()));
  if (bits == 0 || w.numel() == 0) return w;
  // Input channels as rows, as fake_quantize_per_input_channel does on the CPU.
  const at::Tensor by_input = w.transpose(0, 1).contiguous();
  return quantize_per_channel(by_input, bits, snap_zero_point).transpose(0, 1).contiguous();
}

at::Tensor option_inner_products(const at::Tensor& x_in, const at::Tensor& g_in, const at::Tensor& option_bits,
                                 const at::Tensor& range, bool snap_zero_point) {
  RECORD_USER_SCOPE("fractrain::device_option_gradient");
  if (x_in.scalar_type() != at::kFloat || g_in.scalar_type() != at::kFloat || !g_in.sizes().equals(x_in.sizes()) ||
      x_in.dim() < 1)
    throw Error("device option gradient: x and g must be float tensors of one shape [N, ...], got " +
                x_in.toString() + " " + c10::str(x_in.sizes()) + " and " + g_in.toString() + " " +
                c10::str(g_in.sizes()));
  check_on_device(option_bits, x_in, at::kInt, "the options' widths");
  check_on_device(range, x_in, at::kFloat, "the range");
  const at::Tensor x = x_in.contiguous(), g = g_in.contiguous();
  const int64_t rows = x.size(0), options = option_bits.numel();
  at::Tensor out = at::zeros({rows, options}, x.options());
  if (rows == 0 || options == 0) return out;
  quant_math::OptionGradientArgs args;
  args.x = x.data_ptr<float>();
  args.g = g.data_ptr<float>();
  args.out = out.data_ptr<float>();
  args.rows = rows;
  args.row_len = x.numel() / rows;
  args.option_bits = option_bits.data_ptr<int32_t>();
  args.options = options;
  args.lo = range.data_ptr<float>();
  args.hi = args.lo + 1;
  args.snap_zero_point = snap_zero_point;
  if (x.is_cuda()) {
    launch_on_cuda(x, "option_gradient", args, kOptionGradientLauncher);
    return out;
  }
  // The kernel's blocks: one per (row, option) pair, its lanes' partial sums added in the kernel's tree.
  constexpr int lanes = quant_math::kOptionGradientLanes;
  at::parallel_for(0, rows * options, 1, [&](int64_t begin, int64_t end) {
    double partial[lanes];
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t row = pair / options, option = pair % options;
      for (int lane = 0; lane < lanes; ++lane)
        partial[lane] = quant_math::option_gradient_partial(args, row, option, lane, lanes);
      for (int half = lanes / 2; half > 0; half /= 2)
        for (int lane = 0; lane < half; ++lane) partial[lane] += partial[lane + half];
      args.out[row * options + option] = static_cast<float>(partial[0]);
    }
  });
  return out;
}

void update_running_range(at::Tensor& running_lo, at::Tensor& running_span, at::Tensor& seen,
                          const at::Tensor& batch_range, float momentum) {
  for (const at::Tensor* t : {&running_lo, &running_span, &seen})
    check_on_device(*t, batch_range, at::kFloat, "a running statistic");
  quant_math::RunningRangeArgs args;
  args.running_lo = running_lo.data_ptr<float>();
  args.running_span = running_span.data_ptr<float>();
  args.seen = seen.data_ptr<float>();
  args.batch_lo = batch_range.data_ptr<float>();
  args.batch_hi = args.batch_lo + 1;
  args.momentum = momentum;
  if (batch_range.is_cuda()) {
    launch_on_cuda(batch_range, "running_range", args, kRunningRangeLauncher);
    return;
  }
  quant_math::running_range_thread(args);
}

void update_running_range_where(at::Tensor& running_lo, at::Tensor& running_span, at::Tensor& seen,
                                const at::Tensor& batch_range, float momentum, const at::Tensor& update) {
  const at::Tensor lo = running_lo.clone(), span = running_span.clone(), was_seen = seen.clone();
  update_running_range(running_lo, running_span, seen, batch_range, momentum);
  running_lo.copy_(at::where(update, running_lo, lo));
  running_span.copy_(at::where(update, running_span, span));
  seen.copy_(at::where(update, seen, was_seen));
}

at::Tensor evaluation_range(const at::Tensor& running_lo, const at::Tensor& running_span, const at::Tensor& seen,
                            const at::Tensor& x) {
  const at::Tensor running = at::cat({running_lo, running_lo + running_span});
  return at::where(seen > 0, running, range_of(x));
}

}  // namespace fractrain::device_quant
