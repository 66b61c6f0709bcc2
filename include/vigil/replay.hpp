// Replaying a recorded metric history through EarlyStopper: "with these settings, when would
// that run have stopped?" (what `vigil replay` prints).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/early_stopping_options.hpp"
#include "vigil/monitor.hpp"

namespace vigil {

/// The outcome of replaying a metric history (what `vigil replay --json` prints).
struct ReplayResult {
  bool stopped = false;
  /// Index of the last epoch that ran (the one after which training stops).
  std::optional<long> stop_epoch;
  std::optional<long> best_epoch;
  std::optional<double> best_value;
  /// The stop's reason_kind (see StopDecision); empty when it did not stop.
  std::string reason_kind;
  /// Why it stopped, or a summary of why it did not.
  std::string reason;
  /// Epochs consumed (up to and including stop_epoch).
  long epochs_run = 0;
  /// Warnings from skipped epochs (strict = false).
  std::vector<std::string> warnings;

  /// {"stopped", "stop_epoch", "best_epoch", "best_value", "reason", "reason_kind"}; missing
  /// values and an empty reason_kind are null, non-finite numbers "nan"/"inf"/"-inf".
  [[nodiscard]] nlohmann::json to_json() const;
};

/// Replays values (epoch i = values[i]) until a stop. `elapsed_seconds` (cumulative, one per
/// value) feeds the time budget and `train_values` rules that need the training
/// metric (pq); either may be empty.
[[nodiscard]] ReplayResult replay(std::span<const double> values,
                                  const EarlyStoppingOptions& options,
                                  std::span<const double> train_values = {},
                                  std::span<const double> elapsed_seconds = {});

/// Replays per-epoch logs; `epochs` gives each row's epoch index (default: the row number) and
/// `elapsed_seconds` the cumulative time at the end of each row (default: 0).
[[nodiscard]] ReplayResult replay(std::span<const Logs> rows, const EarlyStoppingOptions& options,
                                  std::span<const long> epochs = {},
                                  std::span<const double> elapsed_seconds = {});

}  // namespace vigil
