// Early stopping: Keras/Lightning EarlyStopping semantics plus Prechelt's criteria, a dlib-style
// noise-robust rule and epoch/time limits, fed one epoch at a time; its state resumes exactly.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/monitor.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil {

/// Why training stopped (or None). Checks run in this order each epoch: non-finite value,
/// stopping threshold, divergence threshold (Lightning's order), the chosen rules, max_epochs,
/// time budget; the first that fires gives the reason.
enum class StopReason {
  None,
  Patience,
  NonFinite,
  StoppingThreshold,
  DivergenceThreshold,
  GL,
  PQ,
  UP,
  Robust,
  MaxEpochs,
  TimeBudget,
};

/// "patience", "non_finite", "stopping_threshold", "divergence_threshold", "gl", "pq", "up",
/// "robust", "max_epochs", "time_budget"; "" for None.
std::string_view stop_reason_name(StopReason reason);

/// How several rules combine.
enum class Combine {
  Any,  ///< stop when any rule says stop (the reason is the first rule, in list order, that fired)
  All,  ///< stop only on an epoch on which every rule says stop
};

/// Options of EarlyStopper (Keras/Lightning names). JSON keys are the field names below, as
/// `vigil replay --batch` and run.json spell them.
struct EarlyStoppingOptions {
  /// The metric to watch, looked up in each epoch's logs (default "val_loss").
  std::string monitor = "val_loss";
  /// "min", "max" or "auto" (infer from the monitor's name; see resolve_mode) (default "auto").
  std::string mode = "auto";
  /// Epochs without improvement after which training stops, for the patience rule (default 0).
  int patience = 0;
  /// Minimum change that counts as an improvement; its absolute value is used (default 0).
  double min_delta = 0.0;
  /// The wait counter only resets on improvements that also beat this value (default: none).
  std::optional<double> baseline;
  /// Epochs before this index are not monitored at all (warm-up) (default 0).
  int start_from_epoch = 0;
  /// Stop at once when the value is NaN or infinite (default true).
  bool check_finite = true;
  /// Stop once the value is strictly better than this (default: none).
  std::optional<double> stopping_threshold;
  /// Stop once the value is strictly worse than this (default: none).
  std::optional<double> divergence_threshold;
  /// A monitored metric missing from the logs throws InputError when true; when false the
  /// epoch is skipped with a warning in the decision (default true).
  bool strict = true;
  /// The stopping rules (default: patience only). JSON key "rule", a spec like "patience,gl:5".
  std::vector<StoppingRule> rules = {StoppingRule::patience()};
  /// How `rules` combine (default Any). JSON key "combine": "any" or "all".
  Combine combine = Combine::Any;
  /// Stop after the epoch with index max_epochs - 1, i.e. after max_epochs epochs (default: none).
  std::optional<long> max_epochs;
  /// Stop after the first epoch that ends with at least this much wall-clock time elapsed
  /// (default: none).
  std::optional<double> time_budget_seconds;
  /// The training metric Prechelt's PQ rule measures progress on, same direction as `monitor`
  /// (default "loss").
  std::string train_monitor = "loss";

  EarlyStoppingOptions& with_monitor(std::string v) {
    monitor = std::move(v);
    return *this;
  }
  EarlyStoppingOptions& with_mode(std::string v) {
    mode = std::move(v);
    return *this;
  }
  EarlyStoppingOptions& with_patience(int v) {
    patience = v;
    return *this;
  }
  EarlyStoppingOptions& with_min_delta(double v) {
    min_delta = v;
    return *this;
  }
  EarlyStoppingOptions& with_baseline(std::optional<double> v) {
    baseline = v;
    return *this;
  }
  EarlyStoppingOptions& with_start_from_epoch(int v) {
    start_from_epoch = v;
    return *this;
  }
  EarlyStoppingOptions& with_check_finite(bool v) {
    check_finite = v;
    return *this;
  }
  EarlyStoppingOptions& with_stopping_threshold(std::optional<double> v) {
    stopping_threshold = v;
    return *this;
  }
  EarlyStoppingOptions& with_divergence_threshold(std::optional<double> v) {
    divergence_threshold = v;
    return *this;
  }
  EarlyStoppingOptions& with_strict(bool v) {
    strict = v;
    return *this;
  }
  EarlyStoppingOptions& with_rules(std::vector<StoppingRule> v) {
    rules = std::move(v);
    return *this;
  }
  /// Parses a spec such as "patience,gl:5" (see parse_rules).
  EarlyStoppingOptions& with_rule(std::string_view spec) {
    rules = parse_rules(spec);
    return *this;
  }
  EarlyStoppingOptions& with_combine(Combine v) {
    combine = v;
    return *this;
  }
  EarlyStoppingOptions& with_max_epochs(std::optional<long> v) {
    max_epochs = v;
    return *this;
  }
  EarlyStoppingOptions& with_time_budget_seconds(std::optional<double> v) {
    time_budget_seconds = v;
    return *this;
  }
  EarlyStoppingOptions& with_train_monitor(std::string v) {
    train_monitor = std::move(v);
    return *this;
  }

  /// Throws OptionError naming the first invalid setting (negative patience or
  /// start_from_epoch, NaN delta or threshold, empty rules or monitor, max_epochs < 1, ...).
  /// The mode is checked when an EarlyStopper resolves it.
  void validate() const;

  /// All options as one JSON object (non-finite numbers as "nan"/"inf"/"-inf", unset as null).
  nlohmann::json to_json() const;
  /// Reads the keys present in `j` over `defaults`; throws OptionError for an unknown key
  /// (naming the known ones) or a value of the wrong type. "time_budget" is accepted as an
  /// alias of "time_budget_seconds", "rules" of "rule" (also as an array of specs).
  /// Does not validate.
  static EarlyStoppingOptions from_json(const nlohmann::json& j,
                                        const EarlyStoppingOptions& defaults);
  /// from_json over the default options.
  static EarlyStoppingOptions from_json(const nlohmann::json& j);
};

void to_json(nlohmann::json& j, const EarlyStoppingOptions& options);
void from_json(const nlohmann::json& j, EarlyStoppingOptions& options);

/// What EarlyStopper answers after an epoch.
struct StopDecision {
  /// Training should stop after this epoch.
  bool stop = false;
  /// Which check fired (None when not stopping).
  StopReason reason_kind = StopReason::None;
  /// A sentence a person can read, e.g. "val_loss did not improve for 3 epochs ...";
  /// empty when not stopping.
  std::string reason;
  /// The epoch's value was taken into account (false during warm-up or for a missing metric).
  bool monitored = false;
  /// Set when the monitored metric was missing and `strict` is false; the caller shows it.
  std::string warning;
};

/// Decides when to stop, one epoch at a time. Epoch indices are 0-based and must increase.
/// Copyable; state() / load_state() carry everything needed to resume exactly.
class EarlyStopper {
 public:
  /// Validates the options and resolves the mode; throws OptionError.
  explicit EarlyStopper(EarlyStoppingOptions options = {});
  EarlyStopper(const EarlyStopper& other);
  EarlyStopper& operator=(const EarlyStopper& other);
  EarlyStopper(EarlyStopper&&) noexcept;
  EarlyStopper& operator=(EarlyStopper&&) noexcept;
  ~EarlyStopper();

  /// Feeds one finished epoch: its index, its logs (the monitored metric and, for a PQ rule,
  /// the training metric) and the wall-clock seconds elapsed since training began.
  /// Throws InputError for a missing metric (strict) or an epoch index that does not increase.
  StopDecision on_epoch_end(long epoch, const Logs& logs, double elapsed_seconds = 0.0);

  /// Same as on_epoch_end with the monitored value given directly (no map lookup);
  /// `train_value` is needed only by a PQ rule.
  StopDecision update(long epoch, double value, double elapsed_seconds = 0.0,
                      std::optional<double> train_value = std::nullopt);

  const EarlyStoppingOptions& options() const;
  /// The resolved direction.
  Mode mode() const;
  /// The last epoch that improved on the best by more than min_delta (none before the first).
  std::optional<long> best_epoch() const;
  std::optional<double> best_value() const;
  /// The epoch just fed improved on the best (so restore_best_weights should copy the weights).
  bool improved_this_epoch() const;
  /// Keras' wait counter: monitored epochs since the last improvement that beat the baseline.
  long wait() const;
  /// Monitored epochs so far.
  long epochs_monitored() const;
  /// Some epoch decided to stop; stays true (later epochs may still be fed and update the best).
  bool stopped() const;
  /// The epoch after which training stopped (the first stop decision).
  std::optional<long> stop_epoch() const;
  StopReason stop_reason_kind() const;
  const std::string& stop_reason() const;

  /// Everything needed to continue exactly where this stopper is (JSON, non-finite as strings).
  nlohmann::json state() const;
  /// Restores a state() taken from a stopper with the same monitor, mode and rules; throws
  /// InputError if it does not match or is malformed.
  void load_state(const nlohmann::json& state);
  /// Forgets everything fed so far.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The outcome of replaying a metric history (what `vigil replay --json` prints).
struct ReplayResult {
  bool stopped = false;
  /// Index of the last epoch that ran (the one after which training stops).
  std::optional<long> stop_epoch;
  std::optional<long> best_epoch;
  std::optional<double> best_value;
  StopReason reason_kind = StopReason::None;
  /// Why it stopped, or a summary of why it did not.
  std::string reason;
  /// Epochs consumed (up to and including stop_epoch).
  long epochs_run = 0;
  /// Warnings from skipped epochs (strict = false).
  std::vector<std::string> warnings;

  /// {"stopped", "stop_epoch", "best_epoch", "best_value", "reason", "reason_kind"}; missing
  /// values and reason_kind None are null, non-finite numbers "nan"/"inf"/"-inf".
  nlohmann::json to_json() const;
};

/// Replays values (epoch i = values[i]) until a stop. `elapsed_seconds` (cumulative, one per
/// value) feeds the time budget and `train_values` a PQ rule; either may be empty.
ReplayResult replay(std::span<const double> values, const EarlyStoppingOptions& options,
                    std::span<const double> train_values = {},
                    std::span<const double> elapsed_seconds = {});

/// Replays per-epoch logs; `epochs` gives each row's epoch index (default: the row number) and
/// `elapsed_seconds` the cumulative time at the end of each row (default: 0).
ReplayResult replay(std::span<const Logs> rows, const EarlyStoppingOptions& options,
                    std::span<const long> epochs = {},
                    std::span<const double> elapsed_seconds = {});

}  // namespace vigil
