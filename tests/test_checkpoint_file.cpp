// Checkpoint container and atomic writes: round trip, and every way a damaged or foreign file is refused.
#include "fractrain/train/checkpoint_file.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/serialize.h>

#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "test_support.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
using namespace test_support;

void put_le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Builds a container by hand, independently of save_checkpoint, to test what the reader accepts.
std::string container(uint32_t version, const std::string& meta, const std::string& payload) {
  std::string bytes = "FRACTRAIN-CHECKPOINT\n";
  put_le(bytes, version, 4);
  put_le(bytes, meta.size(), 8);
  bytes += meta;
  put_le(bytes, payload.size(), 8);
  bytes += payload;
  put_le(bytes, crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())), 4);
  return bytes;
}

class CheckpointFile : public testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }

  static CheckpointMeta sample_meta() {
    CheckpointMeta meta;
    meta.model_name = "resnet20";
    meta.step = 1234;
    meta.epoch = 5;
    meta.extra = {{"config", {{"train", {{"batch_size", 128}}}}}, {"trainer", {{"best_accuracy", 0.875}}}};
    return meta;
  }

  static torch::Tensor sample_tensor() { return torch::arange(0, 24, torch::kFloat32).reshape({2, 3, 4}) / 7; }

  // Saves a checkpoint holding `sample_tensor()` (scaled by `scale`) under the key "weights".
  static void save_sample(const std::string& p, float scale = 1, int64_t step = 1234, int64_t elements = 0) {
    CheckpointMeta meta = sample_meta();
    meta.step = step;
    save_checkpoint(p, meta, [&](torch::serialize::OutputArchive& archive) {
      archive.write("weights", sample_tensor() * scale);
      archive.write("step_tensor", torch::tensor({step}));
      if (elements > 0) archive.write("bulk", torch::ones({elements}));
    });
  }

  static std::string load_error(const std::string& p) {
    return error_of([&] { load_checkpoint(p, "resnet20", [](torch::serialize::InputArchive&) {}); });
  }

  TempDir dir_{"fractrain_ckpt"};
};

TEST_F(CheckpointFile, RoundTripsMetaAndTensors) {
  const std::string p = path("a.ckpt");
  save_sample(p);
  torch::Tensor weights;
  torch::Tensor step;
  const CheckpointMeta meta = load_checkpoint(p, "resnet20", [&](torch::serialize::InputArchive& archive) {
    archive.read("weights", weights);
    archive.read("step_tensor", step);
  });
  EXPECT_EQ(meta.format_version, kCheckpointFormatVersion);
  EXPECT_EQ(meta.model_name, "resnet20");
  EXPECT_EQ(meta.step, 1234);
  EXPECT_EQ(meta.epoch, 5);
  EXPECT_EQ(meta.extra, sample_meta().extra);
  ASSERT_TRUE(weights.defined());
  EXPECT_TRUE(torch::equal(weights, sample_tensor()));
  EXPECT_EQ(step.item<int64_t>(), 1234);

  const CheckpointMeta only_meta = read_checkpoint_meta(p);
  EXPECT_EQ(only_meta.model_name, "resnet20");
  EXPECT_EQ(only_meta.step, 1234);
  EXPECT_EQ(only_meta.extra, sample_meta().extra);

  EXPECT_EQ(read_file(p).rfind("FRACTRAIN-CHECKPOINT\n", 0), 0u);
  EXPECT_FALSE(fs::exists(p + ".tmp." + std::to_string(::getpid())));
}

TEST_F(CheckpointFile, EmptyExpectedModelAcceptsAnyModelAndMapLocationLoadsOnCpu) {
  const std::string p = path("a.ckpt");
  save_sample(p);
  torch::Tensor weights;
  load_checkpoint(
      p, "", [&](torch::serialize::InputArchive& a) { a.read("weights", weights); }, "cpu");
  EXPECT_TRUE(weights.device().is_cpu());
  EXPECT_TRUE(torch::equal(weights, sample_tensor()));
  EXPECT_CONTAINS(error_of([&] {
                    load_checkpoint(
                        p, "", [](torch::serialize::InputArchive&) {}, "gpu");
                  }),
                  "not a device");
}

TEST_F(CheckpointFile, SaveReplacesAnExistingCheckpoint) {
  const std::string p = path("a.ckpt");
  save_sample(p, 1, 10);
  save_sample(p, 2, 20);
  torch::Tensor weights;
  const auto meta =
      load_checkpoint(p, "resnet20", [&](torch::serialize::InputArchive& a) { a.read("weights", weights); });
  EXPECT_EQ(meta.step, 20);
  EXPECT_TRUE(torch::equal(weights, sample_tensor() * 2));
}

TEST_F(CheckpointFile, TruncatedFilesAreRefusedAtEveryCut) {
  const std::string good = path("good.ckpt");
  save_sample(good);
  const std::string bytes = read_file(good);
  const size_t n = bytes.size();
  const std::vector<size_t> cuts = {0, 1, 10, 21, 23, 25, 30, 33, 40, n / 2, n - 50, n - 5, n - 4, n - 3, n - 1};
  for (const size_t cut : cuts) {
    const std::string p = path("cut.ckpt");
    write_file(p, bytes.substr(0, cut));
    const std::string message = load_error(p);
    EXPECT_CONTAINS(message, "truncated");
    EXPECT_CONTAINS(message, p);
    EXPECT_CONTAINS(error_of([&] { read_checkpoint_meta(p); }), "truncated");
  }
}

TEST_F(CheckpointFile, TrailingBytesAreRefused) {
  const std::string p = path("a.ckpt");
  save_sample(p);
  write_file(p, read_file(p) + "x");
  EXPECT_CONTAINS(load_error(p), "corrupt");
}

TEST_F(CheckpointFile, EverySingleBitFlipIsRefused) {
  const std::string good = path("good.ckpt");
  save_sample(good);
  const std::string bytes = read_file(good);
  const size_t n = bytes.size();
  const size_t meta_start = 21 + 4 + 8;
  // Magic, version, meta length, meta text, payload length, payload start/middle/end, checksum.
  const std::vector<size_t> positions = {0,     20,    21,    24,   25, 32, meta_start, meta_start + 10,
                                         n / 2, n - 5, n - 4, n - 1};
  for (const size_t pos : positions) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = bytes;
      flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << bit));
      const std::string p = path("flip.ckpt");
      write_file(p, flipped);
      const std::string message = load_error(p);
      EXPECT_FALSE(message.empty()) << "byte " << pos << " bit " << bit;
      EXPECT_CONTAINS(message, p);
    }
  }
  // A flip in the payload reaches the checksum, and says so.
  std::string flipped = bytes;
  flipped[n / 2] = static_cast<char>(flipped[n / 2] ^ 1);
  write_file(path("flip.ckpt"), flipped);
  EXPECT_CONTAINS(load_error(path("flip.ckpt")), "corrupt: checksum mismatch");
}

TEST_F(CheckpointFile, WrongModelIsRefused) {
  const std::string p = path("a.ckpt");
  CheckpointMeta meta = sample_meta();
  meta.model_name = "resnet38";
  save_checkpoint(p, meta, [](torch::serialize::OutputArchive& a) { a.write("w", torch::zeros({1})); });
  bool payload_read = false;
  const std::string message =
      error_of([&] { load_checkpoint(p, "resnet20", [&](torch::serialize::InputArchive&) { payload_read = true; }); });
  EXPECT_CONTAINS(message, "checkpoint '" + p + "' was written for model resnet38 but this run uses resnet20");
  EXPECT_FALSE(payload_read);
}

TEST_F(CheckpointFile, WrongMagicIsRefused) {
  const std::string bare = path("bare.pt");
  torch::serialize::OutputArchive archive;
  archive.write("w", torch::zeros({3}));
  archive.save_to(bare);  // a plain torch archive, not wrapped
  EXPECT_CONTAINS(load_error(bare), "'" + bare + "' is not a fractrain checkpoint");
  const std::string text = path("notes.txt");
  write_file(text, "hello, this is a text file that is long enough\n");
  EXPECT_CONTAINS(error_of([&] { read_checkpoint_meta(text); }), "is not a fractrain checkpoint");
}

TEST_F(CheckpointFile, MissingFileIsNamed) {
  const std::string p = path("nope.ckpt");
  const std::string message = load_error(p);
  EXPECT_CONTAINS(message, p);
  EXPECT_CONTAINS(message, "No such file");
}

TEST_F(CheckpointFile, DirectoryIsNotReadAsACheckpoint) { EXPECT_CONTAINS(load_error(dir_.str()), dir_.str()); }

TEST_F(CheckpointFile, NewerFormatVersionIsRefusedByName) {
  const std::string p = path("v2.ckpt");
  write_file(p, container(2, R"({"model_name":"resnet20","step":0,"epoch":0})", "payload"));
  EXPECT_CONTAINS(load_error(p), "was written by format version 2, this build reads 1");
}

TEST_F(CheckpointFile, IntactContainerWithUnreadablePayloadOrMetaIsRefused) {
  const std::string p = path("junk.ckpt");
  write_file(p, container(1, R"({"model_name":"resnet20","step":7,"epoch":1})", "not a zip archive"));
  EXPECT_EQ(read_checkpoint_meta(p).step, 7);
  EXPECT_CONTAINS(load_error(p), "torch cannot read its payload");

  write_file(p, container(1, R"({"model_name":"resnet20"})", "x"));
  EXPECT_CONTAINS(error_of([&] { read_checkpoint_meta(p); }), "unreadable metadata");
  write_file(p, container(1, "{not json", "x"));
  EXPECT_CONTAINS(error_of([&] { read_checkpoint_meta(p); }), "unreadable metadata");
}

TEST_F(CheckpointFile, PayloadThatDoesNotFitTheModelIsNamed) {
  const std::string p = path("a.ckpt");
  save_sample(p);
  const std::string message = error_of([&] {
    load_checkpoint(p, "resnet20", [](torch::serialize::InputArchive& a) {
      torch::Tensor t;
      a.read("no_such_parameter", t);
    });
  });
  EXPECT_CONTAINS(message, "does not fit this resnet20 model");
  EXPECT_CONTAINS(message, "no_such_parameter");
}

TEST_F(CheckpointFile, WriteIntoUnwritablePlaceThrowsAndKeepsThePreviousFile) {
  // Tests run as root, so chmod cannot make a directory unwritable; a parent that is a regular file can.
  const std::string not_a_dir = path("plain_file");
  write_file(not_a_dir, "x");
  const std::string p = not_a_dir + "/a.ckpt";
  const std::string message = error_of([&] { save_sample(p); });
  EXPECT_CONTAINS(message, p);
  EXPECT_CONTAINS(message, "Not a directory");

  // Renaming over a directory fails after the temp file is complete: the temp file must go away.
  const std::string dir_in_the_way = path("in_the_way");
  fs::create_directories(fs::path(dir_in_the_way) / "child");
  EXPECT_CONTAINS(error_of([&] { save_sample(dir_in_the_way); }), dir_in_the_way);
  EXPECT_TRUE(fs::is_directory(fs::path(dir_in_the_way) / "child"));

  // /proc refuses new files even to root.
  EXPECT_CONTAINS(error_of([] { write_file_atomically("/proc/fractrain_test.ckpt", "abc"); }),
                  "/proc/fractrain_test.ckpt");

  for (const auto& entry : fs::directory_iterator(dir_.str())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST_F(CheckpointFile, FailedWriteMidFileKeepsThePreviousCheckpointLoadable) {
  const std::string p = path("a.ckpt");
  save_sample(p, 1, 10);
  const std::string before = read_file(p);

  // A file-size limit makes write(2) fail part-way (EFBIG), even for root: the closest stand-in for a disk
  // filling up during a save.
  rlimit old_limit{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message = error_of([&] { save_sample(p, 2, 20, /*elements=*/100000); });
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);

  EXPECT_CONTAINS(message, p);
  EXPECT_CONTAINS(message, "File too large");
  EXPECT_EQ(read_file(p), before);
  torch::Tensor weights;
  const auto meta =
      load_checkpoint(p, "resnet20", [&](torch::serialize::InputArchive& a) { a.read("weights", weights); });
  EXPECT_EQ(meta.step, 10);
  EXPECT_TRUE(torch::equal(weights, sample_tensor()));
  EXPECT_FALSE(fs::exists(p + ".tmp." + std::to_string(::getpid())));
}

TEST(AtomicFile, ShortWriteToAFullDeviceThrows) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string message = error_of([&] { detail::write_all(fd, std::string(10000, 'x'), "/dev/full"); });
  ::close(fd);
  EXPECT_CONTAINS(message, "/dev/full");
  EXPECT_CONTAINS(message, "No space left on device");
}

TEST(AtomicFile, WritesExactBytesAndReplaces) {
  const TempDir dir("fractrain_atomic");
  const std::string p = dir.file("file");
  std::string bytes("a\0b\n", 4);
  write_file_atomically(p, bytes);
  EXPECT_EQ(read_file(p), bytes);
  write_file_atomically(p, "");
  EXPECT_EQ(read_file(p), "");
}

}  // namespace
}  // namespace fractrain
