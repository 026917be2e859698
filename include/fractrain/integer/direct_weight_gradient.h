#pragma once
// The weight gradient's integer products on a kernel of fractrain's own: AVX-512 VNNI's 8-bit dot products
// (vpdpbusd: 16 int32 sums, each gaining four u8 x s8 products per instruction) straight from the codes, with no
// im2col patches and no oneDNN. oneDNN has no int8 backward-weights primitive, and its stand-ins (a convolution
// with samples and channels swapped, a matrix product over patches) fit a reduction over tens of thousands of
// positions poorly: they took the largest share of an integer step's products (docs/integer.md).
//
// The kernel keeps 16 output channels in the lanes of a vector and four consecutive output positions in each
// lane's four bytes, so one instruction adds, for one input channel and one tap, the products of 4 positions x 16
// output channels. Per sample it packs:
// - the gradient codes as [row][group of 4 columns][16 output channels][4 positions] (zeros past the row's end
//   and past the last channel), one 64-byte vector per (row, group, 16 channels);
// - the activation codes channels first, one plane per (input channel, column residue mod the stride), so that
//   the four input columns a tap reads for four consecutive outputs are four consecutive bytes, broadcast to every
//   lane; zeros in the padding, so that padding adds nothing (it is real 0, not code 0: the caller's corrections
//   count valid terms only).
// The same tile loop compiles for AVX-512 VNNI and for plain C++ (any CPU, exact, slow), which tests hold the
// vector form to bit for bit (tests/test_integer_weight_kernel.cpp); and where SIMDe's headers are found, the
// vector form once more on SIMDe's portable intrinsics, so that those tests run it on CPUs without VNNI too.
#include <cstdint>
#include <vector>

#include "fractrain/integer/integer_conv.h"

namespace fractrain::integer {

enum class DotProductIsa {
  Portable,    // plain C++: the reference form of the kernel, on any CPU
  Avx512Vnni,  // vpdpbusd on 512-bit vectors (AVX-512 VNNI and BW)
  // The Avx512Vnni form's very source on SIMDe's plain implementations of the intrinsics: slow, on any CPU, for
  // tests of the vector form's lanes and widening where the CPU cannot run it (emulated_vnni_built()).
  Avx512VnniEmulated,
};

// Whether this CPU runs DotProductIsa::Avx512Vnni.
bool cpu_has_avx512_vnni();

// Whether this build has DotProductIsa::Avx512VnniEmulated (it was built with SIMDe's headers, Debian's
// libsimde-dev, which scripts/setup.sh installs).
bool emulated_vnni_built();

// Whether the layers may use the Avx512Vnni form: the CPU has it, and on first use it formed the same sums as the
// portable form on a small problem with both tile shapes (3x3 stride 2, 1x1), since the vector form is compiled
// everywhere but runs only where a test of it could run too. A mismatch says so once on stderr and turns it off
// in this process.
bool direct_kernel_usable();

// exact[(o * taps + t) * I + i] += the sum over `samples` and the output positions p of dy[n][p][o] * x[n][q][i],
// q the input position tap t of p reads (no term where it is in the padding). x: stored uint8 codes [N][H*W][I]
// (unshifted); x_planar: the same codes as [N][I][H*W] (FeatureCodes::planar), or null (then the kernel
// transposes x itself, which costs about as much as the products at 16 channels); dy: int8 codes [N][P][O]. The
// int32 sums hold at most `max_terms` products each before they are added into int64. Returns false, adding
// nothing, where one output row alone holds more terms than that, or where `isa` is Avx512Vnni on a CPU without
// it, or Avx512VnniEmulated in a build without it.
bool direct_weight_products(const ConvGeometry& g, const uint8_t* x, const uint8_t* x_planar, const int8_t* dy,
                            const std::vector<int64_t>& samples, int64_t max_terms, DotProductIsa isa, int64_t* exact);

}  // namespace fractrain::integer
