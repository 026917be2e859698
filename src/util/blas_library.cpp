#include "fractrain/util/blas_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

namespace fractrain {
namespace {

// A symbol that only the named optimized BLAS exports. dlsym on a library's handle also searches the
// libraries it depends on, which matters for OpenBLAS: Debian's openblas libblas.so.3 is a thin wrapper that
// exports sgemm_ but leaves openblas_get_config to its dependency libopenblas.so.0.
struct Marker {
  const char* symbol;
  BlasKind kind;
};
constexpr Marker kMarkers[] = {
    {"openblas_get_config", BlasKind::OpenBlas},
    {"mkl_get_version", BlasKind::Mkl},
    {"MKL_Get_Version", BlasKind::Mkl},
    {"bli_info_get_version_str", BlasKind::Blis},
};

// The reference BLAS has no marker of its own, so it is recognised by where Debian installs it
// (/usr/lib/<triplet>/blas/libblas.so.3.x, package libblas3). A library with no marker elsewhere is Unknown:
// warning about a BLAS we cannot name would be a false alarm.
bool is_reference_blas_path(const std::filesystem::path& path) {
  return path.parent_path().filename() == "blas" && path.filename().string().rfind("libblas.so", 0) == 0;
}

struct DlCloser {
  void operator()(void* handle) const { dlclose(handle); }
};

}  // namespace

const char* to_string(BlasKind kind) {
  switch (kind) {
    case BlasKind::Reference: return "reference";
    case BlasKind::OpenBlas: return "OpenBLAS";
    case BlasKind::Mkl: return "MKL";
    case BlasKind::Blis: return "BLIS";
    case BlasKind::Unknown: break;
  }
  return "unknown";
}

std::optional<BlasLibrary> loaded_blas_library() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sgemm == nullptr || dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr || info.dli_fname[0] == '\0')
    return std::nullopt;

  BlasLibrary library;
  std::error_code error;
  const std::filesystem::path resolved = std::filesystem::canonical(info.dli_fname, error);
  library.path = error ? std::string(info.dli_fname) : resolved.string();

  // RTLD_NOLOAD: a handle to the already loaded object (the name the loader used), never a second copy.
  std::unique_ptr<void, DlCloser> handle(dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD));
  if (handle) {
    for (const Marker& marker : kMarkers) {
      if (dlsym(handle.get(), marker.symbol) != nullptr) {
        library.kind = marker.kind;
        return library;
      }
    }
  }
  if (is_reference_blas_path(library.path)) library.kind = BlasKind::Reference;
  return library;
}

std::string reference_blas_warning(const std::optional<BlasLibrary>& library) {
  if (!library || library->kind != BlasKind::Reference) return {};
  return "fractrain: warning: linear layers use the reference BLAS (" + library->path +
         "), about 10x slower; install libopenblas0-openmp (scripts/setup.sh does)";
}

}  // namespace fractrain
