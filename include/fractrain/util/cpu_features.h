#pragma once
// What the CPU running this process can do, for kernels that pick a vectorised version at run time.

namespace fractrain {

// AVX-512 Foundation (false off x86-64 or without a GCC-compatible compiler's CPU detection).
bool cpu_has_avx512f();
// AVX-512 byte and word instructions, and AVX-512 VNNI's 8-bit dot products (the same caveat).
bool cpu_has_avx512bw();
bool cpu_has_avx512vnni();
// FMA3 (the same caveat; every AVX-512 CPU has it, but a virtual machine may hide it).
bool cpu_has_fma();
// AVX2 (the same caveat).
bool cpu_has_avx2();

}  // namespace fractrain
