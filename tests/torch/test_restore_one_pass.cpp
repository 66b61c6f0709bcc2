// Resuming reads the model's weights once: a checkpoint opened without hashing (the manager
// verified it when it listed it, or verify_on_open is off) is hashed while the weights are read
// in, and a corrupt byte still stops the restore with an error that says so.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"

namespace fs = std::filesystem;
namespace vt = vigil::torch;

namespace {

struct Fixture {
  std::shared_ptr<torch::nn::Sequential> net;
  std::unique_ptr<torch::optim::Adam> adam;
  vt::TrainContext ctx;

  explicit Fixture(int seed) {
    torch::manual_seed(seed);
    net = std::make_shared<torch::nn::Sequential>(torch::nn::Linear(8, 16), torch::nn::ReLU(),
                                                  torch::nn::Linear(16, 2));
    adam =
        std::make_unique<torch::optim::Adam>((*net)->parameters(), torch::optim::AdamOptions(1e-2));
    // One step, so that the optimizer has state to save.
    auto loss = (*net)->forward(torch::randn({4, 8})).pow(2).mean();
    loss.backward();
    adam->step();
    ctx.model = net->ptr();
    ctx.optimizer = adam.get();
    ctx.epochs = 3;
    ctx.steps_per_epoch = 1;
  }
};

// Saves one checkpoint of a seeded model in `run` and returns its folder.
fs::path save_one(const fs::path& run, vt::TrainContext& ctx) {
  vigil::CheckpointManager manager(run);
  auto result =
      vt::save_training_checkpoint(manager, ctx, vigil::SavePoint::EpochEnd, {{"val_loss", 1.0}});
  return result.checkpoint->path;
}

vigil::CheckpointManagerOptions unhashed() {
  return vigil::CheckpointManagerOptions{}.with_verify_on_open(false);
}

}  // namespace

TEST(RestoreOnePass, AnUnhashedCheckpointRestoresExactly) {
  vigil::test::TempDir dir;
  Fixture saved(1);
  save_one(dir.path(), saved.ctx);

  Fixture fresh(2);
  vigil::CheckpointManager manager(dir.path(), unhashed());
  auto point = vt::RestorePoint::from(manager.open(manager.latest()->name));
  ASSERT_TRUE(point.model_xxh3.has_value());
  fresh.ctx.restore(point);
  auto a = vt::module_state(**saved.net), b = vt::module_state(**fresh.net);
  for (const auto& name : a.names()) EXPECT_TRUE(torch::equal(a.at(name), b.at(name))) << name;
}

TEST(RestoreOnePass, AFlippedByteAnywhereInTheModelFileStopsTheRestore) {
  vigil::test::TempDir dir;
  Fixture saved(1);
  const auto folder = save_one(dir.path(), saved.ctx);
  const auto model = folder / "model.safetensors";
  const auto image = vigil::test::read_file(model);
  // A hex digit of a stored checksum in the header (flipped to another hex digit, so that the
  // header stays valid) and a byte of the data.
  auto digit = image.find("\":\"", image.find("vigil.xxh3:")) + 3;
  while (std::string_view("0123456789bcde").find(image[digit]) == std::string_view::npos) ++digit;
  for (const std::size_t offset : {digit, image.size() - 5}) {
    auto bad = image;
    bad[offset] = static_cast<char>(bad[offset] ^ 0x01);
    vigil::test::write_file(model, bad);
    Fixture fresh(2);
    vigil::CheckpointManager manager(dir.path(), unhashed());
    ASSERT_TRUE(manager.latest().has_value());
    auto point = vt::RestorePoint::from(manager.open(manager.latest()->name));
    try {
      fresh.ctx.restore(point);
      ADD_FAILURE() << "a flipped byte at " << offset << " went unnoticed";
    } catch (const vigil::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
      EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    }
  }
  // With verify_on_open the manager finds the damage when it lists the checkpoints.
  vigil::CheckpointManager hashing(dir.path());
  EXPECT_FALSE(hashing.latest().has_value());
}
