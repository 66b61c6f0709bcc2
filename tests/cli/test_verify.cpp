// `vigil verify` on real run directories, checkpoint folders and files, intact and damaged.
#include <gtest/gtest.h>

#include <fstream>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil {
namespace {

using test::run_vigil;
using test::TempDir;
namespace fs = std::filesystem;

class Verify : public ::testing::Test {
 protected:
  void SetUp() override {
    CheckpointManager m(run, CheckpointManagerOptions{}.with_keep_last(2));
    for (int e = 0; e < 3; ++e) {
      std::fill(weights.begin(), weights.end(), static_cast<float>(e));
      SaveRequest r;
      r.epoch = e;
      r.step = 10 * (e + 1);
      r.metrics["val_loss"] = 1.0 / (e + 1);
      r.files["model"] = {TensorView{"w", DType::F32, {8, 8}, std::as_bytes(std::span(weights))}};
      r.files["optimizer"] = {TensorView{"m", DType::F32, {64}, std::as_bytes(std::span(weights))}};
      ASSERT_TRUE(m.save(r).saved);
    }
  }
  static void flip(const fs::path& p, std::streamoff from_end) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-from_end, std::ios::end);
    char c = 0;
    f.read(&c, 1);
    f.seekp(-from_end, std::ios::end);
    f.put(static_cast<char>(c ^ 0x01));
  }
  void expect_damaged(const std::vector<std::string>& args, const std::string& needle) {
    auto r = run_vigil(args);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("vigil: error: verification failed"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  TempDir tmp;
  fs::path run = tmp / "run";
  fs::path cdir = run / "checkpoints";
  std::vector<float> weights = std::vector<float>(64);
};

TEST_F(Verify, IntactRunDirectory) {
  auto r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok        checkpoints/epoch-0001: checkpoint of epoch 1, step 20"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("ok        checkpoints/epoch-0002"), std::string::npos);
  EXPECT_NE(r.out.find("ok        best/model.safetensors"), std::string::npos);
  EXPECT_NE(r.out.find("ok        last: -> epoch-0002"), std::string::npos);
  EXPECT_NE(r.out.find("ok        checkpoints/manifest.json: 2 checkpoints listed"),
            std::string::npos);
  EXPECT_NE(r.out.find("2 intact checkpoints, 0 damaged, 0 leftovers"), std::string::npos);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(Verify, LeftoversAreReportedButNotFailures) {
  fs::create_directory(cdir / ".epoch-0003.tmp-99-abcdef01");
  test::write_file(cdir / ".epoch-0003.tmp-99-abcdef01" / "model.safetensors", "half");
  auto r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("leftover  checkpoints/.epoch-0003.tmp-99-abcdef01"), std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::exists(cdir / ".epoch-0003.tmp-99-abcdef01"));  // verify never changes anything
}

TEST_F(Verify, FlippedByteInACheckpoint) {
  flip(cdir / "epoch-0002" / "model.safetensors", 2);
  expect_damaged({"verify", run.string()}, "DAMAGED   checkpoints/epoch-0002");
  // Quick mode does not hash data, so it cannot see this.
  EXPECT_EQ(run_vigil({"verify", "--quick", run.string()}).exit_code, 0);
}

TEST_F(Verify, TruncatedFile) {
  auto p = cdir / "epoch-0001" / "optimizer.safetensors";
  fs::resize_file(p, fs::file_size(p) - 1);
  expect_damaged({"verify", run.string()}, "truncated");
  expect_damaged({"verify", "--quick", run.string()}, "truncated");
}

TEST_F(Verify, MissingFile) {
  fs::remove(cdir / "epoch-0001" / "optimizer.safetensors");
  expect_damaged({"verify", run.string()}, "optimizer.safetensors is missing");
}

TEST_F(Verify, DanglingLast) {
  test::write_file(run / "last", "epoch-0099\n");
  expect_damaged({"verify", run.string()}, "dangling");
}

// `last` is vigil's own one-line file: a link to elsewhere (/etc/passwd) or a folder is named as
// such, and its content is never printed whole.
TEST_F(Verify, ALastThatIsNotVigilsOwnFileIsDiagnosed) {
  fs::remove(run / "last");
  test::write_file(tmp / "secret", "root:x:0:0:root:/root:/bin/bash\nsecond line of it\n");
  fs::create_symlink(tmp / "secret", run / "last");
  auto r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("last: is a symbolic link"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("root:x"), std::string::npos) << r.out;
  fs::remove(run / "last");
  test::write_file(run / "last", "root:x:0:0:root:/root:/bin/bash\nsecond line of it\n");
  r = run_vigil({"verify", run.string()});
  EXPECT_NE(r.out.find("does not hold a checkpoint name"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("second line"), std::string::npos) << r.out;
  fs::remove(run / "last");
  fs::create_directory(run / "last");
  expect_damaged({"verify", run.string()}, "last: is a folder");
  fs::remove_all(cdir);
  test::write_file(cdir, "not a folder");
  expect_damaged({"verify", run.string()}, "checkpoints: is not a folder");
}

TEST_F(Verify, DamagedBestAndManifest) {
  flip(run / "best" / "model.safetensors", 1);
  expect_damaged({"verify", run.string()}, "DAMAGED   best/model.safetensors");
  TempDir other;
  fs::copy(run, other / "run", fs::copy_options::recursive);
  test::write_file(other / "run" / "checkpoints" / "manifest.json", "{\"format\": 3");
  expect_damaged({"verify", (other / "run").string()}, "DAMAGED   checkpoints/manifest.json");
}

TEST_F(Verify, ABestNotWrittenByThisRunMissingOrMisplacedIsDamaged) {
  const auto best = run / "best" / "model.safetensors";
  // A copy of another checkpoint of this run: a save was interrupted after updating best/.
  fs::remove(best);
  fs::copy_file(cdir / "epoch-0001" / "model.safetensors", best);
  auto r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("note      best/model.safetensors: is a copy of epoch-0001's "
                       "model.safetensors, not of the manifest's best epoch-0002"),
            std::string::npos)
      << r.out;
  // Intact, but from elsewhere: another run's model.
  TempDir elsewhere;
  {
    CheckpointManager other(elsewhere / "run");
    std::vector<float> w(64, 42.0F);
    SaveRequest q;
    q.metrics["val_loss"] = 0.1;
    q.files["model"] = {TensorView{"w", DType::F32, {8, 8}, std::as_bytes(std::span(w))}};
    ASSERT_TRUE(other.save(q).is_best);
  }
  fs::remove(best);
  fs::copy_file(elsewhere / "run" / "best" / "model.safetensors", best);
  expect_damaged({"verify", run.string()},
                 "DAMAGED   best/model.safetensors: matches neither the manifest's record nor any "
                 "checkpoint of this run");
  fs::remove(best);
  expect_damaged({"verify", run.string()},
                 "DAMAGED   best/model.safetensors: missing, though the manifest names "
                 "epoch-0002's model.safetensors as the best");
  fs::create_directory(best);
  expect_damaged({"verify", run.string()}, "DAMAGED   best/model.safetensors: is a folder");
  fs::remove_all(run / "best");
  test::write_file(run / "best", "not a folder");
  expect_damaged({"verify", run.string()}, "DAMAGED   best: is not a folder");
}

// A best model kept as shards is merged into best/: after an interrupted save, best/ may hold an
// earlier checkpoint's shards merged, which is this run's too.
TEST(VerifySharded, ABestMergedFromAnEarlierCheckpointsShardsIsThisRuns) {
  TempDir tmp;
  const auto run = tmp / "run";
  std::vector<float> frozen(256, 0.5F), w(16);
  const auto best = run / "best" / "model.safetensors";
  {
    CheckpointManager m(run);
    for (int e = 0; e < 2; ++e) {
      std::fill(w.begin(), w.end(), static_cast<float>(e));
      SaveRequest q;
      q.epoch = e;
      q.metrics["val_loss"] = 1.0 / (e + 1);
      const std::vector<TensorView> all = {
          TensorView{"f", DType::F32, {256}, std::as_bytes(std::span(frozen))},
          TensorView{"w", DType::F32, {16}, std::as_bytes(std::span(w))}};
      q.files = {{"model-00001-of-00002", {all[0]}}, {"model-00002-of-00002", {all[1]}}};
      q.indexes["model"] = shard_index("model", all, std::vector<int>{0, 1}, 2);
      ASSERT_TRUE(m.save(q).is_best);
      if (e == 0) fs::copy_file(best, tmp / "merged-0.safetensors");
    }
  }
  auto r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("note      best/"), std::string::npos) << r.out;
  fs::remove(best);
  fs::copy_file(tmp / "merged-0.safetensors", best);
  r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("note      best/model.safetensors: is a copy of epoch-0000's "
                       "model.safetensors (its shards merged), not of the manifest's best "
                       "epoch-0001"),
            std::string::npos)
      << r.out;
  // Intact, with the same names and shapes, but values no checkpoint's shards hold.
  std::fill(w.begin(), w.end(), 42.0F);
  fs::remove(best);
  save_safetensors(best, std::vector<TensorView>{
                             TensorView{"f", DType::F32, {256}, std::as_bytes(std::span(frozen))},
                             TensorView{"w", DType::F32, {16}, std::as_bytes(std::span(w))}});
  r = run_vigil({"verify", run.string()});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("matches neither the manifest's record nor any checkpoint"),
            std::string::npos)
      << r.out;
}

TEST_F(Verify, ACheckpointOfAnotherRunIsDamaged) {
  TempDir other;
  std::vector<float> w(64, 1.0F);
  const auto save_one = [&](const fs::path& dir, const std::string& id) {
    CheckpointManager m(dir, CheckpointManagerOptions{}.with_run_id(id));
    SaveRequest q;
    q.metrics["val_loss"] = 0.1;
    q.files["model"] = {TensorView{"w", DType::F32, {8, 8}, std::as_bytes(std::span(w))}};
    (void)m.save(q);
  };
  save_one(other / "ours", "00000000000000aa");
  save_one(other / "theirs", "00000000000000bb");
  fs::copy(other / "theirs" / "checkpoints" / "epoch-0000",
           other / "ours" / "checkpoints" / "epoch-0005", fs::copy_options::recursive);
  expect_damaged({"verify", (other / "ours").string()},
                 "DAMAGED   checkpoints/epoch-0005: belongs to another run (run id "
                 "00000000000000bb, this run's is 00000000000000aa)");
}

TEST_F(Verify, CheckpointFolderAndSingleFile) {
  auto folder = (cdir / "epoch-0002").string();
  auto r = run_vigil({"verify", folder});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("checkpoint of epoch 2"), std::string::npos);
  auto file = (cdir / "epoch-0002" / "model.safetensors").string();
  r = run_vigil({"verify", file});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 tensor, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checksums verified"), std::string::npos);
  flip(file, 3);
  expect_damaged({"verify", file}, "corrupt");
  expect_damaged({"verify", folder}, "DAMAGED");
}

TEST_F(Verify, HostileAndMissingInputs) {
  // A header length of 2^63: a named error, no allocation, no crash.
  std::string hostile(8, '\0');
  hostile[7] = '\x80';
  test::write_file(tmp / "hostile.safetensors", hostile + "{}");
  expect_damaged({"verify", (tmp / "hostile.safetensors").string()}, "DAMAGED");
  test::write_file(cdir / "epoch-0001" / "state.json", std::string(100, '{'));
  expect_damaged({"verify", run.string()}, "not valid JSON");

  auto r = run_vigil({"verify", (tmp / "nope").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("vigil: error: "), std::string::npos);
  EXPECT_NE(r.err.find("no such file or folder"), std::string::npos) << r.err;
  fs::create_directory(tmp / "empty");
  r = run_vigil({"verify", (tmp / "empty").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a checkpoint folder"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vigil
