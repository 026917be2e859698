// Which BLAS LibTorch got from the dynamic loader (util/blas_library.h), and the warning `fractrain train`
// prints when it is the ~10x slower reference BLAS.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "fractrain/util/blas_library.h"
#include "test_support.h"

using fractrain::BlasKind;
using fractrain::BlasLibrary;
using fractrain::test_support::run_shell;
using fractrain::test_support::TempDir;

namespace {

// The shared objects mapped into this process, as the kernel lists them: an account of what is loaded that does
// not go through dlsym/dladdr.
std::string process_maps() {
  std::ifstream in("/proc/self/maps");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Debian installs the reference BLAS (package libblas3, which LibTorch depends on) next to OpenBLAS's directory:
// /usr/lib/<triplet>/blas/libblas.so.3 beside /usr/lib/<triplet>/openblas-openmp/libblas.so.3.
std::filesystem::path reference_blas_next_to(const std::string& openblas_path) {
  return std::filesystem::path(openblas_path).parent_path().parent_path() / "blas" / "libblas.so.3";
}

const std::string kTinyTraining =
    "train -q --set model.name=resnet8 --set data.train_subset=64 --set data.test_subset=32 "
    "--set train.batch_size=32 --set train.iterations=1 ";

// A LibTorch with its BLAS linked in (the pip wheels: MKL inside libtorch_cpu.so) exports sgemm_ itself and never
// loads libblas.so.3, so Debian's choice of libblas.so.3 cannot slow it down.
bool blas_inside_libtorch(const BlasLibrary& library) {
  return std::filesystem::path(library.path).filename().string().rfind("libtorch", 0) == 0;
}

}  // namespace

TEST(BlasLibrary, IdentifiesTheLoadedOpenBlas) {
  // The test binary is linked against LibTorch, which needs libblas.so.3: a matmul makes sure it is in use.
  const torch::Tensor product = torch::mm(torch::ones({4, 3}), torch::ones({3, 2}));
  ASSERT_FLOAT_EQ(product[0][0].item<float>(), 3.0f);

  const std::optional<BlasLibrary> library = fractrain::loaded_blas_library();
  ASSERT_TRUE(library.has_value()) << "no loaded shared object exports sgemm_";
  if (blas_inside_libtorch(*library)) {
    EXPECT_EQ(library->kind, BlasKind::Unknown) << library->path;
    EXPECT_EQ(fractrain::reference_blas_warning(library), "");
    return;
  }
  EXPECT_EQ(library->kind, BlasKind::OpenBlas)
      << "sgemm_ comes from " << library->path << " (" << fractrain::to_string(library->kind)
      << "); scripts/setup.sh installs libopenblas0-openmp, which Debian then selects as libblas.so.3";
  EXPECT_CONTAINS(process_maps(), library->path) << "the reported library is not mapped into the process";
  EXPECT_EQ(fractrain::reference_blas_warning(library), "");
}

TEST(BlasLibrary, WarnsOnlyAboutTheReferenceBlas) {
  EXPECT_EQ(fractrain::reference_blas_warning(std::nullopt), "");
  EXPECT_EQ(fractrain::reference_blas_warning(BlasLibrary{BlasKind::Unknown, "/opt/x/libblas.so.3"}), "");
  EXPECT_EQ(fractrain::reference_blas_warning(BlasLibrary{BlasKind::Mkl, "/opt/intel/libmkl_rt.so"}), "");
  const std::string warning =
      fractrain::reference_blas_warning(BlasLibrary{BlasKind::Reference, "/usr/lib/blas/libblas.so.3.11.0"});
  EXPECT_EQ(warning,
            "fractrain: warning: linear layers use the reference BLAS (/usr/lib/blas/libblas.so.3.11.0), about 10x "
            "slower; install libopenblas0-openmp (scripts/setup.sh does)");
}

TEST(BlasLibrary, TrainWarnsWhenTheLoaderPicksTheReferenceBlas) {
  ASSERT_FASHION_MNIST_INSTALLED();
  const std::optional<BlasLibrary> loaded = fractrain::loaded_blas_library();
  ASSERT_TRUE(loaded.has_value());
  if (blas_inside_libtorch(*loaded)) {
    // The reference BLAS first on the loader's path changes nothing for such a LibTorch: no warning either.
    TempDir temp("fractrain_reference_blas");
    const auto run = run_shell("LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas " + std::string(FRACTRAIN_CLI_PATH) +
                               " " + kTinyTraining + "--set output.dir=" + temp.file("run"));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_EQ(run.output.find("reference BLAS"), std::string::npos) << run.output;
    return;
  }
  const std::filesystem::path reference = reference_blas_next_to(loaded->path);
  ASSERT_TRUE(std::filesystem::exists(reference))
      << reference << " is missing: the reference BLAS comes with libblas3 (scripts/setup.sh installs it)";

  // A directory whose libblas.so.3 is the reference BLAS, put first on the loader's path, as a machine without
  // OpenBLAS would have it.
  TempDir temp("fractrain_reference_blas");
  std::filesystem::create_directories(temp.file("lib"));
  std::filesystem::create_symlink(reference, temp.file("lib/libblas.so.3"));

  const auto slow = run_shell("LD_LIBRARY_PATH=" + temp.file("lib") + " " + FRACTRAIN_CLI_PATH + " " +
                              kTinyTraining + "--set output.dir=" + temp.file("slow"));
  ASSERT_EQ(slow.exit_code, 0) << slow.output;
  EXPECT_CONTAINS(slow.output, "fractrain: warning: linear layers use the reference BLAS (" +
                                   std::filesystem::canonical(reference).string() + "), about 10x slower");

  const auto fast = run_shell(std::string(FRACTRAIN_CLI_PATH) + " " + kTinyTraining + "--set output.dir=" +
                              temp.file("fast"));
  ASSERT_EQ(fast.exit_code, 0) << fast.output;
  EXPECT_EQ(fast.output.find("reference BLAS"), std::string::npos) << fast.output;
}
