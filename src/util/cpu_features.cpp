#include "fractrain/util/cpu_features.h"

namespace fractrain {
namespace {

struct CpuFeatures {
  bool avx512f = false, avx512bw = false, avx512vnni = false, fma = false, avx2 = false;
};

// Read once, on first use. Not a namespace-scope constant: static initialisers may run before libgcc has read the
// CPU's features (hence __builtin_cpu_init too).
const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    f.avx512f = __builtin_cpu_supports("avx512f") != 0;
    f.avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    f.avx512vnni = __builtin_cpu_supports("avx512vnni") != 0;
    f.fma = __builtin_cpu_supports("fma") != 0;
    f.avx2 = __builtin_cpu_supports("avx2") != 0;
#endif
    return f;
  }();
  return features;
}

}  // namespace

bool cpu_has_avx512f() { return cpu_features().avx512f; }
bool cpu_has_avx512bw() { return cpu_features().avx512bw; }
bool cpu_has_avx512vnni() { return cpu_features().avx512vnni; }
bool cpu_has_fma() { return cpu_features().fma; }
bool cpu_has_avx2() { return cpu_features().avx2; }

}  // namespace fractrain
