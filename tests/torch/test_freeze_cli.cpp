// vigil train --freeze: the frozen layer is the same in every checkpoint, holds no optimizer
// state, is recorded in run.json, cannot change on resume, and is written once for all checkpoints.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

using namespace vigil::test;
namespace fs = std::filesystem;

TEST(FreezeCli, TheFrozenLayerStaysAsItWasAndTheRunRecordsIt) {
  TempDir tmp;
  const auto run = tmp / "run";
  // The mlp is Flatten (0), Linear (1), ReLU (2), Linear (3): the first Linear layer is frozen.
  const auto r = run_vigil(quick_train(run, {"--freeze", "^1\\.", "--epochs", "2"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("froze 2 parameter tensors matching '^1\\.'"), std::string::npos) << r.out;
  const auto recorded = nlohmann::json::parse(read_file(run / "run.json"));
  EXPECT_EQ(recorded.at("freeze"), "^1\\.");

  const auto names = folders(run / "checkpoints");
  ASSERT_EQ(names.size(), 2u);
  const auto first = tensors_of(run / "checkpoints" / names[0]);
  const auto second = tensors_of(run / "checkpoints" / names[1]);
  EXPECT_EQ(first.at("model:1.weight"), second.at("model:1.weight"));
  EXPECT_EQ(first.at("model:1.bias"), second.at("model:1.bias"));
  EXPECT_NE(first.at("model:3.weight"), second.at("model:3.weight"));
  for (const auto& [name, bytes] : second)
    EXPECT_NE(name.rfind("optimizer:state.1.", 0), 0u) << name << ": a frozen tensor has state";

  // Resuming keeps the recorded pattern; another one is refused.
  expect_one_line_error(run_vigil(quick_train(run, {"--freeze", "^3\\.", "--epochs", "3"})),
                        "--freeze cannot change");
  const auto resumed = run_vigil(quick_train(run, {"--epochs", "3"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  const auto third = tensors_of(run / "checkpoints" / folders(run / "checkpoints").back());
  EXPECT_EQ(third.at("model:1.weight"), first.at("model:1.weight"));
}

TEST(FreezeCli, APatternThatMatchesNothingOrDoesNotParseIsAnError) {
  TempDir tmp;
  expect_one_line_error(run_vigil(quick_train(tmp / "a", {"--freeze", "^9\\."})),
                        "--freeze: freeze pattern '^9\\.' matches none of the model's parameters");
  expect_one_line_error(run_vigil(quick_train(tmp / "b", {"--freeze", "("})),
                        "not a valid regular expression");
}

namespace {

ino_t inode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

}  // namespace

// The frozen tensors are a shard of their own that every checkpoint links (the best weights'
// copy too); each folder still verifies, evaluates and loads alone, in vigil and in Python, and
// best/ is one file.
TEST(FreezeCli, CheckpointsShareTheFrozenShardAndEachFolderLoadsAlone) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r =
      run_vigil(quick_train(run, {"--freeze", "^1\\.", "--epochs", "3", "--keep-last", "-1"}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto names = folders(run / "checkpoints");
  ASSERT_EQ(names.size(), 3u);
  std::map<std::string, double> accuracy;
  const auto frozen_inode =
      inode_of(run / "checkpoints" / names[0] / "model-00001-of-00002.safetensors");
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const auto dir = run / "checkpoints" / name;
    EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
    EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
    EXPECT_EQ(inode_of(dir / "model-00001-of-00002.safetensors"), frozen_inode);
    EXPECT_EQ(inode_of(dir / "best_weights-00001-of-00002.safetensors"), frozen_inode);
    const auto eval = run_vigil({"eval", "--model", dir.string(), "--json"});
    ASSERT_EQ(eval.exit_code, 0) << eval.err;
    accuracy[name] = nlohmann::json::parse(eval.out).at("metrics").at("accuracy").get<double>();
  }
  // The restored best weights scored what `vigil eval` of the best checkpoint scores.
  const auto result = nlohmann::json::parse(read_file(run / "result.json"));
  EXPECT_EQ(accuracy.at(names.at(result.at("best_epoch").get<std::size_t>())),
            result.at("test").at("accuracy").get<double>());
  const auto verify = run_vigil({"verify", run.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // best/ is the best checkpoint's shards merged into one plain file.
  const auto manifest = nlohmann::json::parse(read_file(run / "checkpoints" / "manifest.json"));
  const auto best = tensors_of(run / "checkpoints" / manifest.at("best").get<std::string>());
  const auto best_file = vigil::SafetensorsFile::open(run / "best" / "model.safetensors");
  ASSERT_EQ(best_file.tensors().size(), 4u);
  for (const auto& info : best_file.tensors()) {
    const auto v = best_file.view(info.name);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.data.data()), v.data.size()),
              best.at("model:" + info.name))
        << info.name;
  }

  // A plain Python reader (torch, json, struct) loads each folder's model into the network.
  if (!python_has_torch()) GTEST_SKIP() << "python3 cannot import torch (python3-torch)";
  write_file(tmp / "load.py", R"(import json, struct, sys, torch
sys.path.insert(0, sys.argv[1])
import load_in_python as lp
run = json.load(open(sys.argv[2] + "/run.json"))
for folder in sys.argv[4:]:
    state, _ = lp.load_weights(sys.argv[2] + "/checkpoints/" + folder)
    lp.build_model(run).load_state_dict(state)  # strict: every tensor there, none extra
    for name, t in sorted(state.items()):
        values = t.flatten().tolist()
        open(f"{sys.argv[3]}/{folder}_{name}", "wb").write(struct.pack(f"<{len(values)}f", *values))
)");
  fs::create_directories(tmp / "out");
  std::vector<std::string> argv = {"/usr/bin/python3", (tmp / "load.py").string(),
                                   (source_dir() / "scripts").string(), run.string(),
                                   (tmp / "out").string()};
  argv.insert(argv.end(), names.begin(), names.end());
  const auto py = run_process(argv);
  ASSERT_EQ(py.exit_code, 0) << py.out << py.err;
  for (const auto& name : names) {
    for (const auto& [key, bytes] : tensors_of(run / "checkpoints" / name)) {
      if (key.rfind("model:", 0) != 0) continue;
      EXPECT_EQ(read_file(tmp / "out" / (name + "_" + key.substr(6))), bytes) << name << key;
    }
  }
}
