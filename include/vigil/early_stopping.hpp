// Early stopping: Keras/Lightning EarlyStopping semantics plus Prechelt's criteria, a dlib-style
// noise-robust rule (or your own rules) and epoch/time limits, fed one epoch at a time; its state
// resumes exactly. Includes the options, the rule interface and registry, and replay.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/early_stopping_options.hpp"
#include "vigil/error.hpp"
#include "vigil/monitor.hpp"
#include "vigil/replay.hpp"
#include "vigil/rule_registry.hpp"
#include "vigil/stopping_rule.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil {

/// The reason_kind of the stopper's own checks; a rule's stop has the rule's name ("patience",
/// "gl", ...). Checks run in this order each epoch: non-finite value, stopping threshold,
/// divergence threshold (Lightning's order), the rules, max_epochs, time budget; the first that
/// fires gives the reason.
namespace stop_reason {
inline constexpr std::string_view non_finite = "non_finite";
inline constexpr std::string_view stopping_threshold = "stopping_threshold";
inline constexpr std::string_view divergence_threshold = "divergence_threshold";
inline constexpr std::string_view max_epochs = "max_epochs";
inline constexpr std::string_view time_budget = "time_budget";
}  // namespace stop_reason

/// What EarlyStopper answers after an epoch.
struct StopDecision {
  /// Training should stop after this epoch.
  bool stop = false;
  /// Which check fired: a stop_reason name or the rule's name; empty when not stopping.
  std::string reason_kind;
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
  [[nodiscard]] StopDecision on_epoch_end(long epoch, const Logs& logs,
                                          double elapsed_seconds = 0.0);

  /// Same as on_epoch_end with the monitored value given directly (no map lookup);
  /// `train_value` is needed only by a PQ rule.
  [[nodiscard]] StopDecision update(long epoch, double value, double elapsed_seconds = 0.0,
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
  /// The first stop's reason_kind (empty before it).
  const std::string& stop_reason_kind() const;
  const std::string& stop_reason() const;

  /// Everything needed to continue exactly where this stopper is (JSON, non-finite as strings).
  nlohmann::json state() const;
  /// Restores a state() taken from a stopper with the same monitor, mode and rules (also one
  /// of version 1, whose rule states held every rule's keys); throws InputError if it does not
  /// match or is malformed.
  void load_state(const nlohmann::json& state);
  /// What one fed index is called in messages: "epoch" (default), or "validation" for a loop
  /// that validates every n optimizer steps (its indices count validations).
  void set_period_name(std::string name);
  /// Forgets everything fed so far.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil
