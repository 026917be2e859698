#include "fractrain/util/cpu_features.h"

namespace fractrain {

bool cpu_has_avx512f() {
#if defined(__x86_64__) && defined(__GNUC__)
  // Not a namespace-scope constant: static initialisers may run before libgcc has read the CPU features.
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return available;
#else
  return false;
#endif
}

bool cpu_has_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") != 0;
  }();
  return available;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return available;
#else
  return false;
#endif
}

}  // namespace fractrain
