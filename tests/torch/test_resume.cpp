// Exact resume of `vigil train`: a run killed with SIGKILL (at an epoch end, in the middle of an
// epoch) and resumed ends byte-identical to an uninterrupted run with the same seed.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// Early stopping with a patience of 1 on a tiny run, so that stopping, restoring the best
// weights and rotating checkpoints all happen within the few epochs.
std::vector<std::string> run_args(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--patience",  "1", "--epochs",     "6",
                                "--keep-last", "1", "--save-top-k", "1"};
  a.insert(a.end(), extra.begin(), extra.end());
  return quick_train(dir, a);
}

class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = std::make_unique<TempDir>();
    auto r = run_vigil(run_args(ref_->path() / "run"));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  static void TearDownTestSuite() { ref_.reset(); }
  static fs::path ref() { return ref_->path() / "run"; }

  static void expect_same_as_reference(const fs::path& run) {
    EXPECT_EQ(read_file(run / "model.safetensors"), read_file(ref() / "model.safetensors"))
        << "final weights differ";
    EXPECT_EQ(read_file(run / "best" / "model.safetensors"),
              read_file(ref() / "best" / "model.safetensors"))
        << "best weights differ";
    EXPECT_EQ(metrics_without_seconds(run / "metrics.csv"),
              metrics_without_seconds(ref() / "metrics.csv"));
    const auto a = nlohmann::json::parse(read_file(run / "result.json"));
    const auto b = nlohmann::json::parse(read_file(ref() / "result.json"));
    for (const char* k : {"stop_reason", "best_epoch", "best_value", "test", "global_step"})
      EXPECT_EQ(a.at(k), b.at(k)) << k;
  }

  static inline std::unique_ptr<TempDir> ref_;
};

}  // namespace

TEST_F(Resume, ReferenceRunStoppedEarlyAndRestoredTheBestWeights) {
  const auto result = nlohmann::json::parse(read_file(ref() / "result.json"));
  // The point of these tests is the interplay: make sure the reference run exercises it.
  EXPECT_TRUE(result.at("restored_best_weights").get<bool>());
  EXPECT_GE(result.at("epochs_run").get<int>(), 3);
}

TEST_F(Resume, KilledAtAnEpochEndResumesExactly) {
  TempDir tmp;
  const auto run = tmp.path() / "run";
  auto killed = run_vigil(run_args(run, {"--debug-kill-after-epochs", "2"}));
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
  ASSERT_FALSE(fs::exists(run / "result.json"));
  auto resumed = run_vigil(run_args(run));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  expect_same_as_reference(run);
}

TEST_F(Resume, KilledInTheMiddleOfAnEpochResumesExactly) {
  // 512 examples, 10% validation: 461 train, 8 batches an epoch. Step checkpoints every 5 steps;
  // the kill after step 13 (epoch 1, batch 5) resumes from step 10 (epoch 1, batch 2).
  TempDir tmp;
  const auto run = tmp.path() / "run";
  auto killed =
      run_vigil(run_args(run, {"--save-every-n-steps", "5", "--debug-kill-after-batches", "13"}));
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
  auto resumed = run_vigil(run_args(run, {"--save-every-n-steps", "5"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("step 10)"), std::string::npos) << resumed.out;
  expect_same_as_reference(run);
}

TEST_F(Resume, AFinishedRunIsNotTrainedAgain) {
  TempDir tmp;
  fs::copy(ref(), tmp.path() / "run", fs::copy_options::recursive);
  fs::remove(tmp.path() / "run" / ".vigil.lock");
  auto again = run_vigil(run_args(tmp.path() / "run"));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("had already finished"), std::string::npos) << again.out;
  expect_same_as_reference(tmp.path() / "run");
}
