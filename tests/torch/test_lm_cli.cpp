// `vigil train --model gpt` end to end on a small text: validation every n steps, the test loss
// in result.json and from `vigil eval`, a run SIGKILLed and resumed that ends bit-identical,
// `vigil generate`, Python's agreement, and bad input refused with one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
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

constexpr const char* kText = "/usr/share/common-licenses/GPL-3";  // 35 kB, base-files

// A tiny model that takes a second or two: 300 steps, validating every 100.
std::vector<std::string> lm_args(const fs::path& run, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"train", "--run-dir", run.string(), "--model", "gpt"};
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--data", std::string("text:") + kText},
                                                        {"--context", "32"},
                                                        {"--layers", "1"},
                                                        {"--heads", "2"},
                                                        {"--embed", "32"},
                                                        {"--batch-size", "8"},
                                                        {"--max-steps", "300"},
                                                        {"--val-every-n-steps", "100"},
                                                        {"--warmup-steps", "10"},
                                                        {"--lr", "1e-2"},
                                                        {"--threads", "1"},
                                                        {"--seed", "3"},
                                                        {"--save-every-n-steps", "7"},
                                                        {"--patience", "100"}})
    args.insert(args.end(), {flag, value});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// One trained run shared by the tests that only read it.
class LmCli : public SharedRunTest<LmCli> {
 public:
  static std::vector<std::string> shared_run_args(const fs::path& dir) { return lm_args(dir); }
};

}  // namespace

TEST_F(LmCli, TrainsByStepsAndReportsTheTestLossInNatsPerByte) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  const auto& out = result().out;
  EXPECT_NE(out.find("model: gpt, 1 layer, 2 heads, 32 wide, context 32: "), std::string::npos)
      << out;
  EXPECT_NE(out.find("validation 0 (1 of 3): 100 steps in "), std::string::npos) << out;
  EXPECT_NE(out.find("val_perplexity "), std::string::npos) << out;
  EXPECT_NE(out.find("stopped: it reached max_steps (300 steps)"), std::string::npos) << out;
  EXPECT_NE(out.find("test loss (restored best weights): "), std::string::npos) << out;
  EXPECT_TRUE(fs::is_regular_file(shared_run() / "data" / "tokens.u8"));
  EXPECT_EQ(fs::file_size(shared_run() / "data" / "tokens.u8"), fs::file_size(kText));
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  const double loss = result.at("test").at("loss");
  EXPECT_NEAR(result.at("test").at("perplexity").get<double>(), std::exp(loss), 1e-9);
  // 300 steps of a tiny model already beat the bytes' frequencies on this text.
  EXPECT_LT(loss, result.at("unigram_test_loss").get<double>());
  EXPECT_GT(result.at("test_tokens").get<std::int64_t>(), 1000);
  const auto csv = read_file(shared_run() / "metrics.csv");
  EXPECT_NE(csv.find("\n2,300,"), std::string::npos) << csv;
  for (const auto& name : folders(shared_run() / "checkpoints"))
    EXPECT_TRUE(name.rfind("step-", 0) == 0 && name.size() == 13) << name;  // step-{step:08d}
}

TEST_F(LmCli, VerifyAcceptsTheRunAndEvalAgreesWithTheRun) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  const auto v = run_vigil({"verify", shared_run().string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  const auto e = run_vigil({"eval", "--model", shared_run().string(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  const auto j = nlohmann::json::parse(e.out);
  // The run's test used the restored best weights, which best/ holds.
  EXPECT_NEAR(j.at("metrics").at("loss").get<double>(), result.at("test").at("loss").get<double>(),
              1e-9);
  EXPECT_EQ(j.at("tokens"), result.at("test_tokens"));
  const auto text = run_vigil({"eval", "--model", shared_run().string()});
  EXPECT_NE(text.out.find(" nats per byte (perplexity "), std::string::npos) << text.out;
  // Another corpus is scored on its own test split.
  const auto other = run_vigil({"eval", "--model", shared_run().string(), "--json", "--data",
                                "text:/usr/share/common-licenses/Apache-2.0"});
  ASSERT_EQ(other.exit_code, 0) << other.out << other.err;
  EXPECT_NE(nlohmann::json::parse(other.out).at("tokens"), j.at("tokens"));
}

TEST_F(LmCli, GenerateIsDeterministicForASeedAndContinuesThePrompt) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  const std::vector<std::string> args = {
      "generate", shared_run().string(), "--prompt", "This License", "--tokens",
      "80",       "--temperature",       "1"};
  auto with_seed = [&](const char* seed) {
    auto a = args;
    a.insert(a.end(), {"--seed", seed});
    return run_vigil(a);
  };
  const auto a = with_seed("1");
  const auto b = with_seed("1");
  const auto c = with_seed("2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);  // 80 bytes sampled at temperature 1 from another seed
  EXPECT_EQ(a.out.rfind("This License", 0), 0u) << a.out;
  EXPECT_GE(a.out.size(), std::string("This License").size() + 80);
}

TEST_F(LmCli, GenerateRefusesBadInputWithOneLine) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  TempDir tmp;
  expect_failure(run_vigil({"generate", (tmp / "nothing").string()}), "not a run directory");
  const auto empty = tmp / "empty";
  fs::create_directories(empty);
  fs::copy_file(shared_run() / "run.json", empty / "run.json");
  expect_failure(run_vigil({"generate", empty.string()}), "has no trained model yet");
  expect_failure(run_vigil({"generate", shared_run().string(), "--tokens", "0"}), "--tokens");
  expect_failure(run_vigil({"generate", shared_run().string(), "--prompt", std::string(33, 'a')}),
                 "--prompt is 33 bytes, longer than the 32 this model sees");
  expect_failure(run_vigil({"generate", shared_run().string(), "--prompt", ""}),
                 "--prompt is empty");
  const auto classifier = tmp / "mlp";
  ASSERT_EQ(run_vigil(quick_train(classifier, {"--epochs", "1"})).exit_code, 0);
  expect_failure(run_vigil({"generate", classifier.string()}), "classifier run");
}

TEST(LmTrain, KilledMidRunAndResumedEndsBitIdentical) {
  TempDir tmp;
  const auto ref = tmp / "ref";
  const auto r0 = run_vigil(lm_args(ref));
  ASSERT_EQ(r0.exit_code, 0) << r0.out << r0.err;
  const auto run = tmp / "run";
  // Inside a validation period, right after a step save, and just before a validation.
  const auto resumed = kill_then_resume(run, lm_args, kills_after_batches({"37", "150", "199"}));
  ASSERT_EQ(resumed.exit_code, 0);
  // Killed after step 199: the newest checkpoint is the step save at 196, in validation period 1.
  EXPECT_NE(resumed.out.find("(saved during validation 1, step 196)"), std::string::npos)
      << resumed.out;
  EXPECT_EQ(metrics_without_seconds(run / "metrics.csv"),
            metrics_without_seconds(ref / "metrics.csv"));
  EXPECT_FALSE(expect_same_last_checkpoint(ref, run).empty());
  const auto names = folders(ref / "checkpoints");
  ASSERT_FALSE(names.empty());
  // The window source stood at the same place.
  const auto state = [&](const fs::path& r) {
    return nlohmann::json::parse(read_file(r / "checkpoints" / names.back() / "state.json"))
        .at("state")
        .at("data");
  };
  EXPECT_EQ(state(run), state(ref));
  EXPECT_EQ(nlohmann::json::parse(read_file(run / "result.json")).at("test"),
            nlohmann::json::parse(read_file(ref / "result.json")).at("test"));
}

TEST(LmTrain, BadOptionsAndCorporaAreRefusedWithOneLine) {
  TempDir tmp;
  const auto run = tmp / "r";
  expect_failure(run_vigil(lm_args(run, {"--preset", "huge"})), "--preset takes small or base");
  expect_failure(
      run_vigil({"train", "--run-dir", run.string(), "--data", std::string("text:") + kText}),
      "add --model gpt");
  expect_failure(run_vigil(lm_args(run, {"--nproc", "2"})), "drop --nproc");
  expect_failure(run_vigil(lm_args(run, {"--val-every-n-steps", "0"})),
                 "needs --max-steps N and --val-every-n-steps N");
  expect_failure(run_vigil(lm_args(run, {"--heads", "3"})), "heads");
  expect_failure(run_vigil(lm_args(run, {"--data", kText})), "--data text:PATH");
  // Corpora: nothing that is text, and one too small for the context.
  const auto binary = tmp / "binary";
  write_file(binary / "a.dat", std::string("\xff\xfe\x00\x01", 4));
  expect_failure(run_vigil(lm_args(run, {"--data", "text:" + binary.string()})),
                 "no UTF-8 text file to read", 1);
  const auto small = tmp / "small.txt";
  write_file(small, std::string(400, 'x'));
  expect_failure(run_vigil(lm_args(run, {"--data", "text:" + small.string()})), "needs at least 33",
                 1);
  EXPECT_FALSE(fs::exists(run / "run.json"));
}

TEST(LmPython, LoadInPythonAgreesWithVigilEval) {
  if (run_process({"/usr/bin/python3", "-c", "import torch"}).exit_code != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch (python3-torch)";
  TempDir tmp;
  const auto run = tmp / "lm";
  ASSERT_EQ(run_vigil(lm_args(run, {"--max-steps", "20"})).exit_code, 0);
  const auto e = run_vigil({"eval", "--model", run.string(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const double ours = nlohmann::json::parse(e.out).at("metrics").at("loss");
  const auto py = run_process(
      {"/usr/bin/python3", (source_dir() / "scripts/load_in_python.py").string(), run.string()});
  ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
  const auto last = py.out.substr(py.out.rfind("test loss "));
  const double theirs = std::stod(last.substr(10));
  EXPECT_NEAR(theirs, ours, 1e-4) << py.out;
}
