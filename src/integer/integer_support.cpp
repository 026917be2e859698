#include "fractrain/integer/integer_support.h"

#include <atomic>

#include "onednn_int8.h"

#ifdef FRACTRAIN_HAVE_ONEDNN
#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#endif

namespace fractrain {
namespace {

#ifdef FRACTRAIN_HAVE_ONEDNN
// The std::call_once thunks with which libdnnl 2.6 (Debian) sets up its GEMM kernels once (`nm -D` on
// libdnnl.so.2). The pip wheels' LibTorch carries its own oneDNN and exports thunks of the same names; the
// dynamic loader binds libdnnl's calls to whichever library comes first, and that was LibTorch's: libdnnl's
// kernel tables then stayed unset, and its int8 GEMM returned without writing its result (seen in the LibTorch
// 2.11 build: wrong weight gradients). The other int8 primitives were right, but nothing says they stay so.
constexpr const char* kGemmSetupThunks[] = {
    "_ZZNSt9once_flag18_Prepare_executionC4IZSt9call_onceIZN4dnnl4impl3cpu3x6411gemm_info_tIaaiE8jit_initEvEUlvE_"
    "JEEvRS_OT_DpOT0_EUlvE_EERSB_ENUlvE_4_FUNEv",
    "_ZZNSt9once_flag18_Prepare_executionC4IZSt9call_onceIZN4dnnl4impl3cpu3x6411gemm_info_tIahiE8jit_initEvEUlvE_"
    "JEEvRS_OT_DpOT0_EUlvE_EERSB_ENUlvE_4_FUNEv",
    "_ZZNSt9once_flag18_Prepare_executionC4IZSt9call_onceIZN4dnnl4impl3cpu3x6411gemm_info_tIfffE8jit_initEvEUlvE_"
    "JEEvRS_OT_DpOT0_EUlvE_EERSB_ENUlvE_4_FUNEv",
    "_ZZNSt9once_flag18_Prepare_executionC4IZSt9call_onceIZN4dnnl4impl3cpu3x6411gemm_info_tINS4_10bfloat16_tES8_fE8"
    "jit_initEvEUlvE_JEEvRS_OT_DpOT0_EUlvE_EERSC_ENUlvE_4_FUNEv",
};

// The library that takes the place of libdnnl's own GEMM setup in this process, or "" when none does.
std::string library_interposing_on_onednn() {
  void* onednn = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_NOLOAD);
  if (!onednn) return "";
  std::string interposer;
  for (const char* name : kGemmSetupThunks) {
    void* own = dlsym(onednn, name);
    void* bound = dlsym(RTLD_DEFAULT, name);
    Dl_info info{};
    if (own && bound && own != bound) {
      interposer = dladdr(bound, &info) && info.dli_fname ? info.dli_fname : "another library";
      break;
    }
  }
  dlclose(onednn);
  return interposer;
}
#endif

IntegerSupport probe() {
  IntegerSupport support;
#ifndef FRACTRAIN_HAVE_ONEDNN
  support.detail = "this build has no oneDNN (install libdnnl-dev and rebuild)";
#else
  if (const std::string other = library_interposing_on_onednn(); !other.empty()) {
    support.detail = "integer execution is off in this process: " + other +
                     " (a LibTorch with its own oneDNN inside) takes the place of libdnnl's internal GEMM setup, so "
                     "oneDNN's int8 products would come out wrong; integer execution needs a LibTorch that uses the "
                     "system's oneDNN (Debian's libtorch-dev)";
    return support;
  }
  using dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case cpu_isa::avx512_core_amx:
      support = {true, "avx512_core_amx"};
      break;
    case cpu_isa::avx512_core_bf16:
      support = {true, "avx512_core_vnni+bf16"};
      break;
    case cpu_isa::avx512_core_vnni:
      support = {true, "avx512_core_vnni"};
      break;
    case cpu_isa::avx2_vnni:
      support = {true, "avx2_vnni"};
      break;
    case cpu_isa::avx512_core:
    case cpu_isa::avx2: {
      const std::string isa = dnnl::get_effective_cpu_isa() == cpu_isa::avx2 ? "avx2" : "avx512_core";
      // Exact up to 7-bit unsigned codes by the arithmetic of its kernels (integer_support.h); held to the plain
      // loops once on the worst codes before anything relies on it.
      std::string mismatch;
      try {
        mismatch = integer::pair_saturating_products_mismatch();
      } catch (const std::exception& e) {  // out of a static initialiser, an exception would leave no answer at all
        mismatch = std::string("the check itself failed: ") + e.what();
      }
      if (!mismatch.empty()) {
        support.detail = "oneDNN's int8 products on this CPU (" + isa + ", no 8-bit dot products) differ from exact " +
                         "sums even for 7-bit codes (" + mismatch + ")";
        break;
      }
      support = {true,
                 isa + " without 8-bit dot products: exact for codes up to 7 bits, so passes with 8-bit activations "
                       "or error gradients run simulated",
                 false, 7};
      break;
    }
    default:
      support.detail =
          "this CPU has neither 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX) nor AVX2, on which "
          "oneDNN's int8 products would be exact for codes up to 7 bits";
  }
#endif
  return support;
}

std::atomic<int> assumed_support{0};  // live AssumeIntegerSupportForTests guards
std::atomic<int> forced_plain_loops{0};  // those of them with Products::PlainLoops
std::atomic<int> forced_up_to_7_bits{0};  // those with Products::PlainLoopsUpTo7Bits

}  // namespace

const IntegerSupport& integer_support() {
  static const IntegerSupport support = probe();
  // Tests assume every width up to 8 bits: where the real products are exact only below that, the loops stand in.
  static const bool exact_at_8_bits = support.available && support.max_unsigned_bits == 8;
  static const IntegerSupport assumed{
      true,
      exact_at_8_bits ? support.detail + ", assumed by a test (AssumeIntegerSupportForTests)"
                      : "assumed by a test (AssumeIntegerSupportForTests): products on plain loops, since " +
                            support.detail,
      !exact_at_8_bits, 8};
  static const IntegerSupport plain_loops{
      true, "assumed by a test (AssumeIntegerSupportForTests): products on plain loops", true, 8};
  static const IntegerSupport plain_loops_up_to_7_bits{
      true, "assumed by a test (AssumeIntegerSupportForTests): products on plain loops, exact up to 7-bit codes", true,
      7};
  if (forced_up_to_7_bits.load() > 0) return plain_loops_up_to_7_bits;
  if (forced_plain_loops.load() > 0) return plain_loops;
  return assumed_support.load() > 0 ? assumed : support;
}

std::string unsigned_width_refusal(const std::vector<int>& widths, const char* operand) {
  const int most = integer_support().max_unsigned_bits;
  for (int bits : widths)
    if (bits > most)
      return std::string(bits == 8 ? "an " : "a ") + std::to_string(bits) + "-bit " + operand +
             ": this CPU has no 8-bit dot products, and its int8 products add u8 x s8 pairs in saturating 16 bits, "
             "exact only for codes up to " + std::to_string(most) +
             " bits (CPUs with AVX-512 VNNI, AVX-VNNI or AMX take 8)";
  return {};
}

AssumeIntegerSupportForTests::AssumeIntegerSupportForTests(Products products) : products_(products) {
  ++assumed_support;
  if (products_ == Products::PlainLoops) ++forced_plain_loops;
  if (products_ == Products::PlainLoopsUpTo7Bits) ++forced_up_to_7_bits;
}
AssumeIntegerSupportForTests::~AssumeIntegerSupportForTests() {
  if (products_ == Products::PlainLoops) --forced_plain_loops;
  if (products_ == Products::PlainLoopsUpTo7Bits) --forced_up_to_7_bits;
  --assumed_support;
}

}  // namespace fractrain
