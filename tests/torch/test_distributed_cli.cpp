// `vigil train --nproc 2` end to end on the loopback: the same run as one process, one run
// directory, a rank killed mid-epoch (clear errors, nothing committed lost, resume with the same
// or another number of ranks), and Ctrl-C forwarded to every rank.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

std::vector<std::string> args(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"--epochs", "3", "--patience", "100", "--dist-timeout", "60"};
  a.insert(a.end(), extra.begin(), extra.end());
  return quick_train(dir, a);
}

// metrics.csv as rows of named numbers.
std::vector<std::map<std::string, double>> read_metrics(const fs::path& csv) {
  const auto table = read_csv(csv);
  std::vector<std::map<std::string, double>> rows;
  for (const auto& cells : table.rows) {
    std::map<std::string, double> row;
    for (std::size_t i = 0; i < cells.size() && i < table.header.size(); ++i)
      row[table.header[i]] = std::stod(cells[i]);
    rows.push_back(row);
  }
  return rows;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST(DistributedCli, TwoRanksTrainLikeOneProcessIntoOneRunDirectory) {
  TempDir tmp;
  const auto alone = run_vigil(args(tmp / "alone"));
  ASSERT_EQ(alone.exit_code, 0) << alone.out << alone.err;
  const auto two = run_vigil(args(tmp / "two", {"--nproc", "2"}));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_TRUE(contains(two.out, "started 2 ranks")) << two.out;
  // One console: rank 0's report once, nothing from rank 1.
  EXPECT_TRUE(contains(two.out, "stopped: it completed all 3 epochs")) << two.out;
  EXPECT_EQ(two.out.find("data: "), two.out.rfind("data: ")) << two.out;

  const auto a = read_metrics(tmp / "alone" / "metrics.csv");
  const auto b = read_metrics(tmp / "two" / "metrics.csv");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e)
    for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"})
      EXPECT_NEAR(b[e].at(k), a[e].at(k), 2e-3) << "epoch " << e << " " << k;
  EXPECT_EQ(run_vigil({"verify", (tmp / "two").string()}).exit_code, 0);
  EXPECT_TRUE(fs::exists(tmp / "two" / "best" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(tmp / "two" / "result.json"));

  // The checkpoints are sharded; inspect lists every tensor with its shard.
  const auto ckpt = tmp / "two" / "checkpoints" / "epoch-0002";
  EXPECT_FALSE(fs::exists(ckpt / "model.safetensors"));
  const auto inspect = run_vigil({"inspect", "--json", ckpt.string()});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  std::istringstream lines(inspect.out);
  std::string model_line;
  std::getline(lines, model_line);  // one object per index: model first, then optimizer
  const auto model = nlohmann::json::parse(model_line);
  std::set<std::string> names, files;
  for (const auto& t : model.at("tensors")) {
    names.insert(t.at("name").get<std::string>());
    files.insert(t.at("file").get<std::string>());
  }
  EXPECT_EQ(names, (std::set<std::string>{"1.weight", "1.bias", "3.weight", "3.bias"}));
  EXPECT_EQ(files, (std::set<std::string>{"model-00001-of-00002.safetensors",
                                          "model-00002-of-00002.safetensors"}));
  // vigil eval reads the sharded weights.
  const auto eval = run_vigil({"eval", "--model", ckpt.string(), "--json"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_GT(nlohmann::json::parse(eval.out).at("metrics").at("accuracy").get<double>(), 0.2);
  // An index that no longer matches its shards is damage.
  auto index = nlohmann::json::parse(read_file(ckpt / "model.safetensors.index.json"));
  index["weight_map"].erase("3.bias");
  write_file(ckpt / "model.safetensors.index.json", index.dump());
  const auto bad = run_vigil({"verify", ckpt.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.out, "DAMAGED")) << bad.out;
  EXPECT_TRUE(contains(bad.out, "which the index places elsewhere")) << bad.out;
}

// Validation every n steps with accumulation, clipping and a warm-up + cosine schedule: two ranks
// validate at the same steps as one process, with the same lr and (up to float rounding) the
// same metrics, and a two-rank run SIGKILLed mid-period resumes to the same metrics.csv.
TEST(DistributedCli, StepCadenceAccumulationClippingAndScheduleMatchOneProcess) {
  TempDir tmp;
  const std::vector<std::string> steps = {"--batch-size",  "32",     "--val-every-n-steps", "6",
                                          "--accumulate",  "2",      "--clip-grad-norm",    "1.0",
                                          "--lr-schedule", "cosine", "--warmup-steps",      "4"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), steps.begin(), steps.end());
    return extra;
  };
  const auto alone = run_vigil(args(tmp / "alone", with({"--max-steps", "18"})));
  ASSERT_EQ(alone.exit_code, 0) << alone.out << alone.err;
  const auto two = run_vigil(args(tmp / "two", with({"--max-steps", "18", "--nproc", "2"})));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  // Killed inside the second validation period (every rank at step 10), then resumed.
  const auto killed = run_vigil(args(tmp / "killed", with({"--max-steps", "18", "--nproc", "2",
                                                           "--debug-kill-after-batches", "10"})));
  ASSERT_NE(killed.exit_code, 0) << killed.out << killed.err;
  const auto resumed = run_vigil(args(tmp / "killed", with({"--max-steps", "18", "--nproc", "2"})));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming ")) << resumed.out;
  EXPECT_EQ(metrics_without_seconds(tmp / "killed" / "metrics.csv"),
            metrics_without_seconds(tmp / "two" / "metrics.csv"));

  const auto a = read_metrics(tmp / "alone" / "metrics.csv");
  const auto b = read_metrics(tmp / "two" / "metrics.csv");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t v = 0; v < 3; ++v) {
    EXPECT_EQ(b[v].at("step"), 6.0 * static_cast<double>(v + 1));
    EXPECT_EQ(b[v].at("step"), a[v].at("step"));
    EXPECT_DOUBLE_EQ(b[v].at("lr"), a[v].at("lr")) << "validation " << v;
    for (const char* k : {"loss", "val_loss", "grad_norm"})
      EXPECT_NEAR(b[v].at(k), a[v].at(k), 2e-3) << "validation " << v << " " << k;
  }
  EXPECT_EQ(run_vigil({"verify", (tmp / "two").string()}).exit_code, 0);
}

// The average is one whole file, written by rank 0 beside the shards, and every rank resumes it.
TEST(DistributedCli, EmaIsWrittenWholeAndResumedByEveryRank) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto first = run_vigil(args(run, {"--nproc", "2", "--epochs", "2", "--ema", "0.9"}));
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const auto ckpt = run / "checkpoints" / "epoch-0001";
  EXPECT_FALSE(fs::exists(ckpt / "model.safetensors"));
  ASSERT_TRUE(fs::exists(ckpt / "ema.safetensors"));
  const auto inspect = run_vigil({"inspect", "--json", (ckpt / "ema.safetensors").string()});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  std::set<std::string> names;
  const auto listed = nlohmann::json::parse(inspect.out);
  for (const auto& t : listed.at("tensors")) names.insert(t.at("name").get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"1.weight", "1.bias", "3.weight", "3.bias"}));
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);
  const auto resumed = run_vigil(args(run, {"--nproc", "2", "--epochs", "3"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming ")) << resumed.out;
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "epoch-0002" / "ema.safetensors"));
}

// --eval-test-every-epoch: rank 0 tests the whole test set on the weights every rank holds, so
// each row's test columns are one process's (up to float rounding) and the best epoch's row is
// what result.json's test of the restored best weights gives.
TEST(DistributedCli, RankZeroRecordsTheTestCurve) {
  TempDir tmp;
  const auto alone = run_vigil(args(tmp / "alone", {"--eval-test-every-epoch"}));
  ASSERT_EQ(alone.exit_code, 0) << alone.out << alone.err;
  const auto two = run_vigil(args(tmp / "two", {"--eval-test-every-epoch", "--nproc", "2"}));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto a = read_metrics(tmp / "alone" / "metrics.csv");
  const auto b = read_metrics(tmp / "two" / "metrics.csv");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e)
    for (const char* k : {"test_loss", "test_accuracy"})
      EXPECT_NEAR(b[e].at(k), a[e].at(k), 2e-3) << "epoch " << e << " " << k;
  const auto result = nlohmann::json::parse(read_file(tmp / "two" / "result.json"));
  const auto best = result.at("best_epoch").get<std::size_t>();
  EXPECT_DOUBLE_EQ(b.at(best).at("test_loss"), result.at("test").at("loss").get<double>());
  EXPECT_EQ(run_vigil({"verify", (tmp / "two").string()}).exit_code, 0);
}

TEST(DistributedCli, ARankKilledMidSaveLosesNothingCommittedAndTheRunResumes) {
  TempDir tmp;
  const auto run = tmp / "run";
  // Rank 1 dies after writing its shards of the second checkpoint, before reporting them.
  const auto killed =
      run_vigil(args(run, {"--nproc", "2", "--debug-kill-rank", "1", "--debug-kill-in-save", "2"}));
  EXPECT_EQ(killed.exit_code, 1) << killed.out << killed.err;
  EXPECT_TRUE(contains(killed.err, "rank 1 of 2 was killed by signal 9")) << killed.err;
  EXPECT_TRUE(contains(killed.err, "vigil: error: rank 0 of 2: ")) << killed.err;
  // The first checkpoint is committed and intact; the second never appeared, and rank 0 removed
  // its temporary folder.
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "epoch-0000" / "state.json"));
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "epoch-0001"));
  const auto verify = run_vigil({"verify", run.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  EXPECT_FALSE(contains(verify.out, "leftover  ")) << verify.out;

  const auto resumed = run_vigil(args(run, {"--nproc", "2"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "from checkpoint epoch-0000")) << resumed.out;
  EXPECT_EQ(read_metrics(run / "metrics.csv").size(), 3u);
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);
}

TEST(DistributedCli, ARankKilledMidEpochStopsTheRunAndItResumes) {
  TempDir tmp;
  const auto run = tmp / "run";
  // 461 training examples in batches of 64: 8 steps an epoch; rank 1 dies after step 12.
  const auto killed = run_vigil(
      args(run, {"--nproc", "2", "--debug-kill-rank", "1", "--debug-kill-after-batches", "12"}));
  EXPECT_EQ(killed.exit_code, 1) << killed.out << killed.err;
  EXPECT_TRUE(contains(killed.err, "rank 1 of 2 was killed by signal 9")) << killed.err;
  // Rank 0 does not hang: it fails in the next collective and says why.
  EXPECT_TRUE(contains(killed.err, "rank 0 of 2: all-reducing")) << killed.err;
  EXPECT_TRUE(contains(killed.err, "run the same command again to resume")) << killed.err;
  // Epoch 0's checkpoint was committed before and is intact.
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "epoch-0000" / "state.json"));
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);

  const auto resumed = run_vigil(args(run, {"--nproc", "2"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "from checkpoint epoch-0000")) << resumed.out;
  EXPECT_EQ(read_metrics(run / "metrics.csv").size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(read_file(run / "result.json")).at("epochs_run"), 3);
}

TEST(DistributedCli, CtrlCReachesEveryRankAndTheRunResumesWithOneProcess) {
  TempDir tmp;
  const auto run = tmp / "run";
  VigilProcess p(args(run, {"--nproc", "2", "--epochs", "1000"}), tmp / "out", tmp / "err");
  const auto first = run / "checkpoints" / "epoch-0000" / "state.json";
  for (int i = 0; i < 6000 && !fs::exists(first); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(first)) << p.out() << p.err();
  p.signal(SIGINT);
  EXPECT_EQ(p.wait(), 130) << p.out() << p.err();
  EXPECT_TRUE(contains(p.out(), "interrupted by SIGINT")) << p.out();
  EXPECT_TRUE(contains(p.out(), "resume with")) << p.out();
  EXPECT_EQ(run_vigil({"verify", run.string()}).exit_code, 0);

  // Another number of ranks: this time alone, to a nearby end.
  const auto rows = read_metrics(run / "metrics.csv").size();
  const auto resumed = run_vigil(args(run, {"--epochs", std::to_string(rows + 1)}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming")) << resumed.out;
  EXPECT_EQ(read_metrics(run / "metrics.csv").size(), rows + 1);
}

TEST(DistributedCli, BadLaunchFlagsAreRefused) {
  TempDir tmp;
  const auto r = run_vigil(args(tmp / "run", {"--nnodes", "2", "--node-rank", "2"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "--node-rank must be in [0, 2)")) << r.err;
}
