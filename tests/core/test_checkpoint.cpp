// One checkpoint folder: layout, round trip, and every kind of damage verification must catch.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "test_support.hpp"
#include "vigil/checkpoint.hpp"

namespace vigil {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

struct Fixture {
  std::vector<float> weights{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<std::int64_t> moments{-1, 0, 1, 1LL << 40};
  CheckpointContent content() const {
    CheckpointContent c;
    c.epoch = 3;
    c.step = 300;
    c.metrics = {{"val_loss", 0.25}, {"loss", std::numeric_limits<double>::quiet_NaN()}};
    c.files["model"] = {TensorView{"w", DType::F32, {4, 3}, std::as_bytes(std::span(weights))}};
    c.files["optimizer"] = {
        TensorView{"state.w.exp_avg", DType::I64, {4}, std::as_bytes(std::span(moments))}};
    c.state = {{"rng", {{"seed", 42}}}, {"order", {3, 1, 2}}};
    c.sequence = 7;
    return c;
  }
};

// Flips the byte `offset_from_end` bytes before the end of the file.
void flip_byte_from_end(const fs::path& p, std::uint64_t offset_from_end) {
  vigil::test::flip_byte(p, fs::file_size(p) - offset_from_end);
}

TEST(Checkpoint, WritesTheDesignLayoutAndReadsItBack) {
  TempDir tmp;
  Fixture fx;
  auto dir = tmp / "epoch-0003";
  auto info = write_checkpoint(dir, fx.content());
  EXPECT_EQ(info.name, "epoch-0003");
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  EXPECT_EQ(names,
            (std::set<std::string>{"model.safetensors", "optimizer.safetensors", "state.json"}));
  // Nothing but the final folder is left in the parent.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.path())) ++entries;
  EXPECT_EQ(entries, 1u);

  auto ckpt = Checkpoint::open(dir);
  EXPECT_EQ(ckpt.info().epoch, 3);
  EXPECT_EQ(ckpt.info().step, 300);
  EXPECT_EQ(ckpt.info().sequence, 7u);
  EXPECT_EQ(ckpt.info().at, SavePoint::EpochEnd);
  EXPECT_DOUBLE_EQ(ckpt.info().metrics.at("val_loss"), 0.25);
  EXPECT_TRUE(std::isnan(ckpt.info().metrics.at("loss")));
  EXPECT_EQ(ckpt.state(), fx.content().state);
  ASSERT_EQ(ckpt.info().files.size(), 2u);
  EXPECT_EQ(ckpt.info().files[0].bytes, fs::file_size(dir / "model.safetensors"));
  EXPECT_EQ(ckpt.info().total_bytes(), fs::file_size(dir / "model.safetensors") +
                                           fs::file_size(dir / "optimizer.safetensors"));

  auto model = ckpt.open_file("model");
  auto w = model.view("w");
  ASSERT_EQ(w.data.size(), fx.weights.size() * sizeof(float));
  EXPECT_EQ(std::memcmp(w.data.data(), fx.weights.data(), w.data.size()), 0);
  std::vector<std::int64_t> back(4);
  ckpt.open_file("optimizer").copy_to("state.w.exp_avg", std::as_writable_bytes(std::span(back)));
  EXPECT_EQ(back, fx.moments);
  EXPECT_THROW(ckpt.open_file("callbacks"), CheckpointError);
  // The tensor files are plain safetensors files: any reader opens them.
  EXPECT_NO_THROW((void)SafetensorsFile::open(dir / "model.safetensors"));
  EXPECT_EQ(xxh3_file(dir / "model.safetensors"), ckpt.info().files[0].xxh3);
}

TEST(Checkpoint, FileMetadataGoesIntoThatFilesHeader) {
  TempDir tmp;
  Fixture fx;
  auto content = fx.content();
  content.metadata["model"] = {{"vigil.tied", R"({"head.w":"w"})"}};
  write_checkpoint(tmp / "c", content);
  const auto model = SafetensorsFile::open(tmp / "c" / "model.safetensors");
  EXPECT_EQ(model.metadata().at("vigil.tied"), R"({"head.w":"w"})");
  EXPECT_EQ(
      SafetensorsFile::open(tmp / "c" / "optimizer.safetensors").metadata().count("vigil.tied"),
      0u);
  EXPECT_NO_THROW(Checkpoint::open(tmp / "c"));
}

TEST(Checkpoint, RefusesAnExistingFolderAndUnsafeStems) {
  TempDir tmp;
  Fixture fx;
  write_checkpoint(tmp / "a", fx.content());
  EXPECT_THROW(write_checkpoint(tmp / "a", fx.content()), OptionError);
  auto c = fx.content();
  c.files["../escape"] = c.files["model"];
  EXPECT_THROW(write_checkpoint(tmp / "b", c), OptionError);
  EXPECT_THROW(write_checkpoint(tmp / ".hidden", fx.content()), OptionError);
  EXPECT_FALSE(fs::exists(tmp / "b"));
  EXPECT_FALSE(fs::exists(tmp / "escape.safetensors"));
}

// Records where every write came from: a synchronous save must stream from the caller's memory
// in bounded blocks, never from a copy of the state.
class RecordingOps : public FileOps {
 public:
  std::vector<std::pair<const std::byte*, std::size_t>> writes;
  ssize_t write(int fd, const void* data, size_t size) override {
    writes.emplace_back(static_cast<const std::byte*>(data), size);
    return FileOps::write(fd, data, size);
  }
};

TEST(Checkpoint, WritesStreamFromTheCallersMemoryInBlocks) {
  TempDir tmp;
  std::vector<float> big(300000, 0.5f);  // 1.2 MB
  CheckpointContent c;
  c.files["model"] = {TensorView{"big", DType::F32, {big.size()}, std::as_bytes(std::span(big))}};
  auto ops = std::make_shared<RecordingOps>();
  write_checkpoint(tmp / "c", c,
                   CheckpointWriteOptions{}.with_ops(ops).with_block_bytes(256 * 1024));
  auto begin = reinterpret_cast<const std::byte*>(big.data());
  auto end = begin + big.size() * sizeof(float);
  std::size_t from_caller = 0;
  for (const auto& [p, n] : ops->writes) {
    EXPECT_LE(n, 256u * 1024 + 4096) << "one write of " << n << " bytes";
    if (p >= begin && p + n <= end) from_caller += n;
  }
  EXPECT_EQ(from_caller, big.size() * sizeof(float));
  EXPECT_NO_THROW(verify_checkpoint(tmp / "c"));
}

TEST(Checkpoint, StateOnlyCheckpointIsValid) {
  TempDir tmp;
  CheckpointContent c;
  c.state = {{"note", "no tensors"}};
  write_checkpoint(tmp / "s", c);
  auto ck = Checkpoint::open(tmp / "s");
  EXPECT_TRUE(ck.info().files.empty());
  EXPECT_EQ(ck.state()["note"], "no tensors");
}

class Damage : public ::testing::Test {
 protected:
  void SetUp() override { write_checkpoint(dir, fx.content()); }
  void expect_rejected(const std::string& needle) {
    try {
      verify_checkpoint(dir);
      FAIL() << "damage not detected";
    } catch (const CheckpointError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
  }
  TempDir tmp;
  Fixture fx;
  fs::path dir = tmp / "epoch-0003";
};

TEST_F(Damage, FlippedDataByteIsCaughtByTheChecksum) {
  flip_byte_from_end(dir / "model.safetensors", 5);
  expect_rejected("model.safetensors is corrupt");
  // A quick check (no hashing) does not read the data, by design.
  EXPECT_NO_THROW(verify_checkpoint(dir, CheckpointVerifyOptions{}.with_checksums(false)));
}

TEST_F(Damage, FlippedHeaderByteIsCaught) {
  std::fstream f(dir / "optimizer.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(12);
  f.put('#');
  f.close();
  expect_rejected("optimizer.safetensors");
}

TEST_F(Damage, TruncatedFileIsCaught) {
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 4);
  expect_rejected("truncated");
}

TEST_F(Damage, MissingFileIsCaught) {
  fs::remove(dir / "optimizer.safetensors");
  expect_rejected("optimizer.safetensors is missing");
}

TEST_F(Damage, MissingStateIsCaught) {
  fs::remove(dir / "state.json");
  expect_rejected("state.json is missing");
}

TEST_F(Damage, EditedStateIsCaughtByItsChecksum) {
  auto text = test::read_file(dir / "state.json");
  auto pos = text.find("\"step\": 300");
  ASSERT_NE(pos, std::string::npos) << text;
  text.replace(pos, 11, "\"step\": 301");
  test::write_file(dir / "state.json", text);
  expect_rejected("state.json is corrupt");
}

TEST_F(Damage, TruncatedStateIsCaught) {
  auto text = test::read_file(dir / "state.json");
  test::write_file(dir / "state.json", text.substr(0, text.size() / 2));
  expect_rejected("not valid JSON");
}

TEST_F(Damage, StateOfTheWrongShapeIsCaught) {
  test::write_file(dir / "state.json", R"({"format": "vigil-checkpoint/1", "checksum": 5})");
  expect_rejected("checksum");
  test::write_file(dir / "state.json", "[1,2]");
  expect_rejected("not a JSON object");
}

TEST(Checkpoint, NotAFolder) {
  TempDir tmp;
  EXPECT_THROW(verify_checkpoint(tmp / "nope"), CheckpointError);
  test::write_file(tmp / "file", "x");
  EXPECT_THROW(verify_checkpoint(tmp / "file"), CheckpointError);
}

}  // namespace
}  // namespace vigil
