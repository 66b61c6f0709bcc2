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
  std::string rule = "patience";
  // Optional numbers: set only when their flag is given.
  double baseline = 0, stopping_threshold = 0, divergence_threshold = 0, time_budget = 0;
  CLI::Option* baseline_opt = nullptr;
  CLI::Option* stopping_threshold_opt = nullptr;
  CLI::Option* divergence_threshold_opt = nullptr;
  CLI::Option* time_budget_opt = nullptr;
  bool check_finite = true;
  std::string progress = "auto";
  LaunchArgs launch;  // --nproc & co. (torch_launch.cpp)
  std::int64_t debug_kill_after_batches = 0;
  int debug_kill_after_epochs = 0;
  // Flag -> run.json key, to know which options the user gave explicitly.
  std::vector<std::pair<CLI::Option*, std::string>> keyed;
};

/// The run's options as the command line gives them (defaults for the flags not given).
RunConfig config_from_args(const TrainArgs& a);

/// The run.json keys (nested ones as "early_stopping.patience") whose flags were given.
std::set<std::string> explicit_keys(const TrainArgs& a);

/// Trains as `a` says; returns the exit code (0, or 128 + signal when interrupted).
int run_train(TrainArgs& a);

}  // namespace vigil::cli
