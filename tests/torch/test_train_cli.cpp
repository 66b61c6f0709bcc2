// `vigil train` and `vigil eval` end to end on a small slice of Fashion-MNIST: the run directory,
// the report, resume refusals, --fresh, and clear errors for bad input.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/monitor.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

void expect_one_line_error(const RunResult& r, const std::string& part) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("vigil: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    first_ = run_vigil(quick_train(run(), {"--epochs", "3"}));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static fs::path run() { return dir_->path() / "run"; }
  static inline std::unique_ptr<TempDir> dir_;
  static inline RunResult first_;
};

}  // namespace

TEST_F(TrainCli, WritesTheRunDirectoryAndReports) {
  ASSERT_EQ(first_.exit_code, 0) << first_.out << first_.err;
  for (const char* f : {"run.json", "metrics.csv", "model.safetensors", "best/model.safetensors",
                        "last", "result.json"})
    EXPECT_TRUE(fs::exists(run() / f)) << f;
  EXPECT_FALSE(fs::is_empty(run() / "checkpoints"));
  for (const char* s : {"stopped: ", "best epoch: ", "test accuracy (restored best weights): ",
                        "best model: ", "checkpoints: ", "epoch 0 (1 of 3): "})
    EXPECT_NE(first_.out.find(s), std::string::npos) << s << "\n" << first_.out;

  const auto csv = read_file(run() / "metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "epoch,step,accuracy,loss,val_accuracy,val_loss,lr,seconds");
  const auto result = nlohmann::json::parse(read_file(run() / "result.json"));
  EXPECT_EQ(result.at("test_examples"), 300);
  // Even 3 epochs on 461 images learn something: far above the 10% of chance.
  EXPECT_GT(vigil::number_from_json(result.at("test").at("accuracy")), 0.5);

  const auto cfg = nlohmann::json::parse(read_file(run() / "run.json"));
  EXPECT_EQ(cfg.at("hidden"), nlohmann::json::array({16}));
  EXPECT_EQ(cfg.at("early_stopping").at("monitor"), "val_loss");
  EXPECT_EQ(cfg.at("early_stopping").at("patience"), 3);
}

TEST_F(TrainCli, EvalReproducesTheTestAccuracyFromEveryKindOfPath) {
  ASSERT_EQ(first_.exit_code, 0);
  const auto result = nlohmann::json::parse(read_file(run() / "result.json"));
  // The final model (best weights restored) is the best checkpoint's: same numbers.
  for (const auto& path : {run() / "model.safetensors", run() / "best", run()}) {
    auto r = run_vigil({"eval", "--model", path.string(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("examples"), 300);
    EXPECT_EQ(j.at("metrics").at("accuracy"), result.at("test").at("accuracy")) << path;
  }
  // A checkpoint folder works as well.
  const auto last = read_file(run() / "last");
  const auto name = last.substr(0, last.find('\n'));
  auto r = run_vigil({"eval", "--model", (run() / "checkpoints" / name).string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("test accuracy: "), std::string::npos) << r.out;
}

TEST_F(TrainCli, EvalWithoutRunJsonSaysWhatIsMissing) {
  ASSERT_EQ(first_.exit_code, 0);
  TempDir tmp;
  fs::copy_file(run() / "model.safetensors", tmp / "model.safetensors");
  expect_one_line_error(run_vigil({"eval", "--model", (tmp / "model.safetensors").string()}),
                        "--run-dir");
  // With --run-dir it works.
  auto r = run_vigil(
      {"eval", "--model", (tmp / "model.safetensors").string(), "--run-dir", run().string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(TrainCli, ResumeRefusesOptionsThatCannotChange) {
  ASSERT_EQ(first_.exit_code, 0);
  auto r = run_vigil(quick_train(run(), {"--epochs", "3", "--hidden", "32"}));
  EXPECT_EQ(r.exit_code, 2);
  expect_one_line_error(r, "--hidden cannot change when resuming");
  EXPECT_NE(r.err.find("--fresh"), std::string::npos);
  r = run_vigil(quick_train(run(), {"--epochs", "3", "--seed", "8"}));
  expect_one_line_error(r, "--seed cannot change");
  r = run_vigil(quick_train(run(), {"--epochs", "3", "--monitor", "val_accuracy"}));
  expect_one_line_error(r, "--monitor cannot change");
  // Nothing was touched by the refusals.
  EXPECT_EQ(nlohmann::json::parse(read_file(run() / "run.json")).at("hidden"),
            nlohmann::json::array({16}));
}

TEST_F(TrainCli, FreshMovesTheOldRunAside) {
  TempDir tmp;
  const auto dir = tmp.path() / "r";
  auto a = run_vigil(quick_train(dir, {"--epochs", "1", "--limit-train", "128"}));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_vigil(
      quick_train(dir, {"--epochs", "1", "--limit-train", "128", "--hidden", "8", "--fresh"}));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("moved the previous run aside to"), std::string::npos);
  int old = 0;
  for (const auto& e : fs::directory_iterator(tmp.path()))
    if (e.path().filename().string().rfind("r.old-", 0) == 0) {
      ++old;
      EXPECT_TRUE(fs::exists(e.path() / "model.safetensors"));
    }
  EXPECT_EQ(old, 1);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "run.json")).at("hidden"),
            nlohmann::json::array({8}));
}

TEST(TrainCliErrors, MissingDataSetDirectory) {
  TempDir tmp;
  auto r = run_vigil(quick_train(tmp / "r", {"--data", (tmp / "nowhere").string()}));
  expect_one_line_error(r, "nowhere");
}

TEST(TrainCliErrors, CorruptIdxFile) {
  TempDir tmp;
  const auto data = tmp / "fm";
  fs::create_directories(data);
  for (const char* f :
       {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(fs::path("/usr/share/datasets/fashion-mnist") / f, data / f);
  // Not gzip and not IDX: a wrong magic number.
  write_file(data / "train-images-idx3-ubyte.gz", "this is not an IDX file at all, just text");
  auto r = run_vigil(quick_train(tmp / "r", {"--data", data.string()}));
  expect_one_line_error(r, "train-images-idx3-ubyte");
  EXPECT_EQ(r.exit_code, 1);
}

TEST(TrainCliErrors, WrongCsvColumn) {
  TempDir tmp;
  write_file(tmp / "houses.csv", "rooms,area,price\n3,70,200\n4,90,260\n2,50,150\n5,120,330\n");
  auto r = run_vigil(quick_train(
      tmp / "r", {"--data", "csv:" + (tmp / "houses.csv").string(), "--target", "prize"}));
  expect_one_line_error(r, "prize");
  EXPECT_NE(r.err.find("price"), std::string::npos) << "should list the columns: " << r.err;
}

TEST(TrainCliErrors, UnknownModel) {
  TempDir tmp;
  auto r = run_vigil(quick_train(tmp / "r", {"--model", "resnet"}));
  expect_one_line_error(r, "resnet");
  EXPECT_NE(r.err.find("mlp"), std::string::npos) << r.err;
}

TEST(TrainCliErrors, BadFlagValues) {
  TempDir tmp;
  expect_one_line_error(run_vigil(quick_train(tmp / "r", {"--hidden", "16,x"})), "--hidden");
  expect_one_line_error(run_vigil(quick_train(tmp / "r", {"--optimizer", "lbfgs"})), "lbfgs");
  expect_one_line_error(run_vigil(quick_train(tmp / "r", {"--rule", "bogus"})), "bogus");
}

TEST(TrainCliCsv, RegressionRunsAndEvaluates) {
  TempDir tmp;
  std::string csv = "x1,x2,y\n";
  for (int i = 0; i < 200; ++i) {
    const double a = (i % 17) / 17.0, b = (i % 11) / 11.0;
    csv += fmt::format("{},{},{}\n", a, b, 3 * a - 2 * b + 1);
  }
  write_file(tmp / "t.csv", csv);
  auto r = run_vigil({"train", "--run-dir", (tmp / "r").string(), "--data",
                      "csv:" + (tmp / "t.csv").string(), "--target", "y", "--hidden", "8",
                      "--epochs", "20", "--lr", "0.01", "--threads", "1", "--batch-size", "16"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("test loss (restored best weights): "), std::string::npos) << r.out;
  const auto result = nlohmann::json::parse(read_file(tmp / "r" / "result.json"));
  // y has variance ~1.1; a fitted model does far better than predicting the mean.
  EXPECT_LT(vigil::number_from_json(result.at("test").at("loss")), 0.2);
  auto e = run_vigil({"eval", "--model", (tmp / "r").string(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out).at("metrics").at("loss"), result.at("test").at("loss"));
}
