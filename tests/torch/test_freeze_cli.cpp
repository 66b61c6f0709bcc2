// vigil train --freeze: the frozen layer is the same in every checkpoint, holds no optimizer
// state, is recorded in run.json, and cannot change on resume.
#include <gtest/gtest.h>

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
