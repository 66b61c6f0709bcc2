// Exact resume of `vigil train`: a run killed with SIGKILL (at an epoch end, in the middle of an
// epoch) and resumed ends byte-identical to an uninterrupted run with the same seed.
#include <gtest/gtest.h>

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

class Resume : public SharedRunTest<Resume> {
 public:
  static std::vector<std::string> shared_run_args(const fs::path& dir) { return run_args(dir); }

 protected:
  static void SetUpTestSuite() {
    SharedRunTest::SetUpTestSuite();
    ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  }
};

}  // namespace

TEST_F(Resume, ReferenceRunStoppedEarlyAndRestoredTheBestWeights) {
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  // The point of these tests is the interplay: make sure the reference run exercises it.
  EXPECT_TRUE(result.at("restored_best_weights").get<bool>());
  EXPECT_GE(result.at("epochs_run").get<int>(), 3);
}

TEST_F(Resume, KilledAtAnEpochEndResumesExactly) {
  const auto out = expect_exact_resume(shared_run(), run_args, {"--debug-kill-after-epochs", "2"});
  EXPECT_NE(out.find("resuming"), std::string::npos) << out;
}

TEST_F(Resume, KilledInTheMiddleOfAnEpochResumesExactly) {
  // 512 examples, 10% validation: 461 train, 8 batches an epoch. Step checkpoints every 5 steps;
  // the kill after step 13 (epoch 1, batch 5) resumes from step 10 (epoch 1, batch 2).
  const auto out = expect_exact_resume(
      shared_run(), run_args, {"--save-every-n-steps", "5", "--debug-kill-after-batches", "13"},
      {"--save-every-n-steps", "5"});
  EXPECT_NE(out.find("step 10)"), std::string::npos) << out;
}

TEST_F(Resume, AFinishedRunIsNotTrainedAgain) {
  TempDir tmp;
  fs::copy(shared_run(), tmp.path() / "run", fs::copy_options::recursive);
  fs::remove(tmp.path() / "run" / ".vigil.lock");
  auto again = run_vigil(run_args(tmp.path() / "run"));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("had already finished"), std::string::npos) << again.out;
  expect_same_run(tmp.path() / "run", shared_run());
}
