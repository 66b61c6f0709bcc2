// `vigil train`: what the flags (torch_train_flags.cpp) hand to the run (torch_train.cpp).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "torch_common.hpp"
#include "torch_launch.hpp"

namespace vigil::cli {

struct TrainArgs {
  RunConfig config;  ///< every run.json field with a flag of its own is written here directly
  std::string run_dir = "runs/train";
  bool fresh = false;
  std::string progress = "auto";
  LaunchArgs launch;  // --nproc & co. (torch_launch.cpp)
  std::int64_t debug_kill_after_batches = 0;
  int debug_kill_after_epochs = 0;
  // Flag -> run.json key, to know which options the user gave explicitly.
  std::vector<std::pair<CLI::Option*, std::string>> keyed;
};

/// The run.json keys (nested ones as "early_stopping.patience") whose flags were given.
std::set<std::string> explicit_keys(const TrainArgs& a);

/// Trains as `a` says; returns the exit code (0, or 128 + signal when interrupted).
int run_train(TrainArgs& a);

}  // namespace vigil::cli
