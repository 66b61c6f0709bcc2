// More `vigil train` runs end to end: the cnn model, resume with --save-best-only (resume state in
// DIR/backup/), the learning curve written during training (the picture `vigil plot` redraws),
// the progress display modes, and 0-based epoch numbering in every message.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/safetensors.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

std::vector<std::string> best_only_args(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--patience", "1", "--epochs", "6", "--save-best-only"};
  a.insert(a.end(), extra.begin(), extra.end());
  return quick_train(dir, a);
}

class SaveBestOnly : public SharedRunTest<SaveBestOnly> {
 public:
  static std::vector<std::string> shared_run_args(const fs::path& dir) {
    return best_only_args(dir);
  }
};

}  // namespace

TEST(TrainCnn, TrainsEvaluatesAndRecordsTheModel) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r =
      run_vigil(quick_train(run, {"--model", "cnn", "--channels", "4,8", "--hidden", "32",
                                  "--epochs", "2", "--limit-train", "384", "--limit-test", "200"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto cfg = nlohmann::json::parse(read_file(run / "run.json"));
  EXPECT_EQ(cfg.at("model"), "cnn");
  EXPECT_EQ(cfg.at("channels"), nlohmann::json::array({4, 8}));
  // The weights are the convolutional net's, under PyTorch's nn.Sequential names.
  const auto f = vigil::SafetensorsFile::open(run / "model.safetensors");
  EXPECT_EQ(f.view("0.weight").shape, (std::vector<std::uint64_t>{4, 1, 3, 3}));
  EXPECT_EQ(f.view("3.weight").shape, (std::vector<std::uint64_t>{8, 4, 3, 3}));
  const auto result = nlohmann::json::parse(read_file(run / "result.json"));
  EXPECT_EQ(result.at("epochs_run"), 2);
  EXPECT_GT(result.at("test").at("accuracy").get<double>(), 0.4);  // chance is 0.1
  // eval rebuilds the cnn from run.json and gets the same accuracy.
  const auto e = run_vigil({"eval", "--model", run.string(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out).at("metrics").at("accuracy"),
            result.at("test").at("accuracy"));
  EXPECT_NE(r.out.find("epoch 1 (2 of 2)"), std::string::npos) << r.out;
}

TEST_F(SaveBestOnly, ReferenceRunKeepsOnlyImprovementsAndItsResumeStateInBackup) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  EXPECT_GE(result.at("epochs_run").get<int>(), 3);
  // Only improving epochs were saved; the resume state lives in backup/ (one checkpoint).
  const auto best_epoch = result.at("best_epoch").get<int>();
  char best_name[32];
  std::snprintf(best_name, sizeof best_name, "epoch-%04d", best_epoch);
  const auto kept = folders(shared_run() / "checkpoints");
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back(), best_name);
  const auto backup = folders(shared_run() / "backup" / "checkpoints");
  ASSERT_EQ(backup.size(), 1u);
  EXPECT_EQ(backup[0].rfind("epoch-", 0), 0u);
  EXPECT_EQ(run_vigil({"verify", shared_run().string()}).exit_code, 0);
}

TEST_F(SaveBestOnly, KilledAtAnEpochEndResumesFromBackupExactly) {
  ASSERT_EQ(result().exit_code, 0);
  const auto out =
      expect_exact_resume(shared_run(), best_only_args, {"--debug-kill-after-epochs", "2"});
  // Epochs 0 and 1 had finished: the resume starts after epoch 1, from backup/.
  EXPECT_NE(out.find("from checkpoint epoch-0001-step-16 (saved at the end of epoch 1"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("epoch 1 ("), std::string::npos) << out;
  EXPECT_NE(out.find("epoch 2 (3 of 6)"), std::string::npos) << out;
}

TEST_F(SaveBestOnly, KilledInTheMiddleOfAnEpochResumesFromTheLastEpochEndExactly) {
  ASSERT_EQ(result().exit_code, 0);
  // 8 batches an epoch: step 21 is inside epoch 2. Step saves are skipped under
  // --save-best-only (no validation metric), so the resume state is the end of epoch 1.
  const auto out =
      expect_exact_resume(shared_run(), best_only_args, {"--debug-kill-after-batches", "21"});
  EXPECT_NE(out.find("(saved at the end of epoch 1, step 16)"), std::string::npos) << out;
}

TEST(SaveBestOnlySignal, InterruptedBySigintWritesItsCheckpointToBackupAndResumes) {
  TempDir tmp;
  const auto run = tmp.path() / "run";
  // Long enough that the signal lands while training: many epochs, no early stop.
  const auto args = quick_train(
      run, {"--epochs", "200", "--patience", "1000", "--limit-train", "2048", "--save-best-only"});
  {
    VigilProcess p(args, tmp / "out.txt", tmp / "err.txt");
    ASSERT_TRUE(p.wait_for_output("epoch 0 (1 of 200)")) << p.out() << p.err();
    p.signal(SIGINT);
    EXPECT_EQ(p.wait(), 130) << p.out() << p.err();
    EXPECT_NE(p.out().find("interrupted by SIGINT in epoch "), std::string::npos) << p.out();
    // --save-best-only skips checkpoints without a validation metric: the interrupt's goes to
    // backup/, where the resume finds it.
    EXPECT_NE(p.out().find("checkpoint " + (run / "backup" / "checkpoints").string()),
              std::string::npos)
        << p.out();
  }
  auto again = args;
  again.insert(again.end(), {"--patience", "1"});  // the last one wins; patience may change
  const auto resumed = run_vigil(again);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("resuming " + run.string() + " from checkpoint "), std::string::npos)
      << resumed.out;
  // One metrics row per epoch, 0, 1, 2, ... without gaps or repeats across the interruption.
  const auto result = nlohmann::json::parse(read_file(run / "result.json"));
  std::istringstream csv(read_file(run / "metrics.csv"));
  std::string line;
  std::getline(csv, line);  // header
  int rows = 0;
  while (std::getline(csv, line)) {
    EXPECT_EQ(line.substr(0, line.find(',')), std::to_string(rows)) << line;
    ++rows;
  }
  EXPECT_EQ(rows, result.at("epochs_run").get<int>());
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);
}

TEST(TrainOutput, LearningCurveIsWrittenAndIsWhatVigilPlotDraws) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_vigil(quick_train(run, {"--epochs", "6", "--patience", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string svg = read_file(run / "learning_curve.svg");
  EXPECT_NE(svg.find("class=\"best-epoch\""), std::string::npos);
  const auto result = nlohmann::json::parse(read_file(run / "result.json"));
  EXPECT_NE(svg.find("data-epoch=\"" + std::to_string(result.at("best_epoch").get<int>()) + "\""),
            std::string::npos);
  if (result.at("stopped_early").get<bool>()) {
    EXPECT_NE(svg.find("class=\"stop-epoch\""), std::string::npos);
  }
  // `vigil plot` redraws the same picture from the run directory.
  const auto p = run_vigil({"plot", run.string(), "--out", (tmp / "plot.svg").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(read_file(tmp / "plot.svg"), svg);
}

TEST(TrainOutput, EpochsAreZeroBasedEverywhereAndUnambiguous) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_vigil(quick_train(run, {"--epochs", "3", "--patience", "100"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Not a terminal: one plain line per epoch, index then count.
  for (const char* s :
       {"\nepoch 0 (1 of 3): 8 batches in ", "\nepoch 1 (2 of 3): ", "\nepoch 2 (3 of 3): ",
        "stopped: it completed all 3 epochs\n", "epochs run: 3 (epoch 0 to 2, 0-based)\n"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_EQ(r.out.find("epoch 3"), std::string::npos) << r.out;
  // The checkpoint an epoch line reports is named after that same 0-based epoch.
  const std::regex saved("\nepoch (\\d) \\(\\d of 3\\): [^\n]*saved epoch-000(\\d)");
  int lines = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), saved);
       it != std::sregex_iterator(); ++it, ++lines)
    EXPECT_EQ((*it)[1], (*it)[2]) << it->str();
  EXPECT_EQ(lines, 3) << r.out;
  const std::string best = std::to_string(
      nlohmann::json::parse(read_file(run / "result.json")).at("best_epoch").get<int>());
  EXPECT_NE(r.out.find("best epoch: " + best + " (val_loss "), std::string::npos) << r.out;
}

TEST(TrainOutput, ProgressBarCanBeForced) {
  TempDir tmp;
  const auto r = run_vigil(
      quick_train(tmp / "run", {"--epochs", "1", "--limit-train", "128", "--progress", "bar"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\repoch 0 (1 of 1) ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("] 2/2"), std::string::npos) << r.out;
  const auto bad = run_vigil(quick_train(tmp / "run2", {"--progress", "fancy"}));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--progress"), std::string::npos) << bad.err;
}
