// TensorBoard event files, piece by piece: CRC-32C against published vectors, TFRecord framing and the reader's
// detection of damage, the Event encoding, the writer's file, a metrics record's scalars, and the folding of a
// directory's earlier event files when a run starts or resumes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "fractrain/report/tensorboard_events.h"
#include "fractrain/report/tensorboard_writer.h"
#include "fractrain/train/tensorboard_log.h"
#include "fractrain/util/crc32c.h"
#include "fractrain/util/error.h"
#include "fractrain/util/tfrecord.h"
#include "test_support.h"

using namespace fractrain;
namespace fs = std::filesystem;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::string> read_all(const std::string& path) {
  TFRecordReader reader(path);
  std::vector<std::string> records;
  std::string data;
  while (reader.next(data)) records.push_back(data);
  return records;
}

// The error message of reading every record of `path` ("" if it reads cleanly).
std::string read_error(const std::string& path) {
  try {
    read_all(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find("tfevents") != std::string::npos) out.push_back(e.path().string());
  return out;
}

// The steps of the scalar events of `path`, in file order.
std::vector<int64_t> steps_in(const std::string& path) {
  std::vector<int64_t> steps;
  ScalarEvent event;
  for (const auto& record : read_all(path))
    if (decode_scalar_event(record, event)) steps.push_back(event.step);
  return steps;
}

}  // namespace

// RFC 3720 (iSCSI) B.4 and the customary check value.
TEST(Crc32c, MatchesPublishedVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32c, ContinuesOverMoreBytes) {
  const std::string a = "12345", b = "6789";
  EXPECT_EQ(crc32c(b.data(), b.size(), crc32c(a)), 0xE3069283u);
}

TEST(Crc32c, MaskIsTfRecords) {
  EXPECT_EQ(mask_crc32c(0u), 0xa282ead8u);
  EXPECT_EQ(mask_crc32c(0xE3069283u), 0xc78ab0e5u);  // ((c >> 15) | (c << 17)) + 0xa282ead8, by hand
}

TEST(TFRecord, FrameLayout) {
  const std::string frame = tfrecord_frame("123456789");
  ASSERT_EQ(frame.size(), 8u + 4u + 9u + 4u);
  EXPECT_EQ(frame.substr(0, 8), std::string("\x09\0\0\0\0\0\0\0", 8));  // little-endian length
  EXPECT_EQ(frame.substr(12, 9), "123456789");
  EXPECT_EQ(frame.substr(21, 4), std::string("\xe5\xb0\x8a\xc7", 4));  // masked CRC of the data, little endian
  const uint32_t header_crc = mask_crc32c(crc32c(frame.substr(0, 8)));
  for (int i = 0; i < 4; ++i)  // masked CRC of the length bytes, little endian
    EXPECT_EQ(static_cast<unsigned char>(frame[8 + i]), (header_crc >> (8 * i)) & 0xFFu) << "byte " << i;
}

TEST(TFRecord, RoundTrip) {
  test_support::TempDir temp("fractrain_tfrecord");
  const std::string path = temp.file("records");
  std::string big(200000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 3);  // larger than the read chunk
  const std::vector<std::string> records = {"first", "", std::string("with\0zero", 9), big};
  std::string bytes;
  for (const auto& r : records) bytes += tfrecord_frame(r);
  write_bytes(path, bytes);
  EXPECT_EQ(read_all(path), records);
}

TEST(TFRecord, ReaderDetectsDamage) {
  test_support::TempDir temp("fractrain_tfrecord_damage");
  const std::string good = tfrecord_frame("first record") + tfrecord_frame("second record");
  const size_t second = tfrecord_frame("first record").size();
  const std::string path = temp.file("records");

  std::string data_flip = good;
  data_flip[second + 12 + 3] ^= 0x01;  // one bit of the second record's data
  write_bytes(path, data_flip);
  std::string error = read_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("byte " + std::to_string(second)), std::string::npos) << error;
  EXPECT_NE(error.find("damaged data"), std::string::npos) << error;

  std::string length_flip = good;
  length_flip[2] ^= 0x40;  // the first record's length
  write_bytes(path, length_flip);
  error = read_error(path);
  EXPECT_NE(error.find("byte 0 has a damaged length"), std::string::npos) << error;

  std::string crc_flip = good;
  crc_flip[good.size() - 1] ^= 0x80;  // the second record's data checksum
  write_bytes(path, crc_flip);
  EXPECT_NE(read_error(path).find("damaged data"), std::string::npos);

  write_bytes(path, good.substr(0, good.size() - 2));  // a write cut short
  EXPECT_NE(read_error(path).find("cut short"), std::string::npos);

  write_bytes(path, good);
  EXPECT_EQ(read_error(path), "");
}

TEST(TensorBoardEvents, ScalarEventRoundTrip) {
  ScalarEvent event;
  const std::string record = encode_scalar_event(1700000000.25, 42, {{"train_loss", 0.1}, {"cost/run/cp", 3.0}});
  ASSERT_TRUE(decode_scalar_event(record, event));
  EXPECT_EQ(event.step, 42);
  EXPECT_EQ(event.wall_time, 1700000000.25);
  ASSERT_EQ(event.values.size(), 2u);
  EXPECT_EQ(event.values[0].first, "train_loss");
  EXPECT_EQ(event.values[0].second, 0.1f);  // stored as float, as TensorBoard's simple_value
  EXPECT_EQ(event.values[1].first, "cost/run/cp");
  EXPECT_EQ(event.values[1].second, 3.0f);
  // A 0 is written too (field 2, fixed32, four zero bytes): TensorBoard takes a value without it for no scalar.
  EXPECT_NE(encode_scalar_event(1.0, 1, {{"zero", 0.0}}).find(std::string("\x15\0\0\0\0", 5)), std::string::npos);
  EXPECT_FALSE(decode_scalar_event(encode_file_version_event(1.0), event));
  EXPECT_THROW(decode_scalar_event("\xff\xff\xff", event), Error);
}

TEST(TensorBoardWriter, NamesItsFileAndOpensWithTheFileVersion) {
  test_support::TempDir temp("fractrain_tb_writer");
  std::string path;
  {
    TensorBoardWriter writer(temp.str());
    path = writer.path();
    writer.write_scalars(3, {{"a", 1.5}});
    // Flushed at once: a live TensorBoard reads it while the run goes on.
    EXPECT_EQ(steps_in(path), std::vector<int64_t>({3}));
  }
  EXPECT_TRUE(std::regex_match(fs::path(path).filename().string(),
                               std::regex(R"(events\.out\.tfevents\.[0-9]{10,}\.[^/]+)")))
      << path;
  const auto records = read_all(path);
  ASSERT_EQ(records.size(), 2u);
  ScalarEvent event;
  EXPECT_FALSE(decode_scalar_event(records[0], event));  // the file_version (read via protobuf in the e2e test)
  EXPECT_NE(records[0].find(kTensorBoardFileVersion), std::string::npos);
}

TEST(TensorBoardWriter, UnwritableDirectoryNamesTheFileAndTheKey) {
  test_support::TempDir temp("fractrain_tb_unwritable");
  const std::string not_a_dir = temp.file("regular_file");
  write_bytes(not_a_dir, "x");
  try {
    TensorBoardWriter writer(not_a_dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(not_a_dir + "/events.out.tfevents."), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("output.tensorboard"), std::string::npos) << e.what();
  }
}

TEST(TensorBoardLog, ScalarsAreTheRecordsNumbersTaggedByTheirKeys) {
  const nlohmann::json record = {{"step", 7},
                                 {"lr", 0.1},
                                 {"stage", 2},
                                 {"precision", "fw8bw8"},
                                 {"flag", true},
                                 {"missing", nullptr},
                                 {"diverged", std::nan("")},  // null in metrics.jsonl
                                 {"cost", {{"run", {{"cp", 1.5}}}}},
                                 {"gate_selection", {{"layer1.0", {0.25, 0.75}}}}};
  const auto scalars = tensorboard_scalars(record);
  std::map<std::string, double> by_tag(scalars.begin(), scalars.end());
  EXPECT_EQ(by_tag.size(), scalars.size()) << "a tag twice";
  const std::map<std::string, double> expected = {{"lr", 0.1},
                                                  {"stage", 2.0},
                                                  {"cost/run/cp", 1.5},
                                                  {"gate_selection/layer1.0/0", 0.25},
                                                  {"gate_selection/layer1.0/1", 0.75}};
  EXPECT_EQ(by_tag, expected);
}

TEST(TensorBoardLog, ResumeKeepsTheEarlierStepsUpToTheCheckpointInOneFile) {
  test_support::TempDir temp("fractrain_tb_resume");
  {
    TensorBoardLog log(temp.str(), -1);
    for (int64_t step : {2, 4, 6, 8}) log.append({{"step", step}, {"loss", 1.0 / step}});
  }
  // A resume from step 4: steps 6 and 8 are written again, so the earlier 6 and 8 must go.
  TensorBoardLog resumed(temp.str(), 4);
  for (int64_t step : {6, 8}) resumed.append({{"step", step}, {"loss", 2.0}});
  const auto files = event_files(temp.str());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0], resumed.path());
  EXPECT_EQ(steps_in(files[0]), std::vector<int64_t>({2, 4, 6, 8}));
}

TEST(TensorBoardLog, NewRunReplacesTheEarlierEvents) {
  test_support::TempDir temp("fractrain_tb_new_run");
  write_bytes(temp.file("events.out.tfevents.1.elsewhere"), tfrecord_frame(encode_scalar_event(1.0, 9, {{"x", 1}})));
  TensorBoardLog log(temp.str(), -1);
  log.append({{"step", 1}, {"x", 2.0}});
  const auto files = event_files(temp.str());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(steps_in(files[0]), std::vector<int64_t>({1}));
}

TEST(TensorBoardLog, DamagedEarlierFileKeepsWhatPrecedesTheDamage) {
  test_support::TempDir temp("fractrain_tb_damaged");
  std::string bytes = tfrecord_frame(encode_scalar_event(1.0, 1, {{"x", 1}})) +
                      tfrecord_frame(encode_scalar_event(2.0, 2, {{"x", 2}}));
  bytes.resize(bytes.size() - 3);  // the last write was cut short
  write_bytes(temp.file("events.out.tfevents.1.host"), bytes);
  TensorBoardLog log(temp.str(), 5);
  log.append({{"step", 6}, {"x", 6.0}});
  const auto files = event_files(temp.str());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(steps_in(files[0]), std::vector<int64_t>({1, 6}));
}
