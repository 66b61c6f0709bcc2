// `vigil train` and `vigil eval` end to end on a small slice of Fashion-MNIST: the run directory,
// the report, resume refusals, --fresh, clear errors for bad input, and the flags described once
// (each one a run.json key).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/monitor.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// The long flags `vigil-torch train --help` lists (from the names column of each option line).
std::set<std::string> help_flags() {
  const auto r = run_process({VIGIL_TORCH_CLI, "train", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> flags;
  std::istringstream in(r.out);
  const std::regex flag("--[a-z][a-z0-9-]*");
  for (std::string line; std::getline(in, line);) {
    const auto start = line.find_first_not_of(' ');
    if (start == std::string::npos || line[start] != '-') continue;
    const std::string names = line.substr(start, line.find(' ', start) - start);
    for (std::sregex_iterator it(names.begin(), names.end(), flag), end; it != end; ++it)
      flags.insert(it->str());
  }
  return flags;
}

std::string key_of(const std::string& flag) {
  std::string key = flag.substr(2);
  for (char& c : key)
    if (c == '-') c = '_';
  return key;
}

class TrainCli : public SharedRunTest<TrainCli> {
 public:
  static std::vector<std::string> shared_run_args(const fs::path& dir) {
    return quick_train(dir, {"--epochs", "3"});
  }
};

}  // namespace

TEST_F(TrainCli, WritesTheRunDirectoryAndReports) {
  ASSERT_EQ(result().exit_code, 0) << result().out << result().err;
  for (const char* f : {"run.json", "metrics.csv", "model.safetensors", "best/model.safetensors",
                        "last", "result.json"})
    EXPECT_TRUE(fs::exists(shared_run() / f)) << f;
  EXPECT_FALSE(fs::is_empty(shared_run() / "checkpoints"));
  for (const char* s : {"stopped: ", "best epoch: ", "test accuracy (restored best weights): ",
                        "best model: ", "checkpoints: ", "epoch 0 (1 of 3): "})
    EXPECT_NE(result().out.find(s), std::string::npos) << s << "\n" << result().out;

  const auto csv = read_file(shared_run() / "metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "epoch,step,accuracy,loss,val_accuracy,val_loss,lr,seconds");
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  EXPECT_EQ(result.at("test_examples"), 300);
  // Even 3 epochs on 461 images learn something: far above the 10% of chance.
  EXPECT_GT(vigil::number_from_json(result.at("test").at("accuracy")), 0.5);

  const auto cfg = nlohmann::json::parse(read_file(shared_run() / "run.json"));
  EXPECT_EQ(cfg.at("hidden"), nlohmann::json::array({16}));
  EXPECT_EQ(cfg.at("early_stopping").at("monitor"), "val_loss");
  EXPECT_EQ(cfg.at("early_stopping").at("patience"), 3);
}

TEST_F(TrainCli, RunJsonHasExactlyTheRecordedKeys) {
  ASSERT_EQ(result().exit_code, 0);
  const auto cfg = nlohmann::json::parse(read_file(shared_run() / "run.json"));
  std::vector<std::string> keys;
  for (const auto& [key, value] : cfg.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"accumulate",
                                            "async_save",
                                            "batch_norm",
                                            "batch_size",
                                            "channels",
                                            "clip_grad_norm",
                                            "context",
                                            "cooldown",
                                            "data",
                                            "dropout",
                                            "early_stopping",
                                            "ema",
                                            "ema_validate",
                                            "embed",
                                            "epochs",
                                            "eval_test_every_epoch",
                                            "filename",
                                            "final_lr",
                                            "freeze",
                                            "heads",
                                            "hidden",
                                            "init_from",
                                            "init_source",
                                            "keep_last",
                                            "layers",
                                            "limit_test",
                                            "limit_train",
                                            "lr",
                                            "lr_schedule",
                                            "max_steps",
                                            "min_lr",
                                            "model",
                                            "momentum",
                                            "optimizer",
                                            "preset",
                                            "reduce_lr_factor",
                                            "reduce_lr_patience",
                                            "reference_curves",
                                            "reference_runs",
                                            "restore_best_weights",
                                            "run_id",
                                            "save_best_only",
                                            "save_every_n_epochs",
                                            "save_every_n_steps",
                                            "save_top_k",
                                            "seed",
                                            "standardizer",
                                            "target",
                                            "task",
                                            "test_split",
                                            "threads",
                                            "val_every_n_steps",
                                            "validation_split",
                                            "warmup_steps",
                                            "weight_decay"}));
  EXPECT_EQ(cfg.at("channels"), nlohmann::json::array({16, 32}));
  EXPECT_EQ(cfg.at("lr"), 1e-3);
  EXPECT_TRUE(cfg.at("seed").is_number_unsigned());
  EXPECT_TRUE(cfg.at("standardizer").is_null());
  EXPECT_EQ(cfg.at("restore_best_weights"), true);
}

// Options are described once: every flag of `vigil train --help` is a run.json key (top level,
// or in its "early_stopping" object) or a flag of the run itself, and every key given on the
// command line has its flag.
TEST_F(TrainCli, EveryHelpFlagIsARunJsonKeyOrARunFlag) {
  ASSERT_EQ(result().exit_code, 0);
  const auto cfg = nlohmann::json::parse(read_file(shared_run() / "run.json"));
  const auto& es = cfg.at("early_stopping");
  const std::set<std::string> run_only = {"--help",         "--run-dir",       "--fresh",
                                          "--progress",     "--nproc",         "--nnodes",
                                          "--node-rank",    "--master-addr",   "--master-port",
                                          "--dist-timeout", "--dist-interface"};
  // Flags named otherwise than their key.
  const std::map<std::string, std::string> renamed = {{"--time-budget", "time_budget_seconds"}};
  const auto flags = help_flags();
  ASSERT_GT(flags.size(), 40u);
  for (const auto& flag : flags) {
    if (run_only.count(flag)) continue;
    std::string key = renamed.count(flag) ? renamed.at(flag) : key_of(flag);
    if (key.rfind("no_", 0) == 0 && flags.count("--" + flag.substr(5))) key = key.substr(3);
    EXPECT_TRUE(cfg.contains(key) || es.contains(key))
        << flag << " is neither a run.json key nor a known flag of the run";
  }
  for (const auto& [key, value] : cfg.items()) {
    // No flag of their own: an object of flags, and four records made at the first start.
    if (key == "early_stopping" || key == "standardizer" || key == "init_source" ||
        key == "run_id" || key == "reference_curves")
      continue;
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    EXPECT_TRUE(flags.count(flag)) << "run.json key " << key << " has no flag " << flag;
  }
  for (const char* key :
       {"monitor", "mode", "patience", "min_delta", "baseline", "start_from_epoch",
        "stopping_threshold", "divergence_threshold", "check_finite", "rule"}) {
    std::string flag = "--" + std::string(key);
    std::replace(flag.begin(), flag.end(), '_', '-');
    EXPECT_TRUE(flags.count(flag)) << flag;
  }
}

TEST_F(TrainCli, AMistypedKeyInRunJsonIsReportedNotDropped) {
  ASSERT_EQ(result().exit_code, 0);
  TempDir tmp;
  const auto dir = tmp / "r";
  fs::create_directories(dir);
  fs::copy_file(shared_run() / "model.safetensors", dir / "model.safetensors");
  auto cfg = nlohmann::json::parse(read_file(shared_run() / "run.json"));
  cfg["epoch"] = 9;  // for "epochs"
  write_file(dir / "run.json", cfg.dump(2));
  auto r = run_vigil(quick_train(dir, {"--epochs", "3"}));
  expect_one_line_error(r, "run.json has an unknown key 'epoch' (known: data, target, ");
  EXPECT_EQ(r.exit_code, 2);
  // eval reads run.json the same way.
  auto e = run_vigil({"eval", "--model", dir.string()});
  expect_one_line_error(e, "run.json has an unknown key 'epoch'");

  // In the early-stopping object as well.
  cfg.erase("epoch");
  cfg["early_stopping"]["patince"] = 5;
  write_file(dir / "run.json", cfg.dump(2));
  r = run_vigil(quick_train(dir, {"--epochs", "3"}));
  expect_one_line_error(r, "unknown option 'patince' (known: monitor, ");
  EXPECT_EQ(r.exit_code, 2);

  // A known key with a value of the wrong type is bad input (exit 1), naming the key.
  cfg["early_stopping"].erase("patince");
  cfg["lr"] = "fast";
  write_file(dir / "run.json", cfg.dump(2));
  r = run_vigil(quick_train(dir, {"--epochs", "3"}));
  expect_one_line_error(r, "run.json has a value of the wrong type (option 'lr' must be a number");
  EXPECT_EQ(r.exit_code, 1);
}

TEST(TrainCliFlags, ValuesAndSwitchesLandInRunJson) {
  TempDir tmp;
  const auto dir = tmp / "r";
  // Given twice, a flag takes its last value (switches and their --no- form alike).
  auto r = run_vigil(quick_train(
      dir,
      {"--epochs", "1", "--limit-train", "128", "--hidden", "8,4", "--lr", "0.01", "--lr", "0.02",
       "--no-restore-best-weights", "--restore-best-weights", "--no-restore-best-weights",
       "--async-save", "--filename", "e{epoch}", "--patience", "2", "--no-check-finite"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto cfg = nlohmann::json::parse(read_file(dir / "run.json"));
  EXPECT_EQ(cfg.at("hidden"), nlohmann::json::array({8, 4}));
  EXPECT_EQ(cfg.at("lr"), 0.02);
  EXPECT_EQ(cfg.at("restore_best_weights"), false);
  EXPECT_EQ(cfg.at("async_save"), true);
  EXPECT_EQ(cfg.at("batch_norm"), false);
  EXPECT_EQ(cfg.at("filename"), "e{epoch}");
  EXPECT_EQ(cfg.at("limit_train"), 128);
  EXPECT_EQ(cfg.at("early_stopping").at("patience"), 2);
  EXPECT_EQ(cfg.at("early_stopping").at("check_finite"), false);
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "e0"));
}

TEST(TrainCliFlags, ABadValueIsReportedWithItsKey) {
  TempDir tmp;
  auto r = run_vigil(quick_train(tmp / "r", {"--lr", "fast"}));
  expect_one_line_error(r, "option 'lr' must be a number, not \"fast\"");
  r = run_vigil(quick_train(tmp / "r", {"--seed", "-1"}));
  expect_one_line_error(r, "option 'seed' must be a whole number of 0 or more");
  // The range checks are CLI11's, as before.
  r = run_vigil(quick_train(tmp / "r", {"--validation-split", "2"}));
  expect_one_line_error(r, "--validation-split");
  // Thread counts are bounded (4 per core, at most 1024) before libtorch creates any.
  r = run_vigil(quick_train(tmp / "r", {"--threads", "100000"}));
  expect_one_line_error(r, "--threads: must be at most");
  EXPECT_NE(r.err.find("got 100000"), std::string::npos) << r.err;
  r = run_vigil(quick_train(tmp / "r", {"--lr", "inf"}));
  expect_one_line_error(r, "--lr: must be a finite number > 0, got inf");
  EXPECT_FALSE(fs::exists(tmp / "r"));
  // A model larger than any address space: one line saying so, not libtorch's backtrace.
  r = run_vigil(quick_train(tmp / "big", {"--hidden", "100000000000"}));
  expect_one_line_error(r, "out of memory: a tensor of 292");
}

// With no epoch run there is no metrics.csv, and the report does not point at one.
TEST(TrainCliFlags, ZeroEpochsReportNoMetricsFile) {
  TempDir tmp;
  const auto r = run_vigil(quick_train(tmp / "r", {"--epochs", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("metrics: none yet (no epoch has ended)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp / "r" / "metrics.csv"));
}

TEST_F(TrainCli, EvalReproducesTheTestAccuracyFromEveryKindOfPath) {
  ASSERT_EQ(result().exit_code, 0);
  const auto result = nlohmann::json::parse(read_file(shared_run() / "result.json"));
  // The final model (best weights restored) is the best checkpoint's: same numbers.
  for (const auto& path :
       {shared_run() / "model.safetensors", shared_run() / "best", shared_run()}) {
    auto r = run_vigil({"eval", "--model", path.string(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("examples"), 300);
    EXPECT_EQ(j.at("metrics").at("accuracy"), result.at("test").at("accuracy")) << path;
  }
  // A checkpoint folder works as well.
  const auto last = read_file(shared_run() / "last");
  const auto name = last.substr(0, last.find('\n'));
  auto r = run_vigil({"eval", "--model", (shared_run() / "checkpoints" / name).string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("test accuracy: "), std::string::npos) << r.out;
}

// A model file swapped in from another checkpoint is a valid file with valid checksums of its
// own: only the hashes the checkpoint's state.json records show it, and eval checks them.
TEST_F(TrainCli, EvalRefusesACheckpointWhoseModelWasSwapped) {
  ASSERT_EQ(result().exit_code, 0);
  TempDir tmp;
  fs::copy(shared_run(), tmp / "run", fs::copy_options::recursive);
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(tmp / "run" / "checkpoints"))
    if (fs::exists(e.path() / "state.json")) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  ASSERT_GE(folders.size(), 2u);
  fs::copy_file(folders.front() / "model.safetensors", folders.back() / "model.safetensors",
                fs::copy_options::overwrite_existing);
  expect_one_line_error(run_vigil({"eval", "--model", folders.back().string()}),
                        "the checkpoint is not intact");
  auto r = run_vigil({"eval", "--model", folders.front().string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(TrainCli, EvalWithoutRunJsonSaysWhatIsMissing) {
  ASSERT_EQ(result().exit_code, 0);
  TempDir tmp;
  fs::copy_file(shared_run() / "model.safetensors", tmp / "model.safetensors");
  expect_one_line_error(run_vigil({"eval", "--model", (tmp / "model.safetensors").string()}),
                        "--run-dir");
  // With --run-dir it works.
  auto r = run_vigil({"eval", "--model", (tmp / "model.safetensors").string(), "--run-dir",
                      shared_run().string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(TrainCli, ResumeRefusesOptionsThatCannotChange) {
  ASSERT_EQ(result().exit_code, 0);
  auto r = run_vigil(quick_train(shared_run(), {"--epochs", "3", "--hidden", "32"}));
  EXPECT_EQ(r.exit_code, 2);
  expect_one_line_error(r, "--hidden cannot change when resuming");
  EXPECT_NE(r.err.find("--fresh"), std::string::npos);
  r = run_vigil(quick_train(shared_run(), {"--epochs", "3", "--seed", "8"}));
  expect_one_line_error(r, "--seed cannot change");
  r = run_vigil(quick_train(shared_run(), {"--epochs", "3", "--monitor", "val_accuracy"}));
  expect_one_line_error(r, "--monitor cannot change");
  // Nothing was touched by the refusals.
  EXPECT_EQ(nlohmann::json::parse(read_file(shared_run() / "run.json")).at("hidden"),
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

// --ema: every checkpoint holds ema.safetensors with the model's tensor names, which verify,
// inspect and eval take in their stride; --ema is frozen on resume.
TEST(TrainCliEma, EveryCheckpointHoldsTheAverage) {
  TempDir tmp;
  const auto dir = tmp / "r";
  auto r = run_vigil(quick_train(dir, {"--epochs", "2", "--limit-train", "256", "--ema", "0.9"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("averaged weights: "), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(read_file(dir / "run.json"));
  EXPECT_EQ(cfg.at("ema"), 0.9);
  EXPECT_EQ(cfg.at("ema_validate"), false);
  EXPECT_TRUE(fs::exists(dir / "ema.safetensors"));

  auto names = [](const fs::path& file) {
    const auto i = run_vigil({"inspect", "--json", file.string()});
    EXPECT_EQ(i.exit_code, 0) << i.err;
    std::vector<std::string> out;
    const auto listed = nlohmann::json::parse(i.out);
    for (const auto& t : listed.at("tensors")) out.push_back(t.at("name").get<std::string>());
    return out;
  };
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(dir / "checkpoints")) {
    if (!e.is_directory()) continue;
    ++checkpoints;
    ASSERT_TRUE(fs::exists(e.path() / "ema.safetensors")) << e.path();
    EXPECT_EQ(names(e.path() / "ema.safetensors"),
              (std::vector<std::string>{"1.bias", "1.weight", "3.bias", "3.weight"}));
    EXPECT_EQ(names(e.path() / "ema.safetensors"), names(e.path() / "model.safetensors"));
    EXPECT_NE(read_file(e.path() / "ema.safetensors"), read_file(e.path() / "model.safetensors"));
  }
  EXPECT_EQ(checkpoints, 2);
  const auto v = run_vigil({"verify", dir.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("4 tensor files"), std::string::npos) << v.out;
  EXPECT_EQ(v.out.find("differs"), std::string::npos) << v.out;
  EXPECT_EQ(run_vigil({"eval", "--model", dir.string()}).exit_code, 0);

  r = run_vigil(quick_train(dir, {"--epochs", "3", "--limit-train", "256", "--ema", "0.99"}));
  expect_one_line_error(r, "--ema cannot change when resuming");
  EXPECT_EQ(r.exit_code, 2);
  r = run_vigil(quick_train(dir, {"--epochs", "3", "--limit-train", "256"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("resuming "), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "epoch-0002" / "ema.safetensors"));
}

TEST(TrainCliEma, EmaValidateIsRecorded) {
  TempDir tmp;
  const auto dir = tmp / "r";
  auto r = run_vigil(quick_train(dir, {"--epochs", "0", "--ema", "0.99", "--ema-validate"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto cfg = nlohmann::json::parse(read_file(dir / "run.json"));
  EXPECT_EQ(cfg.at("ema"), 0.99);
  EXPECT_EQ(cfg.at("ema_validate"), true);
  const auto manifest = nlohmann::json::parse(read_file(dir / "checkpoints" / "manifest.json"));
  EXPECT_EQ(manifest.at("best_file"), "ema.safetensors");
  r = run_vigil(quick_train(dir, {"--epochs", "0", "--ema", "0.9", "--ema-validate"}));
  expect_one_line_error(r, "--ema cannot change when resuming");
  // Resumed without the flags, the run keeps them.
  r = run_vigil(quick_train(dir, {"--epochs", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "run.json")).at("ema_validate"), true);
}

TEST(TrainCliEma, BadValuesAreRefusedBeforeAnyWork) {
  TempDir tmp;
  for (const char* v : {"1.5", "0", "1", "-0.5"}) {
    const auto r = run_vigil(quick_train(tmp / "r", {"--ema", v}));
    expect_one_line_error(r, "--ema takes a decay in (0, 1)");
    EXPECT_EQ(r.exit_code, 2) << v;
  }
  auto r = run_vigil(quick_train(tmp / "r", {"--ema-validate"}));
  expect_one_line_error(r, "--ema-validate validates the averaged weights: it needs --ema DECAY");
  EXPECT_EQ(r.exit_code, 2);
  r = run_vigil(quick_train(tmp / "r", {"--ema", "fast"}));
  expect_one_line_error(r, "option 'ema' must be a number");
  EXPECT_FALSE(fs::exists(tmp / "r"));
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
