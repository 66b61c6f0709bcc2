// Checkpoints that share unchanged files: a tensor file that would be byte for byte a committed
// one is hard-linked, every folder still verifies and loads alone, and removing any checkpoints
// leaves the others whole.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <vector>

#include <fmt/core.h>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

ino_t inode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

nlink_t links(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_nlink;
}

const CheckpointFileInfo& file_of(const CheckpointInfo& info, const std::string& name) {
  for (const auto& f : info.files)
    if (f.file == name) return f;
  throw std::runtime_error("no " + name + " in " + info.name);
}

// A run whose "frozen" tensors never change while "model" changes every epoch.
struct FrozenRun {
  std::vector<float> frozen = std::vector<float>(1024, 0.25f);
  std::vector<float> weights = std::vector<float>(64);
  SaveRequest request(std::int64_t epoch) {
    std::fill(weights.begin(), weights.end(), static_cast<float>(epoch));
    SaveRequest r;
    r.epoch = epoch;
    r.metrics["val_loss"] = 1.0 / static_cast<double>(epoch + 1);
    r.files["model"] = {TensorView{"w", DType::F32, {64}, std::as_bytes(std::span(weights))}};
    r.files["frozen"] = {TensorView{"f", DType::F32, {1024}, std::as_bytes(std::span(frozen))}};
    return r;
  }
};

// Epoch 0 of `run`, written with nothing to share.
CheckpointInfo first_checkpoint(const fs::path& dir, FrozenRun& run) {
  CheckpointContent content;
  content.files = run.request(0).files;
  return write_checkpoint(dir, content);
}

TEST(SafetensorsPlan, IsTheHeaderAndSizeOfTheWrittenFile) {
  TempDir tmp;
  std::vector<float> a(10, 1.5f);
  std::vector<std::int64_t> b(3, 7);
  std::vector<TensorView> views = {
      TensorView{"b", DType::I64, {3}, std::as_bytes(std::span(b))},
      TensorView{"a", DType::F32, {2, 5}, std::as_bytes(std::span(a))}};
  const auto plan = plan_safetensors(views, {{"note", "x"}});
  save_safetensors(tmp / "f.safetensors", views, {{"note", "x"}});
  const auto bytes = test::read_file(tmp / "f.safetensors");
  EXPECT_EQ(plan.file_bytes, bytes.size());
  EXPECT_TRUE(plan.checksums);
  EXPECT_EQ(bytes.substr(0, plan.header.size()), plan.header);
  // A plan is of its tensors: writing others with it is refused before anything is written.
  auto f = DurableFile::create(tmp / "g.safetensors");
  std::vector<TensorView> other = {views[0]};
  EXPECT_THROW((void)write_planned_safetensors(f, other, plan), OptionError);
  EXPECT_EQ(f.size(), 0u);
}

TEST(SharedFiles, AnIdenticalFileIsLinkedAndADifferentOneWritten) {
  TempDir tmp;
  FrozenRun run;
  const auto a = first_checkpoint(tmp / "a", run);
  EXPECT_FALSE(file_of(a, "frozen.safetensors").linked);

  CheckpointContent second;
  second.files = run.request(1).files;
  second.shareable = shareable_files(a);
  const auto b = write_checkpoint(tmp / "b", second);
  EXPECT_TRUE(file_of(b, "frozen.safetensors").linked);
  EXPECT_FALSE(file_of(b, "model.safetensors").linked);
  EXPECT_EQ(inode(tmp / "a/frozen.safetensors"), inode(tmp / "b/frozen.safetensors"));
  EXPECT_NE(inode(tmp / "a/model.safetensors"), inode(tmp / "b/model.safetensors"));
  EXPECT_EQ(file_of(b, "frozen.safetensors").xxh3, file_of(a, "frozen.safetensors").xxh3);
  // Each folder verifies alone, and loses nothing when the other goes.
  EXPECT_NO_THROW(verify_checkpoint(tmp / "b"));
  fs::remove_all(tmp / "a");
  EXPECT_NO_THROW(verify_checkpoint(tmp / "b"));
  EXPECT_EQ(test::first_f32(tmp / "b/frozen.safetensors", "f"), 0.25f);
  EXPECT_EQ(links(tmp / "b/frozen.safetensors"), 1u);
}

TEST(SharedFiles, EqualTensorsUnderOtherMetadataOrNamesAreNotShared) {
  TempDir tmp;
  FrozenRun run;
  const auto a = first_checkpoint(tmp / "a", run);
  CheckpointContent second;
  second.files = run.request(0).files;
  second.metadata["frozen"] = {{"note", "other"}};
  second.files["model"][0].name = "v";
  second.shareable = shareable_files(a);
  const auto b = write_checkpoint(tmp / "b", second);
  for (const auto& f : b.files) EXPECT_FALSE(f.linked) << f.file;
}

TEST(SharedFiles, ATwiceWrittenFileInOneCheckpointIsWrittenOnce) {
  TempDir tmp;
  FrozenRun run;
  CheckpointContent content;
  content.files = run.request(0).files;
  content.files["copy"] = content.files["frozen"];
  const auto info = write_checkpoint(tmp / "a", content);
  EXPECT_TRUE(file_of(info, "frozen.safetensors").linked);  // "copy" sorts first
  EXPECT_EQ(inode(tmp / "a/copy.safetensors"), inode(tmp / "a/frozen.safetensors"));
  EXPECT_NO_THROW(verify_checkpoint(tmp / "a"));
}

TEST(SharedFiles, AMissingOrChangedCandidateIsWrittenInstead) {
  TempDir tmp;
  FrozenRun run;
  const auto a = first_checkpoint(tmp / "a", run);
  const auto& frozen = file_of(a, "frozen.safetensors");
  CheckpointContent second;
  second.files = run.request(0).files;
  second.shareable = {{tmp / "gone.safetensors", frozen.bytes, frozen.xxh3},
                      {a.path / frozen.file, frozen.bytes + 1, frozen.xxh3}};
  const auto b = write_checkpoint(tmp / "b", second);
  EXPECT_FALSE(file_of(b, "frozen.safetensors").linked);
  EXPECT_NO_THROW(verify_checkpoint(tmp / "b"));
}

// Links refused by the file system (vfat: EPERM; a full link count: EMLINK) mean writing; a
// failing disk (EIO) is an error, and the checkpoint is not committed.
class LinkOps : public FileOps {
 public:
  explicit LinkOps(int err) : err_(err) {}
  int link(const char*, const char*) override {
    ++calls;
    errno = err_;
    return -1;
  }
  int calls = 0;

 private:
  int err_;
};

TEST(SharedFiles, RefusedLinksWriteTheFileAndFailingOnesAreErrors) {
  TempDir tmp;
  FrozenRun run;
  for (int err : {EPERM, EMLINK, EXDEV}) {
    SCOPED_TRACE(err);
    auto ops = std::make_shared<LinkOps>(err);
    CheckpointManager m(tmp / fmt::format("run-{}", err),
                        CheckpointManagerOptions{}.with_ops(ops).with_monitor(""));
    (void)m.save(run.request(0));
    const auto r = m.save(run.request(1));
    EXPECT_GE(ops->calls, 1);
    EXPECT_FALSE(file_of(*r.checkpoint, "frozen.safetensors").linked);
    EXPECT_NO_THROW(verify_checkpoint(r.checkpoint->path));
  }
  auto ops = std::make_shared<LinkOps>(EIO);
  CheckpointManager m(tmp / "run-eio", CheckpointManagerOptions{}.with_ops(ops).with_monitor(""));
  (void)m.save(run.request(0));
  try {
    (void)m.save(run.request(1));
    ADD_FAILURE() << "a failing link was ignored";
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), EIO);
    EXPECT_NE(std::string(e.what()).find("cannot link"), std::string::npos) << e.what();
  }
  ASSERT_EQ(m.checkpoints().size(), 1u);
  EXPECT_EQ(fs::directory_iterator(tmp / "run-eio/checkpoints")->path().filename(), "epoch-0000");
}

TEST(SharedFiles, TheManagerLinksUnchangedFilesAcrossCheckpointsUnlessTurnedOff) {
  TempDir tmp;
  FrozenRun run;
  {
    CheckpointManager m(tmp / "on");
    for (int e = 0; e < 3; ++e) (void)m.save(run.request(e));
    const auto all = m.checkpoints();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(links(all[0].path / "frozen.safetensors"), 3u);
    EXPECT_EQ(links(all[0].path / "model.safetensors"), 1u);
    // best/ links the newest best model, as before.
    EXPECT_EQ(inode(CheckpointManager::best_model_path(tmp / "on")),
              inode(all[2].path / "model.safetensors"));
  }
  // Opened again (hashing every file), the run goes on sharing with what it finds on disk.
  {
    CheckpointManager m(tmp / "on");
    const auto r = m.save(run.request(3));
    EXPECT_TRUE(file_of(*r.checkpoint, "frozen.safetensors").linked);
    EXPECT_EQ(links(r.checkpoint->path / "frozen.safetensors"), 4u);
  }
  CheckpointManager off(tmp / "off", CheckpointManagerOptions{}.with_share_unchanged_files(false));
  for (int e = 0; e < 2; ++e) (void)off.save(run.request(e));
  for (const auto& c : off.checkpoints()) {
    EXPECT_EQ(links(c.path / "frozen.safetensors"), 1u);
    for (const auto& f : c.files) EXPECT_FALSE(f.linked);
  }
}

// Every subset of four linked checkpoints removed by hand (as a user or a retention policy
// would): the rest verify, load alone, and the run opens with nothing skipped.
TEST(SharedFiles, RemovingAnySubsetOfCheckpointsLeavesTheOthersWhole) {
  TempDir tmp;
  FrozenRun run;
  for (unsigned subset = 0; subset < 16; ++subset) {
    SCOPED_TRACE(subset);
    const auto dir = tmp / fmt::format("run-{}", subset);
    std::vector<CheckpointInfo> all;
    {
      CheckpointManager m(dir, CheckpointManagerOptions{}.with_monitor(""));
      for (int e = 0; e < 4; ++e) (void)m.save(run.request(e));
      all = m.checkpoints();
    }
    for (unsigned i = 0; i < 4; ++i)
      if (subset & (1u << i)) fs::remove_all(all[i].path);
    if (subset & 8u) test::write_file(dir / "last", all[0].name + "\n");  // may be stale
    CheckpointManager m(dir, CheckpointManagerOptions{}.with_monitor(""));
    EXPECT_TRUE(m.open_report().skipped.empty());
    const auto kept = m.checkpoints();
    EXPECT_EQ(kept.size(), 4u - static_cast<unsigned>(std::popcount(subset)));
    for (const auto& c : kept) {
      EXPECT_NO_THROW(verify_checkpoint(c.path)) << c.name;
      EXPECT_EQ(test::first_f32(c.path / "frozen.safetensors", "f"), 0.25f);
      EXPECT_EQ(test::first_f32(c.path / "model.safetensors"), static_cast<float>(c.epoch));
      EXPECT_EQ(links(c.path / "frozen.safetensors"), kept.size());
    }
  }
}

// Retention frees what no kept checkpoint links: the shared file stays while one holds it.
TEST(SharedFiles, RetentionKeepsASharedFileUntilItsLastCheckpointGoes) {
  TempDir tmp;
  FrozenRun run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_monitor("").with_keep_last(2));
  for (int e = 0; e < 5; ++e) (void)m.save(run.request(e));
  const auto kept = m.checkpoints();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].epoch, 3);
  EXPECT_EQ(links(kept[0].path / "frozen.safetensors"), 2u);
  for (const auto& c : kept) EXPECT_NO_THROW(verify_checkpoint(c.path));
}

// A best model given as shards (frozen tensors apart) is merged into one best/model.safetensors:
// from memory by the save that wrote it, from the shards on disk when the manager repairs it.
// Either way it is byte for byte the file the tensors make when saved whole.
TEST(SharedFiles, AShardedBestIsMergedIntoTheFileTheTensorsMakeWhole) {
  TempDir tmp;
  FrozenRun run;
  auto request = [&](std::int64_t epoch) {
    auto r = run.request(epoch);
    const std::vector<TensorView> all = {r.files["frozen"][0], r.files["model"][0]};
    r.files = {{"model-00001-of-00002", {all[0]}}, {"model-00002-of-00002", {all[1]}}};
    r.indexes["model"] = shard_index("model", all, std::vector<int>{0, 1}, 2);
    return std::pair{r, all};
  };
  const auto best = CheckpointManager::best_model_path(tmp.path());
  {
    CheckpointManager m(tmp.path());
    for (int e = 0; e < 3; ++e) {
      auto [r, all] = request(e);
      const auto result = m.save(r);
      ASSERT_TRUE(result.is_best);
      save_safetensors(tmp / "whole.safetensors", all);
      EXPECT_EQ(test::read_file(best), test::read_file(tmp / "whole.safetensors")) << e;
    }
  }
  // Damaged, it is merged again on open, from the best checkpoint's shards.
  {
    auto bytes = test::read_file(best);
    bytes[bytes.size() - 1] = static_cast<char>(bytes.back() ^ 1);
    test::write_file(best, bytes);
  }
  CheckpointManager reopened(tmp.path());
  EXPECT_EQ(test::read_file(best), test::read_file(tmp / "whole.safetensors"));
  EXPECT_NO_THROW((void)SafetensorsFile::open(best));
}

}  // namespace
}  // namespace vigil
