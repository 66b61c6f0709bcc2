// A run's identity: every checkpoint records its run, a checkpoint of another run is refused,
// and the manifest records what best/ holds.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"

namespace vigil {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

SaveRequest request(std::vector<float>& weights, std::int64_t epoch, double val_loss) {
  std::fill(weights.begin(), weights.end(), static_cast<float>(epoch));
  SaveRequest r;
  r.epoch = epoch;
  r.metrics["val_loss"] = val_loss;
  r.files["model"] = {TensorView{"w", DType::F32, {4}, std::as_bytes(std::span(weights))}};
  return r;
}

nlohmann::json manifest_of(const fs::path& run) {
  return nlohmann::json::parse(test::read_file(CheckpointManager::manifest_path(run)));
}

TEST(RunIdentity, ACheckpointOfAnotherRunIsRefusedOneWithoutAnIdIsAdopted) {
  TempDir tmp;
  std::vector<float> w(4);
  const auto ours = CheckpointManagerOptions{}.with_run_id("0123456789abcdef");
  {
    CheckpointManager m(tmp / "run", ours);
    const auto saved = m.save(request(w, 0, 0.5));
    EXPECT_EQ(saved.checkpoint->run_id, "0123456789abcdef");
    EXPECT_EQ(manifest_of(tmp / "run")["run_id"], "0123456789abcdef");
  }
  {  // A run made before runs had ids: its checkpoints record none.
    CheckpointManager old(tmp / "old");
    EXPECT_TRUE(old.save(request(w, 0, 0.4)).checkpoint->run_id.empty());
    EXPECT_TRUE(manifest_of(tmp / "old")["run_id"].is_null());
  }
  {
    CheckpointManager other(tmp / "other",
                            CheckpointManagerOptions{}.with_run_id("fedcba9876543210"));
    (void)other.save(request(w, 0, 0.3));
  }
  // Reopened under its own id, the run resumes; an id-less checkpoint copied in is adopted.
  fs::copy(tmp / "old" / "checkpoints" / "epoch-0000", tmp / "run" / "checkpoints" / "older",
           fs::copy_options::recursive);
  EXPECT_EQ(CheckpointManager(tmp / "run", ours).checkpoints().size(), 2U);
  // One of another run is refused by name, before anything in the run changes.
  fs::copy(tmp / "other" / "checkpoints" / "epoch-0000", tmp / "run" / "checkpoints" / "epoch-0009",
           fs::copy_options::recursive);
  const auto before = test::read_file(CheckpointManager::manifest_path(tmp / "run"));
  try {
    CheckpointManager refused(tmp / "run", ours);
    FAIL() << "a checkpoint of another run was adopted";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("epoch-0009 belongs to another run (run id fedcba9876543210, this run's "
                       "is 0123456789abcdef)"),
              std::string::npos)
        << msg;
  }
  EXPECT_EQ(test::read_file(CheckpointManager::manifest_path(tmp / "run")), before);
  // Without an id of its own a manager (a library user who never set one) refuses nothing.
  EXPECT_EQ(CheckpointManager(tmp / "run").checkpoints().size(), 3U);
}

TEST(RunIdentity, TheManifestRecordsWhatBestHolds) {
  TempDir tmp;
  std::vector<float> w(4);
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_save_best_only(false));
  EXPECT_TRUE(manifest_of(tmp.path())["best_copy"].is_null());
  const auto first = m.save(request(w, 0, 0.5));
  (void)m.save(request(w, 1, 0.9));  // not better: best/ stays the first
  const auto copy = manifest_of(tmp.path())["best_copy"];
  const auto& file = first.checkpoint->files.front();
  ASSERT_EQ(file.file, "model.safetensors");
  EXPECT_EQ(copy["bytes"], file.bytes);
  EXPECT_EQ(copy["xxh3"], fmt::format("{:016x}", file.xxh3));
  EXPECT_EQ(copy["xxh3"],
            fmt::format("{:016x}", xxh3_file(CheckpointManager::best_model_path(tmp.path()))));
}

}  // namespace
}  // namespace vigil
