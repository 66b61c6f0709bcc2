// The examples that need no libtorch, run for real. core_raw_buffers: early stopping on raw float
// buffers, checkpoints of named buffers, and the best ones loaded back (checked here from the
// files themselves). custom_rule: a stopping rule defined outside the library.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/safetensors.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

fs::path example(const std::string& name) {
  return fs::path(VIGIL_CLI).parent_path() / "examples" / name;
}

std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return "";
  return m[1];
}

}  // namespace

TEST(ExampleCoreRawBuffers, StopsEarlyAndItsBestCheckpointHoldsTheBestBuffers) {
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_process({example("example_core_raw_buffers").string(), run.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // It stopped by patience (5) well before its 500 epochs.
  const std::string stop = match(r.out, "stopped after epoch (\\d+): val_loss did not improve");
  const std::string best = match(r.out, "best epoch: (\\d+)");
  ASSERT_FALSE(stop.empty()) << r.out;
  ASSERT_FALSE(best.empty()) << r.out;
  EXPECT_EQ(std::stol(stop), std::stol(best) + 5) << r.out;
  EXPECT_LT(std::stol(stop), 499);

  // save_top_k=1 keeps the best epoch's checkpoint; its buffers are those of best/, and its
  // recorded val_loss is the best value the example printed.
  char name[32];
  std::snprintf(name, sizeof name, "epoch-%04ld", std::stol(best));
  const auto ckpt = vigil::Checkpoint::open(run / "checkpoints" / name);
  const std::string best_value = match(r.out, "best val_loss: (\\S+)");
  EXPECT_EQ(ckpt.info().metrics.at("val_loss"), std::stod(best_value));
  const auto a = vigil::SafetensorsFile::open(run / "best" / "model.safetensors");
  const auto b = ckpt.open_file("model");
  for (const char* t : {"w", "b"}) {
    const auto va = a.view(t), vb = b.view(t);
    EXPECT_EQ(va.dtype, vigil::DType::F32);
    ASSERT_EQ(va.data.size(), vb.data.size()) << t;
    EXPECT_TRUE(std::equal(va.data.begin(), va.data.end(), vb.data.begin())) << t;
  }
  EXPECT_EQ(a.view("w").shape, (std::vector<std::uint64_t>{4}));
  EXPECT_TRUE(a.view("b").shape.empty());
  // The weights it learned are close to the generating ones (2, -1, 0.5, 0).
  const auto w = a.view("w");
  float wv[4];
  std::memcpy(wv, w.data.data(), sizeof wv);
  EXPECT_NEAR(wv[0], 2.0f, 0.3f);
  EXPECT_NEAR(wv[1], -1.0f, 0.3f);

  // The run directory is intact by vigil's own check.
  const auto v = run_vigil({"verify", run.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

// examples/custom_rule.cpp: a rule defined outside the library stops the same run used as an
// object and through a spec next to a built-in rule; its name is the stop's reason_kind.
TEST(ExampleCustomRule, StopsByItsOwnRuleAsAnObjectAndThroughASpec) {
  const auto r = run_process({example("example_custom_rule").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("object: stopped after epoch 6 (relative): val_loss improved by 0.82% on "
                       "the best of the previous 3 epochs (< 1%); best 0.605 at epoch 6"),
            std::string::npos)
      << r.out;
  const auto line = match(r.out, "spec gl:20,relative:3: (\\{.*\\})");
  ASSERT_FALSE(line.empty()) << r.out;
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("stop_epoch"), 6);
  EXPECT_EQ(j.at("reason_kind"), "relative");
  EXPECT_EQ(j.at("best_value"), 0.605);
}
