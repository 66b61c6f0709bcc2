// The interface of a stopping rule: it watches the monitored epochs one by one and says when to
// stop. The built-in rules (patience, Prechelt's GL/PQ/UP, dlib-style robust, Optuna's
// median/percentile against earlier runs) implement it, and so
// can a user's own rule (register it in a RuleRegistry to use it from a spec string).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vigil/monitor.hpp"

namespace vigil {

struct EarlyStoppingOptions;

/// What a rule sees of one monitored epoch. The stopper has already updated its best, its wait
/// counter and E_opt with this epoch; the value is finite unless check_finite is off.
struct RuleContext {
  /// The epoch index (0-based).
  long epoch = 0;
  /// The monitored value as logged.
  double value = 0.0;
  /// `value` turned so that lower is better (value for Min, -value for Max).
  double oriented = 0.0;
  /// The training metric (options.train_monitor) as logged, when it was fed.
  std::optional<double> train_value;
  /// The resolved direction.
  Mode mode = Mode::Min;
  /// This epoch improved on the best by more than min_delta.
  bool improved = false;
  /// The best value so far as logged (+inf for Min, -inf for Max before the first improvement).
  double best = 0.0;
  /// The epoch of `best` (none before the first improvement).
  std::optional<long> best_epoch;
  /// Keras' wait counter: monitored epochs since the last improvement that beat the baseline.
  long wait = 0;
  /// Prechelt's E_opt: the lowest oriented value so far, whatever min_delta (+inf before any).
  double e_opt = 0.0;
  /// The stopper's options (monitor name, patience, ...).
  const EarlyStoppingOptions& options;
  /// What one fed index is, for messages: "epoch", or "validation" when a loop validates every n
  /// optimizer steps.
  std::string_view period = "epoch";

  /// `v` turned so that lower is better, as `oriented` is.
  [[nodiscard]] double orient(double v) const { return mode == Mode::Min ? v : -v; }
};

/// One stopping rule with its parameters and its memory. The stopper feeds it every monitored
/// epoch, even one on which another check stops, so its memory never depends on which check
/// fired. Copies are made with clone(): EarlyStoppingOptions holds shared, never-modified rules
/// and each EarlyStopper starts from clones of them.
class StoppingCriterion {
 public:
  virtual ~StoppingCriterion() = default;

  /// The rule's name as in a spec and in a stop's reason_kind, e.g. "gl".
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// The rule as a spec that parses back to it, e.g. "gl:5", "pq:0.5:5".
  [[nodiscard]] virtual std::string spec() const = 0;
  /// The rule reads context.train_value, so the training metric must be fed every epoch.
  [[nodiscard]] virtual bool needs_train_metric() const { return false; }

  /// Throws OptionError when `options` lack what the rule reads from them (called by
  /// EarlyStoppingOptions::validate; default: nothing to check).
  virtual void validate(const EarlyStoppingOptions& options) const { (void)options; }

  /// Takes one monitored epoch into the rule's memory; true when the rule says stop.
  [[nodiscard]] virtual bool observe(const RuleContext& context) = 0;
  /// Why the rule says stop, as a sentence about the epoch just observed, e.g. "generalization
  /// loss GL = 6.25% exceeds 5 at epoch 3 (val_loss = 0.85)". The stopper appends the best.
  [[nodiscard]] virtual std::string explain(const RuleContext& context) const = 0;

  /// The rule's memory as a JSON object with its own keys (default: none, a stateless rule).
  [[nodiscard]] virtual nlohmann::json state() const { return nlohmann::json::object(); }
  /// Restores a state(); reads only the rule's own keys, ignoring others. Throws InputError or
  /// nlohmann::json::exception for a malformed state (default: nothing to read).
  virtual void load_state(const nlohmann::json& state) { (void)state; }

  /// A copy of this rule with its memory.
  [[nodiscard]] virtual std::unique_ptr<StoppingCriterion> clone() const = 0;

 protected:
  StoppingCriterion() = default;
  StoppingCriterion(const StoppingCriterion&) = default;
  StoppingCriterion& operator=(const StoppingCriterion&) = default;
};

}  // namespace vigil
