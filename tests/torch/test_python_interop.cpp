// Python interop end to end: `vigil train` writes a run, scripts/load_in_python.py (the lines the
// README shows) loads best/model.safetensors with plain torch + json into the architecture
// run.json describes, and its prediction for every test example equals `vigil eval`'s.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

fs::path script() {
  return vigil::test::source_dir() / "scripts/load_in_python.py";
}

using vigil::test::lines;

// "test accuracy: 0.8120 ..." -> "0.8120".
std::string accuracy_in(const std::string& out) {
  std::smatch m;
  return std::regex_search(out, m, std::regex("test accuracy: ([0-9.]+)")) ? m[1].str() : "";
}

// Trains with `train_args`, then compares Python's and vigil eval's predictions example by example.
void expect_python_matches_vigil(const std::vector<std::string>& train_args, int test_examples,
                                 double min_accuracy) {
  TempDir tmp;
  const fs::path run = tmp / "run";
  auto args = vigil::test::quick_train(run, train_args);
  auto r = run_vigil(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  r = run_vigil({"eval", "--model", run.string(), "--predictions", (tmp / "vigil.txt").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string vigil_accuracy = accuracy_in(r.out);
  ASSERT_FALSE(vigil_accuracy.empty()) << r.out;

  r = run_process({kPython, script().string(), run.string(), (tmp / "python.txt").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(accuracy_in(r.out), vigil_accuracy) << r.out;

  const auto ours = lines(read_file(tmp / "vigil.txt"));
  const auto theirs = lines(read_file(tmp / "python.txt"));
  ASSERT_EQ(ours.size(), static_cast<std::size_t>(test_examples));
  ASSERT_EQ(theirs.size(), ours.size());
  int differ = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) differ += ours[i] != theirs[i];
  EXPECT_EQ(differ, 0) << "examples predicted differently by Python and vigil eval";
  // A trained model, not a constant one: several classes predicted, accuracy well above chance
  // (0.1 on 10 classes).
  EXPECT_GE(std::set<std::string>(ours.begin(), ours.end()).size(), 5u);
  EXPECT_GT(std::stod(vigil_accuracy), min_accuracy);
}

}  // namespace

TEST(PythonInterop, MlpPredictionsEqualVigilEval) {
  if (!python_has_torch()) GTEST_SKIP() << kPython << " cannot import torch (python3-torch)";
  // quick_train: 512 training examples, 300 test examples, --hidden 16, --threads 1.
  expect_python_matches_vigil({"--epochs", "3", "--dropout", "0.1"}, 300, 0.5);
}

TEST(PythonInterop, CnnWithBatchNormPredictionsEqualVigilEval) {
  if (!python_has_torch()) GTEST_SKIP() << kPython << " cannot import torch (python3-torch)";
  expect_python_matches_vigil(
      {"--epochs", "3", "--model", "cnn", "--channels", "4,8", "--batch-norm"}, 300, 0.3);
}

TEST(PythonInterop, ReadmeShowsTheTestedScript) {
  // The README's Python lines are this script, verbatim, so they cannot drift apart.
  const std::string readme = read_file(vigil::test::source_dir() / "README.md");
  const std::string code = read_file(script());
  EXPECT_NE(readme.find("```python\n" + code + "```"), std::string::npos)
      << "README.md must show scripts/load_in_python.py verbatim in a ```python block";
}

TEST(PythonInterop, PredictionsNeedAClassificationRun) {
  // A regression model has no predicted class: --predictions says so and writes nothing.
  TempDir tmp;
  std::string csv = "x,y\n";
  for (int i = 0; i < 60; ++i)
    csv += std::to_string(i / 60.0) + "," + std::to_string(i / 30.0) + "\n";
  vigil::test::write_file(tmp / "t.csv", csv);
  auto r = run_vigil({"train", "--run-dir", (tmp / "r").string(), "--data",
                      "csv:" + (tmp / "t.csv").string(), "--target", "y", "--task", "regression",
                      "--hidden", "4", "--epochs", "1", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_vigil(
      {"eval", "--model", (tmp / "r").string(), "--predictions", (tmp / "p.txt").string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--predictions writes predicted classes: this run is a regression"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(tmp / "p.txt"));
}
