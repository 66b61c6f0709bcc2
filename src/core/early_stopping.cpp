// EarlyStopper: Keras' wait/best bookkeeping, Lightning's finite/threshold checks, then the
// chosen rules (each a StoppingCriterion) and the epoch/time limits; its state as JSON.
#include "vigil/early_stopping.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"

namespace vigil {
namespace {

using detail::human_number;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Version 2 writes each rule's own keys only; version 1 wrote every rule's keys in each.
constexpr int kStateVersion = 2;

nlohmann::json opt_json(const std::optional<long>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

struct EarlyStopper::Impl {
  EarlyStoppingOptions options;
  Mode mode = Mode::Min;
  // The first rule that needs the training metric, for messages (null if none does).
  const StoppingCriterion* train_rule = nullptr;

  long wait = 0;
  double best = kInf;
  std::optional<long> best_epoch;
  bool improved = false;
  long monitored = 0;
  std::optional<long> last_epoch;
  // Prechelt's E_opt: the best raw value so far, oriented so that lower is better.
  double opt = kInf;
  // Working copies of options.rules, with their memories.
  std::vector<std::unique_ptr<StoppingCriterion>> rules;

  bool stopped = false;
  std::optional<long> stop_epoch;
  std::string reason_kind;
  std::string reason;
  std::string period = "epoch";  // what a fed index is, in messages

  explicit Impl(EarlyStoppingOptions o) : options(std::move(o)) {
    options.validate();
    mode = resolve_mode(options.monitor, options.mode);
    for (const auto& r : options.rules)
      if (r->needs_train_metric() && !train_rule) train_rule = r.get();
    clear();
  }

  Impl(const Impl& other)
      : options(other.options),
        mode(other.mode),
        train_rule(other.train_rule),
        wait(other.wait),
        best(other.best),
        best_epoch(other.best_epoch),
        improved(other.improved),
        monitored(other.monitored),
        last_epoch(other.last_epoch),
        opt(other.opt),
        stopped(other.stopped),
        stop_epoch(other.stop_epoch),
        reason_kind(other.reason_kind),
        reason(other.reason),
        period(other.period) {
    for (const auto& r : other.rules) rules.push_back(r->clone());
  }
  Impl(Impl&&) noexcept = default;
  Impl& operator=(Impl&&) noexcept = default;

  void clear() {
    wait = 0;
    best = mode == Mode::Min ? kInf : -kInf;
    best_epoch.reset();
    improved = false;
    monitored = 0;
    last_epoch.reset();
    opt = kInf;
    rules.clear();
    for (const auto& r : options.rules) rules.push_back(r->clone());
    stopped = false;
    stop_epoch.reset();
    reason_kind.clear();
    reason.clear();
  }

  double orient(double v) const { return mode == Mode::Min ? v : -v; }

  std::string best_part() const {
    return best_epoch ? fmt::format("; best {} at {} {}", human_number(best), period, *best_epoch)
                      : "";
  }

  RuleContext context(long epoch, double value, const std::optional<double>& train) const {
    return RuleContext{.epoch = epoch,
                       .value = value,
                       .oriented = orient(value),
                       .train_value = train,
                       .mode = mode,
                       .improved = improved,
                       .best = best,
                       .best_epoch = best_epoch,
                       .wait = wait,
                       .e_opt = opt,
                       .options = options,
                       .period = period};
  }

  // Keras: the counter grows every monitored epoch and resets on an improvement that also
  // beats the baseline; the best moves on any improvement.
  void track_best(long epoch, double value) {
    ++wait;
    if (is_improvement(mode, value, best, options.min_delta)) {
      best = value;
      best_epoch = epoch;
      improved = true;
      if (!options.baseline || is_improvement(mode, value, *options.baseline, options.min_delta))
        wait = 0;
    }
    const double o = orient(value);
    if (o < opt) opt = o;
  }

  // Lightning's thresholds, both strict; empty when neither fires.
  std::string threshold_reason(long epoch, double value, std::string& kind) const {
    const bool min = mode == Mode::Min;
    const std::string& m = options.monitor;
    if (options.stopping_threshold &&
        (min ? value < *options.stopping_threshold : value > *options.stopping_threshold)) {
      kind = stop_reason::stopping_threshold;
      return fmt::format("{} = {} at {} {} is {} the stopping threshold {}", m, human_number(value),
                         period, epoch, min ? "below" : "above",
                         human_number(*options.stopping_threshold));
    }
    if (options.divergence_threshold &&
        (min ? value > *options.divergence_threshold : value < *options.divergence_threshold)) {
      kind = stop_reason::divergence_threshold;
      return fmt::format("{} = {} at {} {} is {} the divergence threshold {}", m,
                         human_number(value), period, epoch, min ? "above" : "below",
                         human_number(*options.divergence_threshold));
    }
    return {};
  }

  // Every rule sees every monitored epoch, even one a threshold stops on, so their memories
  // stay identical whichever check fires. Sets `d` when the rules (combined) say stop.
  void run_rules(const RuleContext& c, bool threshold_fired, StopDecision& d) {
    std::size_t first_fired = rules.size();
    std::size_t fired_count = 0;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      if (rules[i]->observe(c)) {
        ++fired_count;
        if (first_fired == rules.size()) first_fired = i;
      }
    }
    const bool fire =
        options.combine == Combine::Any ? fired_count > 0 : fired_count == rules.size();
    if (threshold_fired || !fire) return;
    d.stop = true;
    d.reason_kind = rules[first_fired]->name();
    if (options.combine == Combine::Any || rules.size() == 1) {
      d.reason = rules[first_fired]->explain(c) + best_part();
      return;
    }
    for (const auto& r : rules) {
      if (!d.reason.empty()) d.reason += "; and ";
      d.reason += r->explain(c) + best_part();
    }
  }

  void check_epoch(long epoch) {
    if (epoch < 0) throw InputError(fmt::format("epoch index {} is negative", epoch));
    if (last_epoch && epoch <= *last_epoch)
      throw InputError(fmt::format(
          "epoch {} fed after epoch {}: epochs must increase (resuming from the wrong state?)",
          epoch, *last_epoch));
  }

  // The limits apply to every epoch, monitored or not.
  void check_limits(long epoch, double elapsed, StopDecision& d) const {
    if (!d.stop && options.max_epochs && epoch + 1 >= *options.max_epochs) {
      d.stop = true;
      d.reason_kind = stop_reason::max_epochs;
      d.reason = fmt::format("reached max_epochs = {} (epoch {} was the last)", *options.max_epochs,
                             epoch);
    }
    if (!d.stop && options.time_budget_seconds && elapsed >= *options.time_budget_seconds) {
      d.stop = true;
      d.reason_kind = stop_reason::time_budget;
      d.reason = fmt::format("time budget of {} s used up ({:.1f} s elapsed after {} {})",
                             human_number(*options.time_budget_seconds), elapsed, period, epoch);
    }
  }

  StopDecision update(long epoch, double value, double elapsed, const std::optional<double>& train,
                      bool monitored_value_present, std::string warning) {
    check_epoch(epoch);
    last_epoch = epoch;
    improved = false;
    StopDecision d;
    d.warning = std::move(warning);
    if (monitored_value_present && epoch >= options.start_from_epoch) {
      d.monitored = true;
      ++monitored;
    }
    if (d.monitored && options.check_finite && !std::isfinite(value)) {
      // Lightning checks finiteness before anything else: a NaN or infinite value stops at
      // once and never becomes the best (not even -inf when minimising).
      d.stop = true;
      d.reason_kind = stop_reason::non_finite;
      d.reason = fmt::format("{} is {} at {} {}; stopping because check_finite is on{}",
                             options.monitor, human_number(value), period, epoch, best_part());
    } else if (d.monitored) {
      track_best(epoch, value);
      d.reason = threshold_reason(epoch, value, d.reason_kind);
      d.stop = !d.reason.empty();
      run_rules(context(epoch, value, train), d.stop, d);
    }
    check_limits(epoch, elapsed, d);
    if (d.stop && !stopped) {
      stopped = true;
      stop_epoch = epoch;
      reason_kind = d.reason_kind;
      reason = d.reason;
    }
    return d;
  }

  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& state);
};

// ---- state ----

nlohmann::json EarlyStopper::Impl::to_json() const {
  nlohmann::json rule_states = nlohmann::json::array();
  for (const auto& r : rules) rule_states.push_back(r->state());
  return nlohmann::json{
      {"version", kStateVersion},
      {"monitor", options.monitor},
      {"mode", std::string(mode_name(mode))},
      {"rule", rules_to_string(options.rules)},
      {"wait", wait},
      {"best", number_to_json(best)},
      {"best_epoch", opt_json(best_epoch)},
      {"improved", improved},
      {"epochs_monitored", monitored},
      {"last_epoch", opt_json(last_epoch)},
      {"opt", number_to_json(opt)},
      {"rules", std::move(rule_states)},
      {"stopped", stopped},
      {"stop_epoch", opt_json(stop_epoch)},
      {"reason_kind", reason_kind.empty() ? nlohmann::json(nullptr) : nlohmann::json(reason_kind)},
      {"reason", reason},
  };
}

namespace {

// A reason_kind this stopper can give: one of its own checks or one of its rules.
bool known_reason(std::string_view kind, const EarlyStoppingOptions& options) {
  for (auto k :
       {stop_reason::non_finite, stop_reason::stopping_threshold, stop_reason::divergence_threshold,
        stop_reason::max_epochs, stop_reason::time_budget})
    if (kind == k) return true;
  return std::any_of(options.rules.begin(), options.rules.end(),
                     [&](const auto& r) { return r->name() == kind; });
}

std::optional<long> opt_long(const nlohmann::json& state, const char* key) {
  const auto& v = state.at(key);
  if (v.is_null()) return std::nullopt;
  return v.get<long>();
}

}  // namespace

// Reads into *this (a scratch copy: load_state only keeps it if everything read).
void EarlyStopper::Impl::from_json(const nlohmann::json& state) {
  if (!state.is_object()) throw InputError("early-stopping state is not a JSON object");
  const int version = state.at("version").get<int>();
  if (version != 1 && version != kStateVersion)
    throw InputError(fmt::format("early-stopping state has version {}; this vigil reads 1 and {}",
                                 state.at("version").dump(), kStateVersion));
  const auto monitor_in = state.at("monitor").get<std::string>();
  const auto mode_in = state.at("mode").get<std::string>();
  const auto rule_in = state.at("rule").get<std::string>();
  const auto rule_here = rules_to_string(options.rules);
  if (monitor_in != options.monitor || mode_in != mode_name(mode) || rule_in != rule_here)
    throw InputError(fmt::format(
        "early-stopping state is for monitor '{}' mode {} rule {}, but this run uses '{}' {} "
        "{}: resume with the options the run started with",
        monitor_in, mode_in, rule_in, options.monitor, mode_name(mode), rule_here));
  wait = state.at("wait").get<long>();
  best = number_from_json(state.at("best"));
  best_epoch = opt_long(state, "best_epoch");
  improved = state.at("improved").get<bool>();
  monitored = state.at("epochs_monitored").get<long>();
  last_epoch = opt_long(state, "last_epoch");
  opt = number_from_json(state.at("opt"));
  const auto& rule_states = state.at("rules");
  if (!rule_states.is_array() || rule_states.size() != rules.size())
    throw InputError("early-stopping state has a different number of rule states");
  for (std::size_t i = 0; i < rules.size(); ++i) rules[i]->load_state(rule_states[i]);
  stopped = state.at("stopped").get<bool>();
  stop_epoch = opt_long(state, "stop_epoch");
  const auto& kind = state.at("reason_kind");
  reason_kind = kind.is_null() ? std::string() : kind.get<std::string>();
  if (!reason_kind.empty() && !known_reason(reason_kind, options))
    throw InputError(
        fmt::format("early-stopping state has an unknown reason_kind '{}'", reason_kind));
  reason = state.at("reason").get<std::string>();
}

// ---- the public face ----

EarlyStopper::EarlyStopper(EarlyStoppingOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
EarlyStopper::EarlyStopper(const EarlyStopper& other)
    : impl_(std::make_unique<Impl>(*other.impl_)) {}
EarlyStopper& EarlyStopper::operator=(const EarlyStopper& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
EarlyStopper::EarlyStopper(EarlyStopper&&) noexcept = default;
EarlyStopper& EarlyStopper::operator=(EarlyStopper&&) noexcept = default;
EarlyStopper::~EarlyStopper() = default;

StopDecision EarlyStopper::on_epoch_end(long epoch, const Logs& logs, double elapsed_seconds) {
  const auto& o = impl_->options;
  const double* value = find_metric(logs, o.monitor, o.strict);
  std::string warning;
  if (!value)
    warning = fmt::format("{0} {1}: metric '{2}' is missing from the logs; {0} not monitored",
                          impl_->period, epoch, o.monitor);
  std::optional<double> train;
  if (impl_->train_rule && value) {
    if (const double* t = find_metric(logs, o.train_monitor, o.strict)) {
      train = *t;
    } else {
      warning =
          fmt::format("{} {}: training metric '{}' (for rule {}) is missing from the logs; skipped",
                      impl_->period, epoch, o.train_monitor, impl_->train_rule->name());
    }
  }
  return impl_->update(epoch, value ? *value : 0.0, elapsed_seconds, train, value != nullptr,
                       std::move(warning));
}

StopDecision EarlyStopper::update(long epoch, double value, double elapsed_seconds,
                                  std::optional<double> train_value) {
  const auto& o = impl_->options;
  if (impl_->train_rule && !train_value && o.strict && epoch >= o.start_from_epoch)
    throw InputError(
        fmt::format("rule {} needs the training metric '{}' every epoch; replay a log that has it",
                    impl_->train_rule->name(), o.train_monitor));
  return impl_->update(epoch, value, elapsed_seconds, train_value, true, {});
}

const EarlyStoppingOptions& EarlyStopper::options() const {
  return impl_->options;
}
Mode EarlyStopper::mode() const {
  return impl_->mode;
}
std::optional<long> EarlyStopper::best_epoch() const {
  return impl_->best_epoch;
}
std::optional<double> EarlyStopper::best_value() const {
  return impl_->best_epoch ? std::optional<double>(impl_->best) : std::nullopt;
}
bool EarlyStopper::improved_this_epoch() const {
  return impl_->improved;
}
long EarlyStopper::wait() const {
  return impl_->wait;
}
long EarlyStopper::epochs_monitored() const {
  return impl_->monitored;
}
bool EarlyStopper::stopped() const {
  return impl_->stopped;
}
std::optional<long> EarlyStopper::stop_epoch() const {
  return impl_->stop_epoch;
}
const std::string& EarlyStopper::stop_reason_kind() const {
  return impl_->reason_kind;
}
const std::string& EarlyStopper::stop_reason() const {
  return impl_->reason;
}
void EarlyStopper::reset() {
  impl_->clear();
}

void EarlyStopper::set_period_name(std::string name) {
  impl_->period = std::move(name);
}

nlohmann::json EarlyStopper::state() const {
  return impl_->to_json();
}

void EarlyStopper::load_state(const nlohmann::json& state) {
  Impl next = *impl_;
  try {
    next.from_json(state);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("early-stopping state is malformed: {}", e.what()));
  }
  *impl_ = std::move(next);
}

}  // namespace vigil
