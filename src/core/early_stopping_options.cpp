// EarlyStoppingOptions: validation and the option table that JSON in and out is derived from.
#include "vigil/early_stopping_options.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"

namespace vigil {
namespace {

using Field = OptionField<EarlyStoppingOptions>;

// A spec string, or an array of specs (joined with ','), resolved through the options' registry.
Field rule_field() {
  Field f;
  f.key = "rule";
  f.aliases = {"rules"};
  f.help = RuleRegistry::builtin().syntax("|") + ", comma-separated";
  f.get = [](const EarlyStoppingOptions& o) { return nlohmann::json(rules_to_string(o.rules)); };
  f.set = [](EarlyStoppingOptions& o, const nlohmann::json& j) {
    if (j.is_string()) {
      o.with_rule(j.get_ref<const std::string&>());
    } else if (j.is_array()) {
      std::string spec;
      for (const auto& item : j) {
        if (!spec.empty()) spec += ',';
        spec += detail::option_string("rule", item);
      }
      o.with_rule(spec);
    } else {
      throw OptionError(fmt::format(
          "option 'rule' must be a rule spec such as \"patience,gl:5\", not {}", j.dump()));
    }
  };
  f.set_text = [](EarlyStoppingOptions& o, std::string_view text) { o.with_rule(text); };
  return f;
}

Combine parse_combine(std::string_view s) {
  if (s == "any") return Combine::Any;
  if (s == "all") return Combine::All;
  throw OptionError(fmt::format("unknown combine '{}': use any or all", s));
}

Field combine_field() {
  Field f;
  f.key = "combine";
  f.help = "With several rules: stop when any or all of them fire";
  f.get = [](const EarlyStoppingOptions& o) {
    return nlohmann::json(o.combine == Combine::Any ? "any" : "all");
  };
  f.set = [](EarlyStoppingOptions& o, const nlohmann::json& j) {
    o.combine = parse_combine(detail::option_string("combine", j));
  };
  f.set_text = [](EarlyStoppingOptions& o, std::string_view text) {
    o.combine = parse_combine(text);
  };
  return f;
}

template <class T>
Field field(std::string key, T EarlyStoppingOptions::*member, std::string help) {
  return option_field(std::move(key), member, std::move(help));
}

std::vector<Field> make_fields() {
  using O = EarlyStoppingOptions;
  std::vector<Field> t;
  t.push_back(field("monitor", &O::monitor, "Metric to watch"));
  t.push_back(field("mode", &O::mode, "min, max or auto (auto: from the metric's name)"));
  t.push_back(field("patience", &O::patience, "Epochs without improvement before stopping"));
  t.push_back(field("min_delta", &O::min_delta, "Smallest change that counts as an improvement"));
  t.push_back(
      field("baseline", &O::baseline, "Improvements reset the wait only if they also beat this"));
  t.push_back(field("start_from_epoch", &O::start_from_epoch,
                    "Epochs of warm-up not monitored: ignore epochs before this index"));
  t.push_back(field("check_finite", &O::check_finite,
                    "Stop at once when the metric becomes NaN or infinite (default on)"));
  t.back().negatable = true;  // --check-finite, --no-check-finite
  t.push_back(field("stopping_threshold", &O::stopping_threshold,
                    "Stop once the metric is strictly better than this"));
  t.push_back(field("divergence_threshold", &O::divergence_threshold,
                    "Stop once the metric is strictly worse than this"));
  t.push_back(field("strict", &O::strict,
                    "Warn and skip epochs that lack the monitored metric instead of failing"));
  t.back().flag = "!--no-strict";  // only the switch that turns it off
  t.push_back(rule_field());
  t.push_back(combine_field());
  t.push_back(field("max_epochs", &O::max_epochs, "Stop after this many epochs"));
  t.push_back(field("time_budget_seconds", &O::time_budget_seconds,
                    "Stop after the epoch that ends past this many seconds of training"));
  t.back().flag = "--time-budget,--time-budget-seconds";
  t.back().aliases = {"time_budget"};
  t.push_back(
      field("train_monitor", &O::train_monitor, "Training metric of rules that need one (pq)"));
  t.push_back(field("percentile", &O::percentile,
                    "The percentile rule's P (0-100): stop when worse than that percentile of the "
                    "reference runs"));
  t.push_back(field("n_startup_trials", &O::n_startup_trials,
                    "median/percentile: never stop with fewer reference runs than this"));
  t.push_back(field("n_warmup_steps", &O::n_warmup_steps,
                    "median/percentile: no stop before this epoch (validation) index"));
  t.push_back(field("interval_steps", &O::interval_steps,
                    "median/percentile: judge every this many epochs (validations) after warm-up"));
  t.push_back(field("n_min_trials", &O::n_min_trials,
                    "median/percentile: no decision with fewer reference values at a step"));
  return t;
}

}  // namespace

std::span<const OptionField<EarlyStoppingOptions>> early_stopping_option_fields() {
  static const std::vector<Field> fields = make_fields();
  return fields;
}

void EarlyStoppingOptions::validate() const {
  if (monitor.empty()) throw OptionError("monitor is empty: name the metric to watch");
  if (patience < 0) throw OptionError(fmt::format("patience must be 0 or more, not {}", patience));
  if (start_from_epoch < 0)
    throw OptionError(fmt::format("start_from_epoch must be 0 or more, not {}", start_from_epoch));
  if (std::isnan(min_delta)) throw OptionError("min_delta is nan: give a number");
  if (baseline && std::isnan(*baseline)) throw OptionError("baseline is nan: give a number");
  if (stopping_threshold && std::isnan(*stopping_threshold))
    throw OptionError("stopping_threshold is nan: give a number");
  if (divergence_threshold && std::isnan(*divergence_threshold))
    throw OptionError("divergence_threshold is nan: give a number");
  if (rules.empty()) throw OptionError("no stopping rule given: use at least 'patience'");
  for (const auto& r : rules)
    if (!r) throw OptionError("the rule list holds a null rule");
  if (max_epochs && *max_epochs < 1)
    throw OptionError(fmt::format("max_epochs must be at least 1, not {}", *max_epochs));
  if (time_budget_seconds && !(*time_budget_seconds > 0))
    throw OptionError(fmt::format("time budget must be a positive number of seconds, not {}",
                                  detail::format_number(*time_budget_seconds)));
  if (percentile && !(*percentile >= 0 && *percentile <= 100))
    throw OptionError(fmt::format("percentile must be from 0 to 100, not {}",
                                  detail::format_number(*percentile)));
  if (n_startup_trials < 0)
    throw OptionError(fmt::format("n_startup_trials must be 0 or more, not {}", n_startup_trials));
  if (n_warmup_steps < 0)
    throw OptionError(fmt::format("n_warmup_steps must be 0 or more, not {}", n_warmup_steps));
  if (interval_steps < 1)
    throw OptionError(fmt::format("interval_steps must be at least 1, not {}", interval_steps));
  if (n_min_trials < 1)
    throw OptionError(fmt::format("n_min_trials must be at least 1, not {}", n_min_trials));
  for (const auto& r : rules) r->validate(*this);
  for (const auto& r : rules)
    if (r->needs_train_metric() && train_monitor.empty())
      throw OptionError(
          fmt::format("rule {} needs train_monitor (the training metric, e.g. loss)", r->name()));
}

nlohmann::json EarlyStoppingOptions::to_json() const {
  return options_to_json(*this, early_stopping_option_fields());
}

EarlyStoppingOptions EarlyStoppingOptions::from_json(const nlohmann::json& j,
                                                     const EarlyStoppingOptions& defaults) {
  return options_from_json(j, defaults, early_stopping_option_fields(), "early-stopping options");
}

EarlyStoppingOptions EarlyStoppingOptions::from_json(const nlohmann::json& j) {
  return from_json(j, EarlyStoppingOptions{});
}

void to_json(nlohmann::json& j, const EarlyStoppingOptions& options) {
  j = options.to_json();
}
void from_json(const nlohmann::json& j, EarlyStoppingOptions& options) {
  options = EarlyStoppingOptions::from_json(j);
}

}  // namespace vigil
