#include "fractrain/integer/integer_support.h"

#ifdef FRACTRAIN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace fractrain {
namespace {

IntegerSupport probe() {
  IntegerSupport support;
#ifndef FRACTRAIN_HAVE_ONEDNN
  support.detail = "this build has no oneDNN (install libdnnl-dev and rebuild)";
#else
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
    default:
      support.detail =
          "this CPU has no 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX): oneDNN's int8 kernels "
          "would add products in saturating 16-bit pairs, which is not exact";
  }
#endif
  return support;
}

}  // namespace

const IntegerSupport& integer_support() {
  static const IntegerSupport support = probe();
  return support;
}

}  // namespace fractrain
