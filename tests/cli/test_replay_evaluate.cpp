// `vigil replay --evaluate DIR` on a tiny hand-made corpus with known epochs fractions and
// regrets; the median rule's reference runs from --reference-runs and from --batch lines; one
// clear error line for each kind of bad input.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using nlohmann::json;
using vigil::test::expect_clean_error;
using vigil::test::run_vigil;
using vigil::test::TempDir;
using vigil::test::write_file;

// Run a: the best validation epoch is 1, the best test epoch 2 (patience 1 and GL5 stop after
// epoch 2, patience 2 after epoch 3). Run b improves to the end: nothing stops it.
void write_corpus(const TempDir& dir) {
  write_file(dir / "a" / "metrics.csv",
             "epoch,loss,val_loss,test_loss,test_accuracy\n"
             "0,1.2,1.0,1.1,0.5\n1,1.0,0.8,0.85,0.7\n2,0.9,0.9,0.8,0.75\n"
             "3,0.8,0.95,0.9,0.6\n4,0.7,0.97,1.0,0.55\n");
  write_file(dir / "nested" / "b" / "metrics.csv",
             "epoch,loss,val_loss,test_loss,test_accuracy\n"
             "0,1.2,1.0,1.0,0.5\n1,1.1,0.9,0.9,0.6\n2,1.0,0.8,0.8,0.7\n"
             "3,0.9,0.7,0.7,0.8\n4,0.8,0.6,0.65,0.9\n");
}

json rule_of(const json& result, const std::string& label) {
  for (const auto& r : result.at("rules"))
    if (r.at("rule") == label) return r;
  ADD_FAILURE() << "no rule " << label << " in " << result.dump();
  return json::object();
}

}  // namespace

TEST(ReplayEvaluate, ScoresRulesWithKnownFractionsAndRegrets) {
  TempDir dir;
  write_corpus(dir);
  write_file(dir / "rules.jsonl",
             "{\"rule\": \"patience\", \"patience\": 1, \"label\": \"p1\"}\n\n"
             "{\"rule\": \"patience\", \"patience\": 2}\n{\"rule\": \"gl:5\"}\n");
  const auto r = run_vigil({"replay", "--evaluate", dir.path().string(), "--rules",
                            (dir / "rules.jsonl").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j.at("runs"), 2);
  ASSERT_EQ(j.at("rules").size(), 3u);
  // a: stop after epoch 2 of 5 (0.6), restore epoch 1: regret 0.85 - 0.8; b: all 5, regret 0.
  const auto p1 = rule_of(j, "p1");
  EXPECT_NEAR(p1.at("epochs_fraction").get<double>(), 0.8, 1e-12);
  EXPECT_NEAR(p1.at("regret").get<double>(), 0.025, 1e-12);
  EXPECT_NEAR(p1.at("worst_regret").get<double>(), 0.05, 1e-12);
  EXPECT_EQ(p1.at("stopped"), 1);
  const auto p2 = rule_of(j, "patience:2");
  EXPECT_NEAR(p2.at("epochs_fraction").get<double>(), 0.9, 1e-12);
  EXPECT_NEAR(p2.at("regret").get<double>(), 0.025, 1e-12);
  const auto gl = rule_of(j, "gl:5");
  EXPECT_NEAR(gl.at("epochs_fraction").get<double>(), 0.8, 1e-12);
  EXPECT_EQ(gl.at("stopped"), 1);

  // An accuracy is maximized: a's restored epoch 1 gives up 0.75 - 0.7.
  const auto acc =
      run_vigil({"replay", "--evaluate", dir.path().string(), "--rules",
                 (dir / "rules.jsonl").string(), "--test-monitor", "test_accuracy", "--json"});
  ASSERT_EQ(acc.exit_code, 0) << acc.err;
  EXPECT_NEAR(rule_of(json::parse(acc.out), "p1").at("regret").get<double>(), 0.025, 1e-12);
}

TEST(ReplayEvaluate, TheDefaultSetTableAndPlot) {
  TempDir dir;
  write_corpus(dir);
  const auto r = run_vigil({"replay", "--evaluate", dir.path().string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  std::vector<std::string> labels;
  for (const auto& rule : j.at("rules")) labels.push_back(rule.at("rule").get<std::string>());
  EXPECT_EQ(labels, (std::vector<std::string>{"patience:1", "patience:2", "patience:3",
                                              "patience:5", "patience:10", "gl:1", "gl:2", "gl:3",
                                              "gl:5", "pq:0.5", "pq:1", "pq:2", "pq:3", "up:2",
                                              "up:3", "up:4", "robust:10", "median"}));
  // Two runs leave each one reference run, fewer than Optuna's 5 start-up trials: no stop.
  EXPECT_EQ(rule_of(j, "median").at("stopped"), 0);
  EXPECT_DOUBLE_EQ(rule_of(j, "median").at("epochs_fraction").get<double>(), 1.0);

  const auto svg = dir / "tradeoff.svg";
  const auto t = run_vigil({"replay", "--evaluate", dir.path().string(), "--plot", svg.string()});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("patience:10"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("stopping rules on 2 runs"), std::string::npos) << t.out;
  const auto drawn = vigil::test::read_file(svg);
  EXPECT_EQ(drawn.rfind("<svg", 0), 0u);
  EXPECT_NE(drawn.find(">gl:5<"), std::string::npos);
}

TEST(ReplayEvaluate, BadInputGetsOneClearLine) {
  TempDir dir;
  expect_clean_error(run_vigil({"replay", "--evaluate", (dir / "none").string()}),
                     "is not a folder of runs");
  expect_clean_error(run_vigil({"replay", "--evaluate", dir.path().string()}),
                     "no metrics.csv below");
  write_file(dir / "r" / "metrics.csv", "epoch,val_loss\n0,1\n1,0.9\n");
  expect_clean_error(run_vigil({"replay", "--evaluate", dir.path().string()}),
                     "lacks 'test_loss': its columns are epoch, val_loss");
  write_file(dir / "r" / "metrics.csv", "epoch,val_loss,test_loss\n0,1,1\n1,0.9,\n");
  expect_clean_error(run_vigil({"replay", "--evaluate", dir.path().string()}),
                     "row 2 has no test_loss");
  write_file(dir / "r" / "metrics.csv", "epoch,val_loss,test_loss\n0,1,1\n1,0.9,0.8\n");
  write_file(dir / "rules.jsonl", "{\"rule\": \"gl:5\"}\n{\"rule\": \"nope\"}\n");
  expect_clean_error(run_vigil({"replay", "--evaluate", dir.path().string(), "--rules",
                                (dir / "rules.jsonl").string()}),
                     "line 2: unknown rule 'nope'");
  write_file(dir / "rules.jsonl", "{\"rule\": \"pq:0.5\"}\n");
  expect_clean_error(run_vigil({"replay", "--evaluate", dir.path().string(), "--rules",
                                (dir / "rules.jsonl").string()}),
                     "needs the training metric 'loss'");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--plot", "x.svg"}), "--evaluate");
  // The default set leaves PQ out of runs without a training metric, and says so.
  const auto r = run_vigil({"replay", "--evaluate", dir.path().string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("the PQ rules are left out"), std::string::npos) << r.err;
  EXPECT_EQ(json::parse(r.out).at("rules").size(), 14u);
}

TEST(ReplayReference, TheMedianRuleComparesWithEarlierRunsFromAGlobOrABatchLine) {
  TempDir dir;
  write_corpus(dir);
  const std::string log = (dir / "a" / "metrics.csv").string();
  expect_clean_error(run_vigil({"replay", "--log", log, "--rule", "median", "--reference-runs",
                                (dir / "none*" / "metrics.csv").string()}),
                     "match no metrics log");
  // A folder stands for its metrics.csv, and the log replayed is never its own reference.
  for (const auto& glob : {(dir / "*").string(), log}) {
    expect_clean_error(
        run_vigil({"replay", "--log", log, "--rule", "median", "--reference-runs", glob}),
        "match no metrics log besides the run's own");
  }
  // The reference is b alone: a's best so far is no worse than b at epochs 0-2 (1.0, 0.8, 0.8
  // against 1.0, 0.9, 0.8) and worse at epoch 3 (0.8 > 0.7).
  const auto m = run_vigil({"replay", "--log", log, "--rule", "median", "--reference-runs",
                            (dir / "nested" / "*").string(), "--n-startup-trials", "1", "--json"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(json::parse(m.out).at("stop_epoch"), 3) << m.out;
  const auto few = run_vigil({"replay", "--log", log, "--rule", "median", "--reference-runs",
                              (dir / "nested" / "*").string(), "--json"});
  ASSERT_EQ(few.exit_code, 0) << few.err;
  EXPECT_FALSE(json::parse(few.out).at("stopped").get<bool>()) << few.out;  // 1 run < 5

  const std::string line =
      R"({"values": [1.0, 0.8, 0.9, 0.95], "reference": [[1.0, 0.9, 0.8, 0.7], [1, 0.9, "nan", 0.75]],)"
      R"( "options": {"rule": "median", "n_startup_trials": 2}})";
  const auto b = run_vigil({"replay", "--batch", "-"}, line + "\n");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto j = json::parse(b.out);
  EXPECT_EQ(j.at("stop_epoch"), 3) << b.out;  // 0.8 > median(0.7, 0.75)
  EXPECT_EQ(j.at("reason_kind"), "median");
  const auto bad = run_vigil({"replay", "--batch", "-"}, R"({"values": [1], "reference": [1, 2]})"
                                                         "\n");
  EXPECT_NE(bad.out.find("\\\"reference\\\" run 1 must be an array of numbers"), std::string::npos)
      << bad.out;
}
