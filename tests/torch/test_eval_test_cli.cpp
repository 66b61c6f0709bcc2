// `vigil train --eval-test-every-epoch`: test_loss/test_accuracy (test_perplexity for the
// language model) in every row of metrics.csv, equal to an independent evaluation of the same
// weights, while the run itself (every other column, the stop, the weights, result.json) is the
// one it would be without the flag; the flag is recorded and frozen, and the test set cannot be
// monitored.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// metrics.csv as columns of their text, by name (an empty cell stays empty).
using Columns = std::map<std::string, std::vector<std::string>>;

Columns read_columns(const fs::path& csv) {
  std::istringstream in(read_file(csv));
  std::string line;
  std::getline(in, line);
  std::vector<std::string> names;
  std::istringstream header(line);
  for (std::string f; std::getline(header, f, ',');) names.push_back(f);
  Columns out;
  for (const auto& n : names) out[n];
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream row(line);
    for (std::string f; std::getline(row, f, ',');) cells.push_back(f);
    cells.resize(names.size());  // a trailing empty cell
    for (std::size_t i = 0; i < names.size(); ++i) out[names[i]].push_back(cells[i]);
  }
  return out;
}

// The columns a run without the flag writes too, less "seconds" (the only one that differs
// between two identical runs).
Columns shared_columns(Columns c) {
  for (auto it = c.begin(); it != c.end();)
    it = it->first == "seconds" || it->first.rfind("test_", 0) == 0 ? c.erase(it) : std::next(it);
  return c;
}

nlohmann::json json_of(const fs::path& file) {
  return nlohmann::json::parse(read_file(file));
}

// Every cell of column `name` holds a finite number.
void expect_full_column(const Columns& c, const std::string& name, std::size_t rows) {
  ASSERT_TRUE(c.count(name)) << name;
  ASSERT_EQ(c.at(name).size(), rows) << name;
  for (std::size_t i = 0; i < rows; ++i) {
    ASSERT_FALSE(c.at(name)[i].empty()) << name << " row " << i;
    EXPECT_TRUE(std::isfinite(std::stod(c.at(name)[i]))) << name << " row " << i;
  }
}

// Patience 1 at a high rate on a small subset: validation turns up soon and the run stops early,
// so that the best epoch is not the last one.
std::vector<std::string> stopping_run(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--epochs", "8", "--patience", "1", "--lr", "0.03"};
  a.insert(a.end(), extra.begin(), extra.end());
  return quick_train(dir, a);
}

// The same run with and without the flag, shared by the tests that only read them.
class EvalTestCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = std::make_unique<TempDir>();
    with_ = run_vigil(stopping_run(with(), {"--eval-test-every-epoch"}));
    without_ = run_vigil(stopping_run(without()));
  }
  static void TearDownTestSuite() { tmp_.reset(); }
  static fs::path with() { return *tmp_ / "with"; }
  static fs::path without() { return *tmp_ / "without"; }
  static inline std::unique_ptr<TempDir> tmp_;
  static inline RunResult with_, without_;
};

}  // namespace

TEST_F(EvalTestCli, EveryRowHasTheTestLossAndAccuracy) {
  ASSERT_EQ(with_.exit_code, 0) << with_.out << with_.err;
  const auto c = read_columns(with() / "metrics.csv");
  const std::size_t rows = c.at("epoch").size();
  ASSERT_GE(rows, 2u);
  expect_full_column(c, "test_loss", rows);
  expect_full_column(c, "test_accuracy", rows);
  const auto text = read_file(with() / "metrics.csv");
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "epoch,step,accuracy,loss,test_accuracy,test_loss,val_accuracy,val_loss,lr,seconds");
  EXPECT_EQ(json_of(with() / "run.json").at("eval_test_every_epoch"), true);
  EXPECT_EQ(json_of(without() / "run.json").at("eval_test_every_epoch"), false);
}

TEST_F(EvalTestCli, TheRunIsTheOneWithoutTheFlag) {
  ASSERT_EQ(with_.exit_code, 0) << with_.out << with_.err;
  ASSERT_EQ(without_.exit_code, 0) << without_.out << without_.err;
  EXPECT_EQ(shared_columns(read_columns(with() / "metrics.csv")),
            shared_columns(read_columns(without() / "metrics.csv")));
  const auto a = json_of(with() / "result.json");
  const auto b = json_of(without() / "result.json");
  // This run does stop early (what the flag must not change), with its best epoch before the end.
  EXPECT_EQ(a.at("stopped_early"), true);
  EXPECT_LT(a.at("best_epoch").get<int>() + 1, a.at("epochs_run").get<int>());
  for (const char* k : {"stop_reason", "stopped_early", "epochs_run", "global_step", "best_epoch",
                        "best_value", "restored_best_weights", "test", "test_examples"})
    EXPECT_EQ(a.at(k), b.at(k)) << k;
  for (const char* f : {"model.safetensors", "best/model.safetensors"})
    EXPECT_EQ(read_file(with() / f), read_file(without() / f)) << f;
  EXPECT_EQ(folders(with() / "checkpoints"), folders(without() / "checkpoints"));
}

TEST_F(EvalTestCli, TheTestColumnsAreWhatAnIndependentEvaluationGives) {
  ASSERT_EQ(with_.exit_code, 0) << with_.out << with_.err;
  const auto c = read_columns(with() / "metrics.csv");
  // result.json tests the restored best weights: the weights the best epoch's row was tested on.
  const auto result = json_of(with() / "result.json");
  const auto best = result.at("best_epoch").get<std::size_t>();
  ASSERT_LT(best, c.at("test_loss").size());
  EXPECT_DOUBLE_EQ(std::stod(c.at("test_loss")[best]), result.at("test").at("loss").get<double>());
  EXPECT_DOUBLE_EQ(std::stod(c.at("test_accuracy")[best]),
                   result.at("test").at("accuracy").get<double>());
  // Every kept checkpoint, evaluated by `vigil eval`, gives its epoch's row.
  const auto names = folders(with() / "checkpoints");
  ASSERT_GE(names.size(), 2u);
  for (const auto& name : names) {
    const auto epoch = static_cast<std::size_t>(std::stoi(name.substr(name.find('-') + 1)));
    const auto e =
        run_vigil({"eval", "--model", (with() / "checkpoints" / name).string(), "--json"});
    ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
    const auto m = nlohmann::json::parse(e.out).at("metrics");
    EXPECT_DOUBLE_EQ(std::stod(c.at("test_loss")[epoch]), m.at("loss").get<double>()) << name;
    EXPECT_DOUBLE_EQ(std::stod(c.at("test_accuracy")[epoch]), m.at("accuracy").get<double>())
        << name;
  }
}

TEST_F(EvalTestCli, TheTestSetCannotBeMonitored) {
  TempDir tmp;
  for (const char* metric : {"test_loss", "test_accuracy"}) {
    const auto r = run_vigil(
        quick_train(tmp / "r", {"--eval-test-every-epoch", "--monitor", metric, "--epochs", "1"}));
    expect_one_line_error(
        r, "the test set is for reporting, not model selection: monitor a val_ metric", 2);
    EXPECT_FALSE(fs::exists(tmp / "r" / "metrics.csv"));
  }
  const auto help = run_vigil({"train", "--help"});
  EXPECT_NE(help.out.find("--eval-test-every-epoch"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("NOT for model selection"), std::string::npos) << help.out;
}

TEST(EvalTestResume, TheFlagIsFrozenAndAResumedRunKeepsItsTestCurve) {
  TempDir tmp;
  const std::vector<std::string> base = {"--patience", "100", "--eval-test-every-epoch"};
  auto args = [&](const fs::path& dir, const char* epochs, std::vector<std::string> more = {}) {
    std::vector<std::string> a = {"--epochs", epochs};
    a.insert(a.end(), more.begin(), more.end());
    return quick_train(dir, a);
  };
  auto flagged = [&](std::vector<std::string> a) {
    a.insert(a.end(), base.begin(), base.end());
    return a;
  };
  ASSERT_EQ(run_vigil(flagged(args(tmp / "straight", "4"))).exit_code, 0);
  ASSERT_EQ(run_vigil(flagged(args(tmp / "resumed", "2"))).exit_code, 0);
  // Given again without the flag, the resumed run keeps it (run.json's) and its first rows.
  const auto r = run_vigil(args(tmp / "resumed", "4"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(metrics_without_seconds(tmp / "resumed" / "metrics.csv"),
            metrics_without_seconds(tmp / "straight" / "metrics.csv"));
  expect_full_column(read_columns(tmp / "resumed" / "metrics.csv"), "test_loss", 4);
  // The test set of the curve cannot change on the way.
  expect_one_line_error(run_vigil(args(tmp / "resumed", "6", {"--limit-test", "200"})),
                        "--limit-test cannot change when resuming", 2);
  // A run recorded without it cannot start recording in the middle.
  ASSERT_EQ(run_vigil(args(tmp / "plain", "2", {"--patience", "100"})).exit_code, 0);
  expect_one_line_error(run_vigil(args(tmp / "plain", "4", {"--eval-test-every-epoch"})),
                        "--eval-test-every-epoch cannot change when resuming", 2);
}

// With --ema-validate the validated weights are the average: the test row measures them too, and
// swapping them in and out leaves the training weights as they were.
TEST(EvalTestEma, TheAveragedWeightsAreTestedAndPutBack) {
  TempDir tmp;
  const std::vector<std::string> ema = {"--epochs", "3",   "--patience",    "100",
                                        "--ema",    "0.9", "--ema-validate"};
  auto with = ema;
  with.push_back("--eval-test-every-epoch");
  const auto a = run_vigil(quick_train(tmp / "with", with));
  const auto b = run_vigil(quick_train(tmp / "without", ema));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  for (const char* f : {"model.safetensors", "ema.safetensors", "best/model.safetensors"})
    EXPECT_EQ(read_file(tmp / "with" / f), read_file(tmp / "without" / f)) << f;
  const auto c = read_columns(tmp / "with" / "metrics.csv");
  EXPECT_EQ(shared_columns(c), shared_columns(read_columns(tmp / "without" / "metrics.csv")));
  const auto result = json_of(tmp / "with" / "result.json");
  ASSERT_EQ(result.at("restored_best_weights"), true);
  const auto best = result.at("best_epoch").get<std::size_t>();
  EXPECT_DOUBLE_EQ(std::stod(c.at("test_loss").at(best)),
                   result.at("test").at("loss").get<double>());
}

TEST(EvalTestLm, TheLanguageModelLogsTestLossAndPerplexity) {
  TempDir tmp;
  auto args = [&](const fs::path& run, bool flag) {
    std::vector<std::string> a = {"train", "--run-dir", run.string(), "--model", "gpt"};
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"--data", "text:/usr/share/common-licenses/GPL-3"},
             {"--context", "32"},
             {"--layers", "1"},
             {"--heads", "2"},
             {"--embed", "32"},
             {"--batch-size", "8"},
             {"--max-steps", "300"},
             {"--val-every-n-steps", "50"},
             {"--lr", "1e-2"},
             {"--threads", "1"},
             {"--seed", "3"},
             {"--patience", "100"}})
      a.insert(a.end(), {name, value});
    if (flag) a.push_back("--eval-test-every-epoch");
    return a;
  };
  const auto a = run_vigil(args(tmp / "with", true));
  const auto b = run_vigil(args(tmp / "without", false));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  const auto c = read_columns(tmp / "with" / "metrics.csv");
  ASSERT_EQ(c.at("epoch").size(), 6u);  // one row per validation
  expect_full_column(c, "test_loss", 6);
  expect_full_column(c, "test_perplexity", 6);
  for (std::size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(std::stod(c.at("test_perplexity")[i]), std::exp(std::stod(c.at("test_loss")[i])),
                1e-9);
  EXPECT_EQ(shared_columns(c), shared_columns(read_columns(tmp / "without" / "metrics.csv")));
  EXPECT_EQ(read_file(tmp / "with" / "model.safetensors"),
            read_file(tmp / "without" / "model.safetensors"));
  const auto result = json_of(tmp / "with" / "result.json");
  EXPECT_EQ(result.at("test"), json_of(tmp / "without" / "result.json").at("test"));
  const auto best = result.at("best_epoch").get<std::size_t>();
  EXPECT_DOUBLE_EQ(std::stod(c.at("test_loss").at(best)),
                   result.at("test").at("loss").get<double>());
}
