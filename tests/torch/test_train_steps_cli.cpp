// `vigil train` by steps: validation every n steps with accumulation and clipping, checkpoints
// named by step, a run SIGKILLed several times and resumed that ends with every tensor of its
// last checkpoint byte-identical to an uninterrupted run, and bad values refused up front.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/metrics_log.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// 461 training examples in batches of 32: 15 batches a pass, 8 steps of 2 micro-batches.
std::vector<std::string> step_args(const fs::path& run, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = quick_train(run, {"--batch-size",
                                                    "32",
                                                    "--max-steps",
                                                    "60",
                                                    "--val-every-n-steps",
                                                    "20",
                                                    "--accumulate",
                                                    "2",
                                                    "--clip-grad-norm",
                                                    "1.0",
                                                    "--save-every-n-steps",
                                                    "9",
                                                    "--lr-schedule",
                                                    "cosine",
                                                    "--warmup-steps",
                                                    "15",
                                                    "--ema",
                                                    "0.99",
                                                    "--patience",
                                                    "100",
                                                    "--keep-last",
                                                    "3"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST(TrainSteps, ValidatesEveryNStepsAndNamesCheckpointsByStep) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_vigil(step_args(run));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("stopped: it reached max_steps (60 steps)"), std::string::npos) << r.out;
  // Messages say validation and steps where they mean them.
  EXPECT_NE(r.out.find("validation 0 (1 of 3): 20 steps in "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validations run: 3 (validation 0 to 2, 0-based)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("best validation: "), std::string::npos) << r.out;
  const std::string csv = read_file(run / "metrics.csv");
  // One row per validation, at steps 20, 40 and 60.
  EXPECT_NE(csv.find("\n0,20,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n1,40,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n2,60,"), std::string::npos) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4) << csv;
  EXPECT_NE(csv.find("grad_norm"), std::string::npos) << csv;
  for (const auto& name : folders(run / "checkpoints"))
    EXPECT_EQ(name.rfind("step-000000", 0), 0u) << name;
}

TEST(TrainSteps, KilledSeveralTimesAndResumedEndsBitIdentical) {
  TempDir tmp;
  const auto ref = tmp / "ref";
  ASSERT_EQ(run_vigil(step_args(ref)).exit_code, 0);

  const auto run = tmp / "run";
  // Steps chosen to fall inside a validation period, right after a step save and between saves.
  const auto resumed = kill_then_resume(run, step_args, kills_after_batches({"13", "29", "46"}));
  ASSERT_EQ(resumed.exit_code, 0);
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;

  EXPECT_EQ(metrics_without_seconds(run / "metrics.csv"),
            metrics_without_seconds(ref / "metrics.csv"));
  const auto last_ref = expect_same_last_checkpoint(ref, run);
  for (const char* stem : {"model", "optimizer", "ema"})
    EXPECT_TRUE(std::any_of(
        last_ref.begin(), last_ref.end(),
        [&](const auto& kv) { return kv.first.rfind(stem + std::string(":"), 0) == 0; }))
        << "no " << stem << ".safetensors in the last checkpoint";
}

TEST(TrainSteps, BadValuesAreRefusedBeforeAnyWork) {
  TempDir tmp;
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--accumulate", "0"},
                                                        {"--val-every-n-steps", "-1"},
                                                        {"--max-steps", "-5"},
                                                        {"--clip-grad-norm", "-1"}}) {
    const auto r = run_vigil(quick_train(tmp / "r", {flag, value}));
    EXPECT_EQ(r.exit_code, 2) << flag << " " << value << ": " << r.err;
    EXPECT_NE(r.err.find(flag), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "r")) << flag;
  }
}

TEST(TrainSteps, EmaValidateMeasuresTheAveragedWeights) {
  TempDir tmp;
  const std::vector<std::string> common = {"--epochs", "2", "--ema", "0.9"};
  auto plain_args = quick_train(tmp / "plain", common);
  auto averaged_args = quick_train(tmp / "averaged", common);
  averaged_args.push_back("--ema-validate");
  ASSERT_EQ(run_vigil(plain_args).exit_code, 0);
  const auto r = run_vigil(averaged_args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto plain = vigil::MetricsLog::read(tmp / "plain" / "metrics.csv");
  const auto averaged = vigil::MetricsLog::read(tmp / "averaged" / "metrics.csv");
  ASSERT_EQ(plain.rows(), averaged.rows());
  // The same training (the swap puts the training weights back exactly), another validation.
  const auto as_vector = [](std::span<const double> c) {
    return std::vector<double>(c.begin(), c.end());
  };
  EXPECT_EQ(as_vector(plain.column("loss")), as_vector(averaged.column("loss")));
  EXPECT_NE(as_vector(plain.column("val_loss")), as_vector(averaged.column("val_loss")));
  const auto v = run_vigil({"verify", (tmp / "averaged").string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST(TrainWarmStart, StartsFromAnotherRunsBestWeightsAndRecordsThem) {
  TempDir tmp;
  ASSERT_EQ(run_vigil(quick_train(tmp / "base", {"--epochs", "2"})).exit_code, 0);
  const auto r = run_vigil(
      quick_train(tmp / "tuned", {"--epochs", "1", "--init-from", (tmp / "base").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto best = (tmp / "base" / "best" / "model.safetensors").string();
  EXPECT_NE(r.out.find("initialised from " + best), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(read_file(tmp / "tuned" / "run.json"));
  EXPECT_EQ(cfg.at("init_from"), (tmp / "base").string());
  EXPECT_EQ(cfg.at("init_source").at("file"), best);
  EXPECT_EQ(cfg.at("init_source").at("xxh3").get<std::string>().size(), 16u);
  // Trained weights to begin with: its first epoch beats the base run's first epoch.
  const auto base = vigil::MetricsLog::read(tmp / "base" / "metrics.csv");
  const auto tuned = vigil::MetricsLog::read(tmp / "tuned" / "metrics.csv");
  EXPECT_LT(tuned.column("loss")[0], base.column("loss")[0]);

  // Another architecture: refused, naming the tensors, before any training.
  const auto other = run_vigil(
      quick_train(tmp / "other", {"--hidden", "32", "--init-from", (tmp / "base").string()}));
  EXPECT_EQ(other.exit_code, 1) << other.out << other.err;
  EXPECT_NE(other.err.find("1.weight"), std::string::npos) << other.err;
  EXPECT_EQ(std::count(other.err.begin(), other.err.end(), '\n'), 1) << other.err;
  const auto missing = run_vigil(quick_train(tmp / "m", {"--init-from", (tmp / "nope").string()}));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no such file or directory"), std::string::npos) << missing.err;
}
