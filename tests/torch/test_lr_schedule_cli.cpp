// `vigil train --lr-schedule/--warmup-steps/--final-lr` end to end on a small slice of
// Fashion-MNIST: the lr column of metrics.csv follows the formula, a killed and resumed run ends
// with the uninterrupted run's lr sequence, changed values on resume and bad values are refused.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// expect_one_line_error with the exit code of a usage error unless told otherwise.
void expect_failure(const RunResult& r, const std::string& part, int code = 2) {
  expect_one_line_error(r, part, code);
}

// 512 examples, 10% validation: 461 train, 8 steps an epoch; 4 epochs = 32 planned steps.
constexpr std::int64_t kTotal = 32;
constexpr double kB = 0.01;
constexpr double kF = 0.001;

std::vector<std::string> args(const fs::path& run, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--epochs",      "4",      "--patience",     "100",
                                "--lr",          "0.01",   "--optimizer",    "sgd",
                                "--lr-schedule", "cosine", "--warmup-steps", "5",
                                "--final-lr",    "0.001"};
  a.insert(a.end(), extra.begin(), extra.end());
  return quick_train(run, a);
}

struct Row {
  std::int64_t step = 0;
  double lr = 0;
};

// (step, lr) of every metrics.csv row.
std::vector<Row> lr_column(const fs::path& csv) {
  const auto table = read_csv(csv);
  const auto& header = table.header;
  const auto lr_at = std::find(header.begin(), header.end(), "lr") - header.begin();
  EXPECT_LT(lr_at, static_cast<std::ptrdiff_t>(header.size())) << "no lr column in " << csv;
  std::vector<Row> rows;
  for (const auto& cells : table.rows)
    rows.push_back(Row{std::stoll(cells.at(1)), std::stod(cells.at(lr_at))});
  return rows;
}

// The cosine formula of lr_schedule.hpp for step s, written out here.
double cosine(std::int64_t s, std::int64_t w) {
  if (s < w) return kB * static_cast<double>(s + 1) / static_cast<double>(w);
  const double p =
      std::clamp(static_cast<double>(s - w) / static_cast<double>(kTotal - w), 0.0, 1.0);
  return kF + (kB - kF) * (1 + std::cos(std::numbers::pi * p)) / 2;
}

}  // namespace

TEST(LrScheduleCli, TheLrColumnFollowsTheScheduleAndIsRecorded) {
  TempDir tmp;
  const auto r = run_vigil(args(tmp / "run"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto rows = lr_column(tmp / "run" / "metrics.csv");
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& row : rows)  // the lr of each epoch's last step, s = step - 1
    EXPECT_NEAR(row.lr, cosine(row.step - 1, 5), 1e-6 * kB) << row.step;
  EXPECT_LT(rows.back().lr, rows.front().lr / 2);  // it did decay
  const auto cfg = nlohmann::json::parse(read_file(tmp / "run" / "run.json"));
  EXPECT_EQ(cfg.at("lr_schedule"), "cosine");
  EXPECT_EQ(cfg.at("warmup_steps"), 5);
  EXPECT_EQ(cfg.at("final_lr"), 0.001);

  // A step schedule, with a warm-up longer than one epoch: epoch 0 ends inside it.
  const auto s =
      run_vigil(quick_train(tmp / "step", {"--epochs", "3", "--patience", "100", "--lr", "0.01",
                                           "--lr-schedule", "step:6:0.5", "--warmup-steps", "10"}));
  ASSERT_EQ(s.exit_code, 0) << s.out << s.err;
  const auto steps = lr_column(tmp / "step" / "metrics.csv");
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_NEAR(steps[0].lr, kB * 8 / 10, 1e-9);  // s = 7: warm-up
  EXPECT_NEAR(steps[1].lr, kB, 1e-9);           // s = 15: floor((15 - 10) / 6) = 0
  EXPECT_NEAR(steps[2].lr, kB / 4, 1e-9);       // s = 23: floor(13 / 6) = 2
}

TEST(LrScheduleCli, AKilledAndResumedRunEndsWithTheSameLrSequence) {
  TempDir tmp;
  const auto whole = run_vigil(args(tmp / "whole", {"--save-every-n-steps", "5"}));
  ASSERT_EQ(whole.exit_code, 0) << whole.out << whole.err;
  // Killed after step 13 (epoch 1, batch 5): resumes from the step-10 checkpoint, in the warm-up's
  // aftermath and mid-epoch.
  const auto killed = run_vigil(
      args(tmp / "run", {"--save-every-n-steps", "5", "--debug-kill-after-batches", "13"}));
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
  const auto resumed = run_vigil(args(tmp / "run", {"--save-every-n-steps", "5"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("step 10)"), std::string::npos) << resumed.out;
  const auto a = lr_column(tmp / "whole" / "metrics.csv");
  const auto b = lr_column(tmp / "run" / "metrics.csv");
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].lr, b[i].lr) << i;
  }
  EXPECT_EQ(metrics_without_seconds(tmp / "run" / "metrics.csv"),
            metrics_without_seconds(tmp / "whole" / "metrics.csv"));
}

TEST(LrScheduleCli, TheScheduleCannotChangeOnResume) {
  TempDir tmp;
  const auto killed = run_vigil(args(tmp / "run", {"--debug-kill-after-epochs", "1"}));
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.out << killed.err;
  expect_failure(run_vigil(args(tmp / "run", {"--lr-schedule", "linear"})),
                 "--lr-schedule cannot change when resuming");
  expect_failure(run_vigil(args(tmp / "run", {"--warmup-steps", "2"})),
                 "--warmup-steps cannot change");
  expect_failure(run_vigil(args(tmp / "run", {"--final-lr", "0"})), "--final-lr cannot change");
}

TEST(LrScheduleCli, BadValuesAreRefusedBeforeAnyWork) {
  TempDir tmp;
  const auto run = tmp / "r";
  expect_failure(run_vigil(quick_train(run, {"--lr-schedule", "step:0:0.5"})),
                 "--lr-schedule: lr schedule 'step:0:0.5': SIZE must be >= 1");
  expect_failure(run_vigil(quick_train(run, {"--lr-schedule", "step:5:2"})),
                 "GAMMA must be in (0, 1]");
  expect_failure(run_vigil(quick_train(run, {"--lr-schedule", "exp"})),
                 "valid: constant, step:SIZE:GAMMA, cosine or linear");
  expect_failure(run_vigil(quick_train(run, {"--warmup-steps", "-1"})),
                 "--warmup-steps must be >= 0, got -1");
  expect_failure(run_vigil(quick_train(run, {"--final-lr", "-1"})),
                 "--final-lr must be >= 0, got -1");
  expect_failure(
      run_vigil(quick_train(run, {"--lr-schedule", "cosine", "--reduce-lr-patience", "2"})),
      "use one of them");
  EXPECT_FALSE(fs::exists(run));
}
