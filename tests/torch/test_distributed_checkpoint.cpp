// Sharded checkpoints of data-parallel runs (2 ranks as threads on the loopback): the Hugging
// Face layout, loading with 1 and with 2 ranks, and a rank failing mid-save aborting that
// checkpoint everywhere while committed ones stay intact.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "distributed_test_helpers.hpp"
#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/sharded_files.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
namespace vt = vigil::torch;
using namespace std::chrono_literals;
using namespace vigil::test;

namespace {

vigil::CheckpointManagerOptions manager_options() {
  return vigil::CheckpointManagerOptions{}.with_monitor("val_loss").with_keep_last(-1);
}

// One rank's run: `epochs` epochs with Adam, sharded checkpoints into `run` (rank 0 holds the
// manager and a BackupAndRestore, so a second call resumes); `group` null = alone (then an
// ordinary ModelCheckpoint-free run that only resumes). Returns the final weights.
vt::NamedTensors train(std::shared_ptr<vt::ProcessGroup> group, const fs::path& run, int epochs,
                       vt::ShardedCheckpointOptions ckpt = {}) {
  auto net = make_mlp(9);
  ::torch::optim::Adam opt(net->parameters(), ::torch::optim::AdamOptions(0.01));
  vt::Trainer trainer(
      vt::TrainerOptions{}.with_epochs(epochs).with_batch_size(16).with_seed(4).with_distributed(
          group));
  std::shared_ptr<vigil::CheckpointManager> manager;
  if (!group || group->is_main()) {
    manager = std::make_shared<vigil::CheckpointManager>(run, manager_options());
    trainer.add_callback(std::make_shared<vt::BackupAndRestore>(manager));
  }
  if (group)
    trainer.add_callback(std::make_shared<vt::ShardedModelCheckpoint>(group, manager, ckpt));
  trainer.fit(vt::Model::of(net), opt, make_data(90, 1), make_data(30, 2));
  return vt::module_state(*net).clone();
}

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override { ::torch::set_num_threads(1); }
};

}  // namespace

TEST(ShardFiles, NamesPlanAndIndexFollowHuggingFace) {
  EXPECT_EQ(vigil::shard_file_name("model", 0, 2), "model-00001-of-00002.safetensors");
  EXPECT_EQ(vigil::shard_file_name("optimizer", 11, 12), "optimizer-00012-of-00012.safetensors");
  EXPECT_EQ(vigil::shard_index_file_name("model"), "model.safetensors.index.json");
  std::vector<std::byte> big(400), mid(240), small(160), tiny(4);
  std::vector<vigil::TensorView> t = {{"a", vigil::DType::U8, {4}, tiny},
                                      {"b", vigil::DType::U8, {400}, big},
                                      {"c", vigil::DType::U8, {240}, mid},
                                      {"d", vigil::DType::U8, {160}, small}};
  // Largest first to the least loaded shard: b -> 0, c -> 1, d -> 1 (240 < 400); then both hold
  // 400 bytes and the tie goes to the lower shard: a -> 0.
  const auto plan = vigil::plan_shards(t, 2);
  EXPECT_EQ(plan, (std::vector<int>{0, 0, 1, 1}));
  const auto index = vigil::shard_index("model", t, plan, 2);
  EXPECT_EQ(index.at("metadata").at("total_size"), 804);
  EXPECT_EQ(index.at("weight_map").at("b"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(index.at("weight_map").at("d"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(vigil::plan_shards(t, 1), (std::vector<int>{0, 0, 0, 0}));
}

TEST_F(ShardedCheckpoint, TwoRanksWriteShardsThatOneOrTwoRanksLoad) {
  TempDir tmp;
  const fs::path run = tmp / "run";
  // Reference: 3 uninterrupted epochs on 2 ranks.
  std::vector<vt::NamedTensors> full(2);
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    full[r] = train(g, tmp / "reference", 3);
  });
  for (auto& e : errors) ASSERT_FALSE(e) << message(e);

  // 2 epochs on 2 ranks: sharded checkpoints.
  std::vector<vt::NamedTensors> two(2);
  errors =
      run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) { two[r] = train(g, run, 2); });
  for (auto& e : errors) ASSERT_FALSE(e) << message(e);
  const fs::path ckpt = run / "checkpoints" / "epoch-0001";
  for (const char* f :
       {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "optimizer-00001-of-00002.safetensors",
        "optimizer-00002-of-00002.safetensors", "optimizer.safetensors.index.json", "state.json"})
    EXPECT_TRUE(fs::exists(ckpt / f)) << f;
  EXPECT_FALSE(fs::exists(ckpt / "model.safetensors"));
  const auto info = vigil::verify_checkpoint(ckpt);  // every shard listed, hashed and intact
  EXPECT_EQ(info.files.size(), 4u);
  // The shards hold every weight once, and together they are the trained model.
  auto model = vigil::open_sharded(ckpt, "model");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->shards.size(), 2u);
  auto loaded = make_mlp(9);
  vt::load_module_state(*loaded, model->views());
  expect_equal(vt::module_state(*loaded), two[0]);
  // best/ stays one plain file.
  auto best = vigil::SafetensorsFile::open(vigil::CheckpointManager::best_model_path(run));
  EXPECT_EQ(best.tensors().size(), 4u);
  // Committed through the manager: a fresh manager finds it as the newest intact checkpoint.
  {
    vigil::CheckpointManager m(run, manager_options());
    ASSERT_TRUE(m.latest());
    EXPECT_EQ(m.latest()->name, "epoch-0001");
  }

  // Resumed by 2 ranks: the same weights as the uninterrupted 2-rank run, bit for bit.
  fs::copy(run, tmp / "run1", fs::copy_options::recursive);
  std::vector<vt::NamedTensors> resumed(2);
  errors = run_ranks(
      2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) { resumed[r] = train(g, run, 3); });
  for (auto& e : errors) ASSERT_FALSE(e) << message(e);
  expect_equal(resumed[0], full[0]);
  expect_equal(resumed[1], full[0]);

  // Resumed by 1 process from the same sharded checkpoint: the same up to reduction order.
  const auto alone = train(nullptr, tmp / "run1", 3);
  expect_close(alone, full[0], 1e-4);
}

TEST_F(ShardedCheckpoint, AFailedShardAbortsTheCheckpointOnEveryRankAndKeepsTheCommittedOnes) {
  TempDir tmp;
  const fs::path run = tmp / "run";
  auto full_disk = std::make_shared<FullDiskOps>();
  std::vector<std::exception_ptr> errors =
      run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
        vt::ShardedCheckpointOptions o;
        if (r == 1) {
          // Rank 1's disk fills up after its first checkpoint.
          o.with_ops(full_disk).with_after_shards_written([&] { full_disk->full = true; });
        }
        train(g, run, 3, o);
      });
  const std::string e0 = message(errors[0]);
  const std::string e1 = message(errors[1]);
  EXPECT_NE(e0.find("checkpoint aborted: rank 1 could not write its shards"), std::string::npos)
      << e0;
  EXPECT_NE(e0.find("No space left on device"), std::string::npos) << e0;
  EXPECT_NE(e1.find("rank 1: the checkpoint was aborted"), std::string::npos) << e1;
  // Epoch 0's checkpoint is committed and intact; epoch 1's never appeared, nor any leftover.
  EXPECT_NO_THROW(vigil::verify_checkpoint(run / "checkpoints" / "epoch-0000"));
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "epoch-0001"));
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    EXPECT_TRUE(e.path().filename() == "epoch-0000" || e.path().filename() == "manifest.json")
        << e.path();

  // The run resumes from it (disk freed).
  full_disk->full = false;
  errors = run_ranks(2, [&](int, std::shared_ptr<vt::ProcessGroup> g) { train(g, run, 3); });
  for (auto& e : errors) EXPECT_FALSE(e) << message(e);
  EXPECT_NO_THROW(vigil::verify_checkpoint(run / "checkpoints" / "epoch-0002"));
}
