// `vigil replay --evaluate DIR`: the settings of the rule evaluation and its entry point.
#pragma once

#include <string>

#include "vigil/early_stopping_options.hpp"

namespace vigil::cli {

/// What `vigil replay --evaluate` was given besides the early-stopping flags.
struct EvaluateArgs {
  /// The folder searched for metrics.csv files.
  std::string dir;
  /// The test metric regret is measured on (default "test_loss").
  std::string test_monitor = "test_loss";
  /// min, max or auto (from the test metric's name) (default "auto").
  std::string test_mode = "auto";
  /// JSON lines of options to score instead of the default rule set (default: none).
  std::string rules_file;
  /// Where to draw the trade-off as SVG (default: nowhere).
  std::string plot;
  /// Print one JSON object instead of a table.
  bool json = false;
};

/// Scores the rules (default set, or `args.rules_file`) over `base` and prints the result.
int run_evaluate(const EvaluateArgs& args, const EarlyStoppingOptions& base);

}  // namespace vigil::cli
