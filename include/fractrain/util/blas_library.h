#pragma once
#include <optional>
#include <string>

namespace fractrain {

// Which BLAS the dynamic loader gave LibTorch. Debian's LibTorch calls the Fortran BLAS (sgemm_ and friends
// from libblas.so.3), and which library answers is chosen at run time by the libblas.so.3 alternative or by
// LD_LIBRARY_PATH: the reference netlib BLAS (libblas3) makes every Linear and matmul about 10x slower than
// OpenBLAS, without any error. Reporting it is the only way a user finds out.
enum class BlasKind {
  Reference,  // netlib reference BLAS (Debian's libblas3)
  OpenBlas,
  Mkl,
  Blis,
  Unknown,  // some other library: we cannot tell whether it is fast, so we do not warn about it
};

struct BlasLibrary {
  BlasKind kind = BlasKind::Unknown;
  std::string path;  // the shared object that provides sgemm_, symbolic links resolved
};

const char* to_string(BlasKind kind);

// The library that provides sgemm_ to this process; nullopt when no shared object exports it (a LibTorch that
// links its BLAS statically, such as the MKL inside a pip wheel, where there is nothing to choose).
std::optional<BlasLibrary> loaded_blas_library();

// The one-line warning to print when `library` is the reference BLAS; empty otherwise.
std::string reference_blas_warning(const std::optional<BlasLibrary>& library);

}  // namespace fractrain
