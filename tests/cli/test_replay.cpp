// `vigil replay`: JSON and human output, logs, every conformance case through --batch, and
// one clear error line for each kind of bad input.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using nlohmann::json;
using vigil::test::expect_clean_error;
using vigil::test::lines;
using vigil::test::run_vigil;
using vigil::test::TempDir;
using vigil::test::write_file;

TEST(Replay, ValuesJson) {
  const auto r =
      run_vigil({"replay", "--values", "0.9,0.8,0.85,0.84", "--patience", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j.at("stopped"), true);
  EXPECT_EQ(j.at("stop_epoch"), 3);
  EXPECT_EQ(j.at("best_epoch"), 1);
  EXPECT_EQ(j.at("best_value"), 0.8);
  EXPECT_EQ(j.at("reason_kind"), "patience");
  EXPECT_NE(j.at("reason").get<std::string>().find("did not improve"), std::string::npos);
}

TEST(Replay, NonFiniteValuesAreWrittenAsStrings) {
  // Without the finite check, -inf is an improvement on 0.5 when minimising.
  const auto r = run_vigil(
      {"replay", "--values", "0.5, -inf,1", "--no-check-finite", "--patience", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j.at("best_value"), "-inf");
  EXPECT_EQ(j.at("stop_epoch"), 2);
  // With it (the default), a non-finite value stops at once and never becomes the best.
  const auto c = run_vigil({"replay", "--values", "0.5, -inf", "--json"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(json::parse(c.out).at("best_value"), 0.5);
  EXPECT_EQ(json::parse(c.out).at("reason_kind"), "non_finite");
  const auto n = run_vigil({"replay", "--values", "nan,NaN", "--no-check-finite", "--json"});
  ASSERT_EQ(n.exit_code, 0) << n.err;
  EXPECT_TRUE(json::parse(n.out).at("best_value").is_null());
}

TEST(Replay, HumanOutputMarksBestAndStop) {
  const auto r = run_vigil({"replay", "--values", "0.9,0.8,0.85,0.84,0.7", "--patience", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("0.8  <- best"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.84  <- stop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.7  (not run)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("▁"), std::string::npos) << r.out;  // the sparkline
  EXPECT_NE(r.out.find("stopped after epoch 3 (patience)"), std::string::npos) << r.out;
  // People read 6 significant digits; --json keeps every one.
  const auto p = run_vigil({"replay", "--values", "0.30272871752580005,0.4", "--patience", "1"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("best 0.302729 at epoch 0"), std::string::npos) << p.out;
  EXPECT_EQ(p.out.find("0.3027287175"), std::string::npos) << p.out;
  const auto j =
      run_vigil({"replay", "--values", "0.30272871752580005,0.4", "--patience", "1", "--json"});
  EXPECT_EQ(json::parse(j.out).at("best_value"), 0.30272871752580005);
}

TEST(Replay, LogFromTheExample) {
  const auto log = (vigil::test::source_dir() / "examples/data/metrics.csv").string();
  const auto r = run_vigil({"replay", "--log", log, "--patience", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j.at("stopped"), true);
  const auto acc = run_vigil({"replay", "--log", log, "--monitor", "val_accuracy", "--json"});
  ASSERT_EQ(acc.exit_code, 0) << acc.err;
  // Max mode inferred from the name: accuracy rises to 0.88 at epoch 5 and dips at epoch 6
  // (minimising would have stopped at epoch 1).
  const auto a = json::parse(acc.out);
  EXPECT_EQ(a.at("best_value"), 0.88);
  EXPECT_EQ(a.at("best_epoch"), 5);
  EXPECT_EQ(a.at("stop_epoch"), 6);
}

TEST(Replay, LogTimeBudgetAndPq) {
  TempDir dir;
  write_file(dir / "m.csv",
             "epoch,step,loss,val_loss,lr,seconds\n"
             "0,1,1.0,1.0,0.1,10\n1,2,0.9,0.9,0.1,10\n2,3,0.8,0.85,0.1,10\n"
             "3,4,0.79,0.86,0.1,10\n4,5,0.785,0.88,0.1,10\n5,6,0.78,0.9,0.1,10\n");
  const auto path = (dir / "m.csv").string();
  const auto t =
      run_vigil({"replay", "--log", path, "--patience", "9", "--time-budget", "25", "--json"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(json::parse(t.out).at("stop_epoch"), 2);  // 30 s elapsed after epoch 2
  EXPECT_EQ(json::parse(t.out).at("reason_kind"), "time_budget");
  const auto pq = run_vigil({"replay", "--log", path, "--rule", "pq:0.91:3", "--json"});
  ASSERT_EQ(pq.exit_code, 0) << pq.err;
  EXPECT_EQ(json::parse(pq.out).at("stop_epoch"), 5);
  EXPECT_EQ(json::parse(pq.out).at("reason_kind"), "pq");
}

TEST(Replay, JsonLinesLogAndNonStrict) {
  TempDir dir;
  write_file(
      dir / "m.jsonl",
      "{\"epoch\": 0, \"val_loss\": 1.0}\n{\"epoch\": 1}\n{\"epoch\": 2, \"val_loss\": 1.1}\n");
  const auto path = (dir / "m.jsonl").string();
  const auto strict = run_vigil({"replay", "--log", path, "--json"});
  expect_clean_error(strict, "val_loss");
  const auto lax = run_vigil({"replay", "--log", path, "--no-strict", "--json"});
  ASSERT_EQ(lax.exit_code, 0) << lax.err;
  EXPECT_NE(lax.err.find("vigil: warning: epoch 1"), std::string::npos) << lax.err;
  EXPECT_EQ(json::parse(lax.out).at("stop_epoch"), 2);
}

json conformance() {
  std::ifstream in(vigil::test::shared_dir() / "conformance" / "early_stopping.json");
  return json::parse(in);
}

void check_batch_output(const json& cases, const std::string& out) {
  const auto got = lines(out);
  ASSERT_EQ(got.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    SCOPED_TRACE("case " + c.at("name").get<std::string>());
    const auto r = json::parse(got[i]);
    const auto& e = c.at("expected");
    EXPECT_EQ(r.at("name"), c.at("name"));
    for (const char* key : {"stopped", "stop_epoch", "best_epoch", "best_value", "reason_kind"})
      EXPECT_EQ(r.at(key), e.at(key)) << key;
    EXPECT_TRUE(r.at("reason").is_string());
  }
}

TEST(Replay, EveryConformanceCaseThroughBatch) {
  const auto doc = conformance();
  const auto& cases = doc.at("cases");
  std::string input;
  for (const auto& c : cases)
    input += json{{"name", c.at("name")}, {"values", c.at("values")}, {"options", c.at("options")}}
                 .dump() +
             "\n";
  TempDir dir;
  write_file(dir / "batch.jsonl", input);
  const auto file = run_vigil({"replay", "--batch", (dir / "batch.jsonl").string()});
  ASSERT_EQ(file.exit_code, 0) << file.err;
  check_batch_output(cases, file.out);
  const auto piped = run_vigil({"replay", "--batch", "-"}, input);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, file.out);
}

TEST(Replay, BatchFlagsAreDefaultsAndBadLinesAnswerInPlace) {
  const std::string input =
      "{\"values\": [1, 1, 1]}\n"
      "{\"values\": [1, 1, 1], \"options\": {\"patience\": 5}}\n"
      "{\"values\": [1, \"x\"]}\n"
      "not json\n"
      "{\"values\": [1, 2], \"options\": {\"patience\": -1}}\n"
      "{\"values\": [1, 2], \"options\": {\"rule\": \"gl\"}}\n"
      "{\"values\": [3, 2, 1]}\n"
      "{\"values\": [3, 2, 1], \"elapsed_seconds\": [5, 10, 15], \"options\": "
      "{\"time_budget_seconds\": 10}}\n"
      "{\"values\": [3, 2, 1], \"options\": {\"time_budget_seconds\": 10}}\n";
  const auto r = run_vigil({"replay", "--batch", "-", "--patience", "1"}, input);
  EXPECT_EQ(r.exit_code, 1);
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 9u) << r.out;
  EXPECT_EQ(json::parse(out[0]).at("stop_epoch"), 1);   // --patience 1 from the flags
  EXPECT_EQ(json::parse(out[1]).at("stopped"), false);  // the line's own patience wins
  for (int i : {2, 3, 4, 5}) EXPECT_TRUE(json::parse(out[i]).contains("error")) << out[i];
  EXPECT_NE(out[2].find("line 3"), std::string::npos);
  EXPECT_EQ(json::parse(out[6]).at("best_epoch"), 2);
  EXPECT_EQ(json::parse(out[7]).at("reason_kind"), "time_budget");
  EXPECT_EQ(json::parse(out[7]).at("stop_epoch"), 1);
  EXPECT_NE(out[8].find("elapsed_seconds"), std::string::npos) << out[8];
  const auto err = lines(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  EXPECT_NE(err[0].find("5 of 9 batch cases failed"), std::string::npos) << err[0];
}

TEST(Replay, BadInputs) {
  TempDir dir;
  write_file(dir / "empty.csv", "");
  write_file(dir / "m.csv", "epoch,loss,val_acc\n0,1,0.5\n");
  const auto empty = (dir / "empty.csv").string();
  const auto m = (dir / "m.csv").string();
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--bogus"}), "bogus");
  expect_clean_error(run_vigil({"replay", "--values", "1,two,3"}), "item 2 'two' is not a number");
  expect_clean_error(run_vigil({"replay", "--values", "1,,3"}), "item 2");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--mode", "up"}), "unknown mode 'up'");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--rule", "gl:5,sometimes"}),
                     "unknown rule 'sometimes'");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--rule", "robust:2"}), "STEPS");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--patience", "-1"}),
                     "patience must be 0 or more");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--patience", "many"}), "patience");
  // Text JSON cannot hold is refused by name, not met later by a bare json type_error.
  expect_clean_error(
      run_vigil({"replay", "--values", "1,2", "--monitor", "val_loss\xff", "--json"}),
      "option 'monitor' must be UTF-8 text");
  write_file(dir / "u.csv", "epoch,val_loss\xff\n0,1\n");
  expect_clean_error(run_vigil({"replay", "--log", (dir / "u.csv").string(), "--mode", "min"}),
                     "u.csv:1: column 2 of the header is not UTF-8 text");
  // Out of range is said as such, with the range, not "not a whole number".
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--patience", "1e20"}),
                     "option 'patience' must be a whole number from -2147483648 to 2147483647, "
                     "not 1e+20");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--patience", "2.5"}),
                     "option 'patience' must be a whole number, not 2.5");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--combine", "most"}), "combine");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--monitor", "widgets"}),
                     "set mode to min or max");
  expect_clean_error(run_vigil({"replay", "--log", (dir / "absent.csv").string()}),
                     "does not exist");
  expect_clean_error(run_vigil({"replay", "--log", empty}), "is empty");
  expect_clean_error(run_vigil({"replay", "--log", m}),
                     "no column 'val_loss' (columns: epoch, loss, val_acc)");
  expect_clean_error(
      run_vigil({"replay", "--log", m, "--monitor", "val_acc", "--time-budget", "5"}), "seconds");
  expect_clean_error(run_vigil({"replay", "--values", "1,2", "--time-budget", "5"}), "time budget");
  expect_clean_error(run_vigil({"replay", "--batch", (dir / "absent.jsonl").string()}),
                     "absent.jsonl' does not exist");
  expect_clean_error(run_vigil({"replay"}), "--values");
  expect_clean_error(run_vigil({"replay", "--values", "1", "--log", m}), "excludes");
}

}  // namespace

namespace {

// A line's answer without its "name" (echoed back), to compare cases written differently.
json without_name(const std::string& line) {
  auto j = json::parse(line);
  j.erase("name");
  return j;
}

}  // namespace

// --batch reads number arrays with a fast scanner and falls back to the full JSON parser for
// anything it does not accept: spacing, number spellings, duplicate keys, escaped keys and
// nested values must mean what JSON says, and malformed lines must still be refused.
TEST(Replay, BatchFastPathMeansWhatJsonSays) {
  const std::string input =
      "{\"values\": [1, 0.9, 0.95, 0.97], \"options\": {\"patience\": 1}}\n"
      "  { \"values\" : [ 1 , 9e-1 , 0.95 , 97E-2 ] , \"options\" : { \"patience\" : 1 } , "
      "\"name\" : \"a \\\"quoted\\\" name\\n\" }  \n"
      "{\"values\": [1, 0.9], \"values\": [1, 0.9, 0.95, 0.97], \"options\": {\"patience\": 1}}\n"
      "{\"val\\u0075es\": [1, 0.9, 0.95, 0.97], \"options\": {\"patience\": 1}}\n"
      "{\"values\": [1, 0.9, 0.95, 0.97], \"extra\": {\"a\": [1, {\"b\": \"]}\"}]}, "
      "\"options\": {\"patience\": 1}, \"name\": 7}\n"
      "{\"values\": [01, 0.9]}\n"
      "{\"values\": [1., 0.9]}\n"
      "{\"values\": [1, 0.9], \"extra\": tru}\n"
      "{\"values\": [1, 0.9],}\n"
      "{\"values\": [1, 0.9]} x\n"
      "{\"values\": [-0, 1e999, 0.9]}\n"
      "{\"values\": [1, \"nan\", 0.9]}\n";
  const auto r = run_vigil({"replay", "--batch", "-"}, input);
  EXPECT_EQ(r.exit_code, 1);
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 12u) << r.out;
  const auto first = json::parse(out[0]);
  EXPECT_EQ(first["stop_epoch"], 2) << out[0];
  for (std::size_t i : {1, 3, 4}) EXPECT_EQ(without_name(out[i]), first) << out[i];
  EXPECT_NE(json::parse(out[2])["error"].get<std::string>().find("\"values\" appears twice"),
            std::string::npos)
      << out[2];
  EXPECT_EQ(json::parse(out[1])["name"], "a \"quoted\" name\n");
  EXPECT_EQ(json::parse(out[4])["name"], 7);
  for (std::size_t i = 5; i <= 9; ++i)
    EXPECT_NE(out[i].find("parse error"), std::string::npos) << out[i];
  EXPECT_NE(out[10].find("number overflow"), std::string::npos) << out[10];
  EXPECT_EQ(json::parse(out[11])["reason_kind"], "non_finite") << out[11];
  EXPECT_NE(r.err.find("7 of 12 batch cases failed"), std::string::npos) << r.err;
}

// Enough cases for several chunks answered in parallel: answers come back in input order.
TEST(Replay, BatchAnswersInInputOrderAcrossChunks) {
  std::string input;
  for (int i = 0; i < 10000; ++i) {
    // Case i improves for i % 30 epochs, then stalls: with patience 1 it stops at i % 30 + 1.
    json values = json::array();
    for (int e = 0; e <= i % 30; ++e) values.push_back(1.0 - 0.01 * e);
    values.push_back(2.0);
    values.push_back(2.0);
    input += json{{"values", values}, {"options", {{"patience", 1}}}, {"name", i}}.dump() + "\n";
  }
  TempDir dir;  // a file, not stdin: the helper writes all of stdin before reading stdout
  write_file(dir / "batch.jsonl", input);
  const auto r = run_vigil({"replay", "--batch", (dir / "batch.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 10000u);
  for (int i = 0; i < 10000; ++i) {
    const auto j = json::parse(out[static_cast<std::size_t>(i)]);
    ASSERT_EQ(j["name"], i);
    ASSERT_EQ(j["stop_epoch"], i % 30 + 1) << out[static_cast<std::size_t>(i)];
  }
}

// `vigil` itself does not load libtorch (replay, inspect, verify, plot start at once); `train`
// and `eval` run in vigil-torch beside it, and say so clearly when it is missing.
TEST(Replay, ToolWithoutLibtorchForwardsTrainingCommands) {
  const auto needed =
      vigil::test::run_process({"/bin/sh", "-c", std::string("objdump -p '") + VIGIL_CLI + "'"});
  ASSERT_EQ(needed.exit_code, 0) << needed.err;
  EXPECT_NE(needed.out.find("NEEDED"), std::string::npos);
  EXPECT_EQ(needed.out.find("libtorch"), std::string::npos) << needed.out;
  EXPECT_EQ(needed.out.find("libc10"), std::string::npos) << needed.out;
#ifdef VIGIL_TORCH_CLI
  const auto help = run_vigil({"train", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--patience"), std::string::npos) << help.out;
  TempDir dir;
  std::filesystem::copy_file(VIGIL_CLI, dir / "vigil");
  const auto lone = vigil::test::run_process({(dir / "vigil").string(), "train"});
  EXPECT_EQ(lone.exit_code, 1);
  EXPECT_NE(lone.err.find("'train' is run by " + (dir / "vigil-torch").string()), std::string::npos)
      << lone.err;
  const auto replay =
      vigil::test::run_process({(dir / "vigil").string(), "replay", "--values", "1,2,3"});
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
#endif
}
