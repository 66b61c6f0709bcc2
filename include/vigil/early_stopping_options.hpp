// The options of EarlyStopper (Keras/Lightning names), each field described once in a table
// that gives its JSON key (run.json, `vigil replay --batch`), its help line and its flag.
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
#include "vigil/option_table.hpp"
#include "vigil/rule_registry.hpp"
#include "vigil/setter.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil {

/// How several rules combine.
enum class Combine {
  Any,  ///< stop when any rule says stop (the reason is the first rule, in list order, that fired)
  All,  ///< stop only on an epoch on which every rule says stop
};

/// Options of EarlyStopper. JSON keys are the field names below.
struct EarlyStoppingOptions {
  /// The metric to watch, looked up in each epoch's logs (default "val_loss").
  std::string monitor = "val_loss";
  /// Min, Max or Auto (infer from the monitor's name; see resolve_mode) (default Auto).
  ModeSetting mode = ModeSetting::Auto;
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
  /// The stopping rules, shared and never modified: each EarlyStopper works on clones
  /// (default: patience only). JSON key "rule", a spec like "patience,gl:5".
  RuleList rules = {rules::patience()};
  /// How `rules` combine (default Any). JSON key "combine": "any" or "all".
  Combine combine = Combine::Any;
  /// Stop after the epoch with index max_epochs - 1, i.e. after max_epochs epochs (default: none).
  std::optional<long> max_epochs;
  /// Stop after the first epoch that ends with at least this much wall-clock time elapsed
  /// (default: none).
  std::optional<double> time_budget_seconds;
  /// The training metric of rules that need one (Prechelt's PQ), same direction as `monitor`
  /// (default "loss").
  std::string train_monitor = "loss";
  /// The percentile rule's P, from 0 to 100 (Optuna's PercentilePruner); the median rule is 50
  /// (default: none).
  std::optional<double> percentile;
  /// median/percentile: with fewer reference runs than this, never stop (default 5).
  int n_startup_trials = 5;
  /// median/percentile: no stop before this step (0-based epoch index) (default 0).
  int n_warmup_steps = 0;
  /// median/percentile: judge only at steps n_warmup_steps + k * interval_steps (default 1).
  int interval_steps = 1;
  /// median/percentile: with fewer reference values at a step than this, no decision there
  /// (default 1).
  int n_min_trials = 1;
  /// median/percentile: the monitored values of completed earlier runs, one list per run, index =
  /// step; NaN allowed, a run shorter than a step has no value there. Not written to JSON: a run
  /// records where its reference came from (default: none).
  std::vector<std::vector<double>> reference;
  /// The registry that rule specs (with_rule, the JSON key "rule") are resolved through; not
  /// written to JSON (default: null, the built-in rules).
  std::shared_ptr<const RuleRegistry> registry;

  VIGIL_SETTER(monitor)
  VIGIL_SETTER(mode)
  /// "min", "max" or "auto"; throws OptionError for anything else.
  EarlyStoppingOptions& with_mode(std::string_view v) {
    mode = parse_mode_setting(v);
    return *this;
  }
  VIGIL_SETTER(patience)
  VIGIL_SETTER(min_delta)
  VIGIL_SETTER(baseline)
  VIGIL_SETTER(start_from_epoch)
  VIGIL_SETTER(check_finite)
  VIGIL_SETTER(stopping_threshold)
  VIGIL_SETTER(divergence_threshold)
  VIGIL_SETTER(strict)
  VIGIL_SETTER(rules)
  /// Parses a spec such as "patience,gl:5" through `registry` (see parse_rules).
  EarlyStoppingOptions& with_rule(std::string_view spec) {
    rules = parse_rules(spec, rule_registry());
    return *this;
  }
  VIGIL_SETTER(combine)
  VIGIL_SETTER(max_epochs)
  VIGIL_SETTER(time_budget_seconds)
  VIGIL_SETTER(train_monitor)
  VIGIL_SETTER(percentile)
  VIGIL_SETTER(n_startup_trials)
  VIGIL_SETTER(n_warmup_steps)
  VIGIL_SETTER(interval_steps)
  VIGIL_SETTER(n_min_trials)
  VIGIL_SETTER(reference)
  /// Resolve later rule specs through `v` (e.g. RuleRegistry::builtin() plus your rules).
  EarlyStoppingOptions& with_registry(RuleRegistry v) {
    registry = std::make_shared<const RuleRegistry>(std::move(v));
    return *this;
  }

  /// `registry`, or the built-in rules when it is null.
  [[nodiscard]] const RuleRegistry& rule_registry() const {
    return registry ? *registry : RuleRegistry::builtin();
  }

  /// Throws OptionError naming the first invalid setting (negative patience or
  /// start_from_epoch, NaN delta or threshold, empty rules or monitor, max_epochs < 1, ...).
  /// The mode is checked when an EarlyStopper resolves it.
  void validate() const;

  /// All options as one JSON object (non-finite numbers as "nan"/"inf"/"-inf", unset as null).
  [[nodiscard]] nlohmann::json to_json() const;
  /// Reads the keys present in `j` over `defaults` (rule specs through defaults' registry);
  /// throws OptionError for an unknown key (naming the known ones) or a value of the wrong
  /// type. "time_budget" is accepted as an alias of "time_budget_seconds", "rules" of "rule"
  /// (also as an array of specs). Does not validate.
  [[nodiscard]] static EarlyStoppingOptions from_json(const nlohmann::json& j,
                                                      const EarlyStoppingOptions& defaults);
  /// from_json over the default options.
  [[nodiscard]] static EarlyStoppingOptions from_json(const nlohmann::json& j);
};

/// One entry per field of EarlyStoppingOptions, in the order of the struct: its JSON key,
/// aliases, one-line help and command-line flag. to_json, from_json and the unknown-key error
/// are derived from it.
[[nodiscard]] std::span<const OptionField<EarlyStoppingOptions>> early_stopping_option_fields();

void to_json(nlohmann::json& j, const EarlyStoppingOptions& options);
void from_json(const nlohmann::json& j, EarlyStoppingOptions& options);

}  // namespace vigil
