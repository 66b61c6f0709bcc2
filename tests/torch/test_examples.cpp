// The examples run for real on tiny subsets: what they write (metrics, checkpoints, best and
// final weights, the learning curve), that a second run resumes, and that saved models reload.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/safetensors.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

fs::path example(const std::string& name) {
  return fs::path(VIGIL_CLI).parent_path() / "examples" / name;
}

RunResult run_example(const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), example(name).string());
  return run_process(args);
}

std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return "";
  return m[1];
}

// Same tensor names, dtypes, shapes and bytes (metadata may differ).
void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const auto fa = vigil::SafetensorsFile::open(a);
  const auto fb = vigil::SafetensorsFile::open(b);
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
  for (const auto& t : fa.tensors()) {
    const auto va = fa.view(t.name), vb = fb.view(t.name);
    EXPECT_EQ(va.dtype, vb.dtype) << t.name;
    EXPECT_EQ(va.shape, vb.shape) << t.name;
    ASSERT_EQ(va.data.size(), vb.data.size()) << t.name;
    EXPECT_TRUE(std::equal(va.data.begin(), va.data.end(), vb.data.begin())) << t.name;
  }
}

std::size_t csv_rows(const fs::path& csv) {
  return vigil::MetricsLog::read(csv).rows();
}

}  // namespace

TEST(Examples, TrainerFashionMnistWritesTheRunAndResumes) {
  TempDir tmp;
  const auto run = tmp / "run";
  const std::vector<std::string> quick = {run.string(), "--limit-train", "600", "--limit-test",
                                          "200",        "--threads",     "1"};
  auto args = quick;
  args.insert(args.end(), {"--epochs", "2"});
  const auto first = run_example("example_trainer_fashion_mnist", args);
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(first.out.find("resumed from"), std::string::npos);
  EXPECT_NE(first.out.find("epoch 1 (2 of 2)"), std::string::npos) << first.out;
  EXPECT_EQ(csv_rows(run / "metrics.csv"), 2u);
  for (const char* f :
       {"best/model.safetensors", "model.safetensors", "learning_curve.svg", "last"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  // The final weights are the restored best ones, which ModelCheckpoint also put in best/.
  expect_same_tensors(run / "model.safetensors", run / "best" / "model.safetensors");
  const std::string acc = match(first.out, "test accuracy: ([0-9.]+) on 200 examples");
  ASSERT_FALSE(acc.empty()) << first.out;
  EXPECT_GT(std::stod(acc), 0.5);  // 540 images, 2 epochs: far above the 10% of chance
  const auto metrics_before = metrics_without_seconds(run / "metrics.csv");

  // Again with more epochs: resumes from the newest checkpoint and appends epochs 2 and 3.
  args = quick;
  args.insert(args.end(), {"--epochs", "4"});
  const auto second = run_example("example_trainer_fashion_mnist", args);
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_NE(second.out.find("resumed from " + (run / "checkpoints").string()), std::string::npos)
      << second.out;
  EXPECT_EQ(second.out.find("epoch 0 (1 of 4)"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("epoch 2 (3 of 4)"), std::string::npos) << second.out;
  const auto metrics_after = metrics_without_seconds(run / "metrics.csv");
  EXPECT_EQ(metrics_after.rfind(metrics_before, 0), 0u) << metrics_after;
  EXPECT_GE(csv_rows(run / "metrics.csv"), 3u);
}

TEST(Examples, CustomLoopDrivesTheCallbacksWithoutTheTrainer) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r =
      run_example("example_custom_loop", {run.string(), "--limit-train", "600", "--epochs", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // One printed line and one metrics.csv row per epoch, the same numbers.
  const auto log = vigil::MetricsLog::read(run / "metrics.csv");
  std::size_t printed = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const std::string v = match(line, "^epoch \\d+: .*val_loss ([0-9.]+)");
    if (v.empty()) continue;
    ASSERT_LT(printed, log.rows());
    EXPECT_NEAR(log.column("val_loss")[printed], std::stod(v), 1e-4) << line;
    EXPECT_EQ(log.column("epoch")[printed], static_cast<double>(printed));
    ++printed;
  }
  EXPECT_EQ(printed, log.rows());
  EXPECT_GE(printed, 2u);
  // EarlyStopping restored the best weights in on_train_end: the final model is best/'s.
  expect_same_tensors(run / "model.safetensors", run / "best" / "model.safetensors");
  const std::string best = match(r.out, "best epoch: (\\d+)");
  ASSERT_FALSE(best.empty()) << r.out;
  double best_val = 1e9;
  long best_epoch = -1;
  for (std::size_t i = 0; i < log.rows(); ++i)
    if (log.column("val_loss")[i] < best_val) best_val = log.column("val_loss")[i], best_epoch = i;
  EXPECT_EQ(std::stol(best), best_epoch);
  // keep_last 2 + the best: never more than 3 checkpoint folders.
  const auto v = run_vigil({"verify", run.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  int folders = 0;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) folders += e.is_directory();
  EXPECT_GE(folders, 1);
  EXPECT_LE(folders, 3);
}

TEST(Examples, CustomLoopResumesInTheMiddleOfAnEpochExactly) {
  TempDir tmp;
  const std::vector<std::string> args = {"--limit-train", "600", "--epochs", "3",
                                         "--patience",    "5"};
  auto with = [&](const fs::path& run, std::vector<std::string> extra) {
    std::vector<std::string> a = {run.string()};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return run_example("example_custom_loop", a);
  };
  ASSERT_EQ(with(tmp / "ref", {}).exit_code, 0);
  // 540 training examples: 9 batches an epoch; step 13 is batch 4 of epoch 1.
  const auto stopped = with(tmp / "run", {"--stop-after-steps", "13"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.out << stopped.err;
  EXPECT_NE(stopped.out.find("interrupted (--stop-after-steps)"), std::string::npos) << stopped.out;
  const auto resumed = with(tmp / "run", {});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("at epoch 1 batch 4"), std::string::npos) << resumed.out;
  EXPECT_EQ(metrics_without_seconds(tmp / "run" / "metrics.csv"),
            metrics_without_seconds(tmp / "ref" / "metrics.csv"));
  expect_same_tensors(tmp / "run" / "model.safetensors", tmp / "ref" / "model.safetensors");
}

TEST(Examples, SeedArticleKeepsTheBestValueSavesPeriodicallyAndReloads) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_example("example_seed_article", {run.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // The best epoch is the first epoch with the lowest val_loss printed (strict improvement).
  std::istringstream lines(r.out);
  std::vector<double> values;
  for (std::string line; std::getline(lines, line);) {
    const std::string v = match(line, "^epoch \\d+: loss \\S+  val_loss ([0-9.]+)");
    if (!v.empty()) values.push_back(std::stod(v));
  }
  ASSERT_GE(values.size(), 12u) << r.out;
  const auto best_it = std::min_element(values.begin(), values.end());
  const long best = best_it - values.begin();
  EXPECT_EQ(match(r.out, "best epoch: (\\d+)"), std::to_string(best)) << r.out;
  // It stopped by patience (10), not at the first worse epoch as the article's loop would.
  const std::string stop = match(r.out, "stopped after epoch (\\d+)");
  ASSERT_FALSE(stop.empty()) << r.out;
  EXPECT_EQ(std::stol(stop), best + 10);
  EXPECT_EQ(values.size(), static_cast<std::size_t>(best + 11));

  // Periodic checkpoints (every 10th epoch) survive rotation next to the best and the newest.
  auto name = [](long e) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "epoch-%04ld", e);
    return std::string(buf);
  };
  for (long e = 9; e <= std::stol(stop); e += 10)
    EXPECT_TRUE(fs::is_directory(run / "checkpoints" / name(e))) << name(e);
  EXPECT_TRUE(fs::is_directory(run / "checkpoints" / name(best)));
  EXPECT_TRUE(fs::is_directory(run / "checkpoints" / name(std::stol(stop))));
  expect_same_tensors(run / "best" / "model.safetensors",
                      run / "checkpoints" / name(best) / "model.safetensors");
  // Reloaded into a fresh network, the best model gives the best epoch's val_loss.
  const std::string reloaded = match(r.out, "reloaded \\S+: val_loss ([0-9.]+)");
  ASSERT_FALSE(reloaded.empty()) << r.out;
  EXPECT_EQ(std::stod(reloaded), *best_it);  // printed exactly (shortest round trip)
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);
}
