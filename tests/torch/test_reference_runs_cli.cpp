// `vigil train --rule median --reference-runs GLOB`: the earlier runs are read at the first
// start, recorded in run.json, and a resume judges by the recorded curves even when the files
// have changed; the rule without a glob, a glob without the rule and a glob matching nothing are
// refused in one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// Five reference runs with val_loss `value` at each of 10 epochs.
void write_references(const fs::path& dir, double value) {
  for (int r = 0; r < 5; ++r) {
    std::string csv = "epoch,val_loss\n";
    for (int e = 0; e < 10; ++e) csv += fmt::format("{},{}\n", e, value);
    write_file(dir / fmt::format("ref{}", r) / "metrics.csv", csv);
  }
}

std::vector<std::string> median_flags(const fs::path& refs) {
  return {"--rule", "median", "--reference-runs", (refs / "*").string()};
}

}  // namespace

TEST(ReferenceRunsCli, RecordedAtTheStartAndReusedOnResume) {
  TempDir dir;
  const auto refs = dir / "refs";
  const auto run = dir / "run";
  // Reference runs far worse than any real run: the median never stops it.
  write_references(refs, 10.0);
  auto args = quick_train(run, median_flags(refs));
  args.insert(args.end(), {"--epochs", "2"});
  const auto first = run_vigil(args);
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("reference runs: 5 matched by"), std::string::npos) << first.out;
  const auto recorded = nlohmann::json::parse(read_file(run / "run.json"));
  EXPECT_EQ(recorded.at("reference_runs"), (refs / "*").string());
  const auto& curves = recorded.at("reference_curves");
  EXPECT_EQ(curves.at("monitor"), "val_loss");
  ASSERT_EQ(curves.at("runs").size(), 5u);
  EXPECT_EQ(curves.at("runs")[0].at("values").size(), 10u);
  EXPECT_EQ(curves.at("runs")[0].at("xxh3").get<std::string>().size(), 16u);

  // Now the files say every earlier run was perfect; the resumed run keeps the recorded curves
  // and trains on to its 4 epochs instead of stopping at once.
  write_references(refs, 0.0);
  auto resume = quick_train(run, median_flags(refs));
  resume.insert(resume.end(), {"--epochs", "4"});
  const auto second = run_vigil(resume);
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  const auto csv = read_file(run / "metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5) << csv;  // header + 4 epochs

  // A fresh run reads the files again: worse than the perfect median, it stops after epoch 0.
  auto fresh = quick_train(dir / "fresh", median_flags(refs));
  const auto third = run_vigil(fresh);
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_NE(third.out.find("(median rule)"), std::string::npos) << third.out;
  const auto fresh_csv = read_file(dir / "fresh" / "metrics.csv");
  EXPECT_EQ(std::count(fresh_csv.begin(), fresh_csv.end(), '\n'), 2) << fresh_csv;
}

TEST(ReferenceRunsCli, MisuseIsRefusedInOneLine) {
  TempDir dir;
  expect_one_line_error(run_vigil(quick_train(dir / "a", {"--rule", "median"})),
                        "--reference-runs GLOB");
  expect_one_line_error(
      run_vigil(quick_train(dir / "b", {"--reference-runs", (dir / "*").string()})),
      "only by --rule median or percentile");
  expect_one_line_error(run_vigil(quick_train(dir / "c", median_flags(dir / "nothing"))),
                        "match no metrics log");
  expect_one_line_error(
      run_vigil(quick_train(dir / "d", {"--rule", "percentile", "--reference-runs", "x"})),
      "needs the percentile option");
}
