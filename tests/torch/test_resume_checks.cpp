// Resume checks in the library: a resume that changes a recorded run option (the caller's own,
// or the Trainer's batch size and accumulation) is refused naming it before anything changes,
// unless the caller marks it as an intended override, which is then warned about, recorded in
// every later checkpoint, and followed exactly (a new batch size goes on after the examples
// already served), in the Trainer and in a hand-written TrainLoop.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "trainer_test_helpers.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/dataset_source.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/train_loop.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
using namespace vigil;
using namespace vigil::torch;
using vigil::test::error_of;
using vigil::test::interrupt_at_poll;
using vigil::test::TempDir;

namespace {

Dataset make_data(std::int64_t n) {
  ::torch::manual_seed(11);
  auto x = ::torch::randn({n, 4});
  return Dataset{x, x.sum(1).gt(0).to(::torch::kLong)};
}

::torch::nn::Sequential make_model() {
  ::torch::manual_seed(3);
  return ::torch::nn::Sequential(::torch::nn::Linear(4, 6), ::torch::nn::ReLU(),
                                 ::torch::nn::Linear(6, 2));
}

struct Run {
  FitResult fit;
  NamedTensors weights;
  nlohmann::json last_state;
};

// The training state of the newest checkpoint folder (read without opening a manager, which
// would wait for the run directory's lock).
nlohmann::json last_state(const fs::path& dir) {
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir / "checkpoints"))
    if (fs::exists(e.path() / "state.json")) folders.push_back(e.path());
  if (folders.empty()) return nullptr;
  std::sort(folders.begin(), folders.end());
  return nlohmann::json::parse(vigil::test::read_file(folders.back() / "state.json")).at("state");
}

Run train(const fs::path& dir, TrainerOptions o, const Dataset& data) {
  auto model = make_model();
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(o.with_threads(1).with_seed(7).with_epochs(2));
  auto manager = std::make_shared<CheckpointManager>(
      dir, CheckpointManagerOptions{}.with_monitor("").with_keep_last(1));
  t.add_callback(std::make_shared<BackupAndRestore>(
      manager, BackupAndRestoreOptions{}.with_save_every_epoch(true)));
  Run r;
  r.fit = t.fit(Model::of(model), *opt, data, Dataset{});
  r.weights = module_state(*model).clone();
  r.last_state = last_state(dir);
  return r;
}

}  // namespace

TEST(ResumeChecks, AChangedCallerOptionIsRefusedNamingItAndNothingChanges) {
  TempDir tmp;
  const auto data = make_data(100);
  const auto o = TrainerOptions{}.with_batch_size(10).with_run_options({{"hidden", 6}});
  ASSERT_TRUE(train(tmp / "run", TrainerOptions(o).with_interrupt(interrupt_at_poll(4)), data)
                  .fit.interrupted);
  const auto before = last_state(tmp / "run");
  EXPECT_EQ(before.at("run_options").at("hidden"), 6);

  auto model = make_model();
  const auto fresh = module_state(*model).clone();
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(TrainerOptions(o).with_run_options({{"hidden", 12}}).with_threads(1));
  t.add_callback(std::make_shared<BackupAndRestore>(std::make_shared<CheckpointManager>(
      tmp / "run", CheckpointManagerOptions{}.with_monitor(""))));
  const auto msg = error_of<InputError>([&] { t.fit(Model::of(model), *opt, data, Dataset{}); });
  EXPECT_NE(msg.find("cannot resume from"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hidden was 6 when it was saved, this run has 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("resume overrides"), std::string::npos) << msg;
  const auto after = module_state(*model);
  for (std::size_t i = 0; i < fresh.size(); ++i)
    EXPECT_TRUE(::torch::equal(after.tensors()[i], fresh.tensors()[i])) << fresh.names()[i];
  EXPECT_EQ(last_state(tmp / "run"), before);  // no checkpoint was written
}

TEST(ResumeChecks, AChangedBatchSizeOrAccumulationIsRefusedNamingIt) {
  TempDir tmp;
  const auto data = make_data(100);
  const auto o = TrainerOptions{}.with_batch_size(10);
  ASSERT_TRUE(train(tmp / "run", TrainerOptions(o).with_interrupt(interrupt_at_poll(4)), data)
                  .fit.interrupted);
  auto msg = error_of<InputError>(
      [&] { train(tmp / "run", TrainerOptions(o).with_batch_size(20), data); });
  EXPECT_NE(msg.find("batch_size was 10 when it was saved, this run has 20"), std::string::npos)
      << msg;
  msg =
      error_of<InputError>([&] { train(tmp / "run", TrainerOptions(o).with_accumulate(2), data); });
  EXPECT_NE(msg.find("accumulate was 1 when it was saved, this run has 2"), std::string::npos)
      << msg;
  // Another option overridden does not let these through.
  msg = error_of<InputError>([&] {
    train(tmp / "run", TrainerOptions(o).with_batch_size(20).with_resume_overrides({"accumulate"}),
          data);
  });
  EXPECT_NE(msg.find("batch_size was 10"), std::string::npos) << msg;
}

TEST(ResumeChecks, AnIntendedBatchSizeGoesOnAfterTheExamplesServedAndIsRecorded) {
  TempDir tmp;
  const auto data = make_data(100);
  // Three steps of 10 examples, then a resume with batches of 20: epoch 0 goes on with the 70
  // examples left (20, 20, 20, 10), epoch 1 has 5 steps.
  ASSERT_TRUE(train(tmp / "run",
                    TrainerOptions{}.with_batch_size(10).with_interrupt(interrupt_at_poll(4)), data)
                  .fit.interrupted);
  const auto r =
      train(tmp / "run", TrainerOptions{}.with_batch_size(20).with_resume_overrides({"batch_size"}),
            data);
  ASSERT_TRUE(r.fit.resumed_from.has_value());
  EXPECT_FALSE(r.fit.interrupted);
  EXPECT_EQ(r.fit.history.size(), 2u);
  EXPECT_EQ(r.fit.history[0].step, 3 + 4);
  EXPECT_EQ(r.fit.global_step, 3 + 4 + 5);
  ASSERT_EQ(r.fit.warnings.size(), 1u);
  EXPECT_NE(r.fit.warnings[0].find("batch_size = 20 instead of 10"), std::string::npos)
      << r.fit.warnings[0];
  const auto expected =
      nlohmann::json::array({{{"option", "batch_size"}, {"from", 10}, {"to", 20}, {"step", 3}}});
  EXPECT_EQ(r.last_state.at("overrides"), expected);
  EXPECT_EQ(r.last_state.at("run_options").at("batch_size"), 20);

  // Resumed again with the new size, the run is simply that run: no new override.
  const auto again = train(tmp / "run", TrainerOptions{}.with_batch_size(20), data);
  EXPECT_TRUE(again.fit.warnings.empty());
  EXPECT_EQ(again.fit.global_step, 12);
}

TEST(ResumeChecks, AnOverrideInterruptedAgainInsideTheEpochStillEndsItWithThePass) {
  TempDir tmp;
  const auto data = make_data(100);
  const auto ref = [&] {
    TempDir ref_dir;
    EXPECT_TRUE(train(ref_dir / "run",
                      TrainerOptions{}.with_batch_size(10).with_interrupt(interrupt_at_poll(4)),
                      data)
                    .fit.interrupted);
    return train(ref_dir / "run",
                 TrainerOptions{}.with_batch_size(20).with_resume_overrides({"batch_size"}), data);
  }();
  ASSERT_TRUE(train(tmp / "run",
                    TrainerOptions{}.with_batch_size(10).with_interrupt(interrupt_at_poll(4)), data)
                  .fit.interrupted);
  // Two of the four steps left in epoch 0, interrupted, then resumed at batch size 20.
  ASSERT_TRUE(train(tmp / "run",
                    TrainerOptions{}
                        .with_batch_size(20)
                        .with_resume_overrides({"batch_size"})
                        .with_interrupt(interrupt_at_poll(3)),
                    data)
                  .fit.interrupted);
  const auto r = train(tmp / "run", TrainerOptions{}.with_batch_size(20), data);
  EXPECT_EQ(r.fit.global_step, ref.fit.global_step);
  for (std::size_t i = 0; i < ref.weights.size(); ++i)
    EXPECT_TRUE(::torch::equal(r.weights.tensors()[i], ref.weights.tensors()[i]));
}

TEST(ResumeChecks, DatasetSourceRepositionsByExamplesOnlyWhenTheOverrideIsAccepted) {
  const auto data = make_data(50);
  DatasetSource a(data, DatasetSourceOptions{}.with_batch_size(6).with_seed(2));
  a.set_epoch(1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.next());
  const auto saved = a.state();
  EXPECT_EQ(saved.at("position"), 18);

  DatasetSource b(data, DatasetSourceOptions{}.with_batch_size(8).with_seed(2));
  EXPECT_THROW(b.load_state(saved), InputError);
  b.accept_overrides({"batch_size"});
  b.load_state(saved);
  const auto order = epoch_order(50, 2, 1, true);
  std::vector<std::int64_t> rest(order.begin() + 18, order.end());
  std::vector<std::int64_t> served;
  while (auto batch = b.next()) {
    EXPECT_LE(batch->features.size(0), 8);
    for (std::int64_t i = 0; i < batch->features.size(0); ++i) {
      // Each row is found by value: the features of distinct examples differ.
      const auto row = batch->features[i];
      for (std::int64_t j = 0; j < data.size(); ++j)
        if (::torch::equal(data.features[j], row)) served.push_back(j);
    }
  }
  EXPECT_EQ(served, rest);
}

TEST(ResumeChecks, AHandWrittenLoopRefusesAndAcceptsTheSameWay) {
  TempDir tmp;
  const auto data = make_data(40);
  auto run = [&](std::int64_t batch_size, std::set<std::string> overrides, int stop_at) {
    auto model = make_model();
    auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
    CallbackList callbacks;
    callbacks.add(std::make_shared<BackupAndRestore>(
        std::make_shared<CheckpointManager>(
            tmp / "run", CheckpointManagerOptions{}.with_monitor("").with_keep_last(1)),
        BackupAndRestoreOptions{}.with_save_every_epoch(true)));
    DatasetSource source(data, DatasetSourceOptions{}.with_batch_size(batch_size));
    TrainLoop loop(callbacks, model.ptr(), opt.get(), source,
                   TrainLoopOptions{}
                       .with_epochs(1)
                       .with_run_options({{"batch_size", batch_size}})
                       .with_resume_overrides(std::move(overrides))
                       .with_interrupt(interrupt_at_poll(stop_at)));
    std::int64_t examples = 0;
    while (loop.next_epoch()) {
      while (auto b = loop.next_batch()) {
        opt->zero_grad();
        auto loss = ::torch::nn::functional::cross_entropy(model->forward(b->features), b->targets);
        loss.backward();
        opt->step();
        examples += b->features.size(0);
        loop.end_batch({{"loss", loss.item<double>()}}, b->features.size(0));
      }
      if (loop.context().interrupted) break;
      loop.end_epoch(loop.epoch_means());
    }
    loop.end();
    return examples;
  };
  EXPECT_EQ(run(4, {}, 3), 8);  // two batches of 4, then interrupted
  const auto msg = error_of<InputError>([&] { run(16, {}, 0); });
  EXPECT_NE(msg.find("batch_size was 4 when it was saved, this run has 16"), std::string::npos)
      << msg;
  EXPECT_EQ(run(16, {"batch_size"}, 0), 32);  // the 32 examples left, none twice
  EXPECT_EQ(last_state(tmp / "run").at("overrides").size(), 1u);
}

// Resumed with fewer epochs than the run had already done, the run did not "complete all 2".
TEST(ResumeChecks, FewerEpochsThanAlreadyRunAreReportedAsSuch) {
  TempDir tmp;
  const auto data = make_data(40);
  auto fit = [&](int epochs) {
    auto model = make_model();
    auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
    Trainer t(TrainerOptions{}.with_threads(1).with_batch_size(10).with_epochs(epochs));
    t.add_callback(std::make_shared<BackupAndRestore>(
        std::make_shared<CheckpointManager>(tmp / "run",
                                            CheckpointManagerOptions{}.with_monitor("")),
        BackupAndRestoreOptions{}.with_save_every_epoch(true)));
    return t.fit(Model::of(model), *opt, data, Dataset{});
  };
  EXPECT_EQ(fit(3).stop_reason, "it completed all 3 epochs");
  EXPECT_EQ(fit(2).stop_reason, "it had already run 3 epochs, more than the 2 asked");
  EXPECT_EQ(fit(3).stop_reason, "it completed all 3 epochs");
}
