// EarlyStopper: Keras' wait/best bookkeeping, Lightning's finite/threshold checks, then the
// chosen rules (patience, Prechelt GL/PQ/UP, dlib-style robust) and the epoch/time limits.
#include "vigil/early_stopping.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace vigil {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Shortest text that reads back to the same double; non-finite as nan/inf/-inf.
std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

std::string plural(long n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// Per-rule memory that must survive a resume.
struct RuleState {
  // PQ: the current training strip (oriented training values).
  long strip_count = 0;
  double strip_sum = 0;
  double strip_min = kInf;
  // UP: the monitored value at the previous strip end, and strips in a row that got worse.
  long up_count = 0;
  std::optional<double> last_strip_value;
  long ups = 0;
  // Robust: the most recent `steps` finite oriented values.
  std::vector<double> window;
  // The figure the last evaluation computed (GL, PQ, count), for the reason sentence.
  double figure = 0;
  double figure2 = 0;
};

nlohmann::json opt_json(const std::optional<long>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::None:
      return "";
    case StopReason::Patience:
      return "patience";
    case StopReason::NonFinite:
      return "non_finite";
    case StopReason::StoppingThreshold:
      return "stopping_threshold";
    case StopReason::DivergenceThreshold:
      return "divergence_threshold";
    case StopReason::GL:
      return "gl";
    case StopReason::PQ:
      return "pq";
    case StopReason::UP:
      return "up";
    case StopReason::Robust:
      return "robust";
    case StopReason::MaxEpochs:
      return "max_epochs";
    case StopReason::TimeBudget:
      return "time_budget";
  }
  return "";
}

namespace {

StopReason reason_from_name(std::string_view name) {
  for (auto r : {StopReason::Patience, StopReason::NonFinite, StopReason::StoppingThreshold,
                 StopReason::DivergenceThreshold, StopReason::GL, StopReason::PQ, StopReason::UP,
                 StopReason::Robust, StopReason::MaxEpochs, StopReason::TimeBudget})
    if (stop_reason_name(r) == name) return r;
  throw InputError(fmt::format("early-stopping state has an unknown reason_kind '{}'", name));
}

StopReason rule_reason(RuleKind kind) {
  switch (kind) {
    case RuleKind::Patience:
      return StopReason::Patience;
    case RuleKind::GL:
      return StopReason::GL;
    case RuleKind::PQ:
      return StopReason::PQ;
    case RuleKind::UP:
      return StopReason::UP;
    case RuleKind::Robust:
      return StopReason::Robust;
  }
  return StopReason::Patience;
}

}  // namespace

// ---- options ----

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
  if (max_epochs && *max_epochs < 1)
    throw OptionError(fmt::format("max_epochs must be at least 1, not {}", *max_epochs));
  if (time_budget_seconds && !(*time_budget_seconds > 0))
    throw OptionError(fmt::format("time budget must be a positive number of seconds, not {}",
                                  num(*time_budget_seconds)));
  for (const auto& r : rules)
    if (r.kind == RuleKind::PQ && train_monitor.empty())
      throw OptionError("rule pq needs train_monitor (the training metric, e.g. loss)");
}

nlohmann::json EarlyStoppingOptions::to_json() const {
  auto opt = [](const std::optional<double>& v) {
    return v ? number_to_json(*v) : nlohmann::json(nullptr);
  };
  return nlohmann::json{
      {"monitor", monitor},
      {"mode", mode},
      {"patience", patience},
      {"min_delta", number_to_json(min_delta)},
      {"baseline", opt(baseline)},
      {"start_from_epoch", start_from_epoch},
      {"check_finite", check_finite},
      {"stopping_threshold", opt(stopping_threshold)},
      {"divergence_threshold", opt(divergence_threshold)},
      {"strict", strict},
      {"rule", rules_to_string(rules)},
      {"combine", combine == Combine::Any ? "any" : "all"},
      {"max_epochs", opt_json(max_epochs)},
      {"time_budget_seconds", opt(time_budget_seconds)},
      {"train_monitor", train_monitor},
  };
}

namespace {

[[noreturn]] void bad_type(std::string_view key, std::string_view want, const nlohmann::json& v) {
  throw OptionError(fmt::format("option '{}' must be {}, not {}", key, want, v.dump()));
}

double get_number(std::string_view key, const nlohmann::json& v) {
  try {
    return number_from_json(v);
  } catch (const InputError&) {
    bad_type(key, "a number", v);
  }
}

std::optional<double> get_optional_number(std::string_view key, const nlohmann::json& v) {
  if (v.is_null()) return std::nullopt;
  return get_number(key, v);
}

long get_integer(std::string_view key, const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<long>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return static_cast<long>(d);
  }
  bad_type(key, "a whole number", v);
}

int get_int(std::string_view key, const nlohmann::json& v) {
  const long l = get_integer(key, v);
  if (l < std::numeric_limits<int>::min() || l > std::numeric_limits<int>::max())
    bad_type(key, "a whole number in range", v);
  return static_cast<int>(l);
}

bool get_bool(std::string_view key, const nlohmann::json& v) {
  if (!v.is_boolean()) bad_type(key, "true or false", v);
  return v.get<bool>();
}

std::string get_string(std::string_view key, const nlohmann::json& v) {
  if (!v.is_string()) bad_type(key, "a string", v);
  return v.get<std::string>();
}

}  // namespace

EarlyStoppingOptions EarlyStoppingOptions::from_json(const nlohmann::json& j,
                                                     const EarlyStoppingOptions& defaults) {
  if (!j.is_object())
    throw OptionError(
        fmt::format("early-stopping options must be a JSON object, not {}", j.dump()));
  EarlyStoppingOptions o = defaults;
  for (const auto& [key, v] : j.items()) {
    if (key == "monitor") {
      o.monitor = get_string(key, v);
    } else if (key == "mode") {
      o.mode = get_string(key, v);
    } else if (key == "patience") {
      o.patience = get_int(key, v);
    } else if (key == "min_delta") {
      o.min_delta = get_number(key, v);
    } else if (key == "baseline") {
      o.baseline = get_optional_number(key, v);
    } else if (key == "start_from_epoch") {
      o.start_from_epoch = get_int(key, v);
    } else if (key == "check_finite") {
      o.check_finite = get_bool(key, v);
    } else if (key == "stopping_threshold") {
      o.stopping_threshold = get_optional_number(key, v);
    } else if (key == "divergence_threshold") {
      o.divergence_threshold = get_optional_number(key, v);
    } else if (key == "strict") {
      o.strict = get_bool(key, v);
    } else if (key == "rule" || key == "rules") {
      if (v.is_string()) {
        o.rules = parse_rules(v.get_ref<const std::string&>());
      } else if (v.is_array()) {
        std::string spec;
        for (const auto& item : v) {
          if (!spec.empty()) spec += ',';
          spec += get_string(key, item);
        }
        o.rules = parse_rules(spec);
      } else {
        bad_type(key, "a rule spec such as \"patience,gl:5\"", v);
      }
    } else if (key == "combine") {
      const auto s = get_string(key, v);
      if (s == "any") {
        o.combine = Combine::Any;
      } else if (s == "all") {
        o.combine = Combine::All;
      } else {
        throw OptionError(fmt::format("unknown combine '{}': use any or all", s));
      }
    } else if (key == "max_epochs") {
      if (v.is_null()) {
        o.max_epochs.reset();
      } else {
        o.max_epochs = get_integer(key, v);
      }
    } else if (key == "time_budget_seconds" || key == "time_budget") {
      o.time_budget_seconds = get_optional_number(key, v);
    } else if (key == "train_monitor") {
      o.train_monitor = get_string(key, v);
    } else {
      throw OptionError(fmt::format(
          "unknown option '{}' (known: monitor, mode, patience, min_delta, baseline, "
          "start_from_epoch, check_finite, stopping_threshold, divergence_threshold, strict, "
          "rule, combine, max_epochs, time_budget_seconds, train_monitor)",
          key));
    }
  }
  return o;
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

// ---- the stopper ----

struct EarlyStopper::Impl {
  EarlyStoppingOptions options;
  Mode mode = Mode::Min;
  bool needs_train = false;

  long wait = 0;
  double best = kInf;
  std::optional<long> best_epoch;
  bool improved = false;
  long monitored = 0;
  std::optional<long> last_epoch;
  // Prechelt's E_opt: the best raw value so far, oriented so that lower is better.
  double opt = kInf;
  std::vector<RuleState> rules;

  bool stopped = false;
  std::optional<long> stop_epoch;
  StopReason reason_kind = StopReason::None;
  std::string reason;

  explicit Impl(EarlyStoppingOptions o) : options(std::move(o)) {
    options.validate();
    mode = resolve_mode(options.monitor, options.mode);
    for (const auto& r : options.rules) needs_train = needs_train || r.kind == RuleKind::PQ;
    clear();
  }

  void clear() {
    wait = 0;
    best = mode == Mode::Min ? kInf : -kInf;
    best_epoch.reset();
    improved = false;
    monitored = 0;
    last_epoch.reset();
    opt = kInf;
    rules.assign(options.rules.size(), RuleState{});
    stopped = false;
    stop_epoch.reset();
    reason_kind = StopReason::None;
    reason.clear();
  }

  double orient(double v) const { return mode == Mode::Min ? v : -v; }

  // Relative worsening of an oriented value against an oriented best, in percent
  // (Prechelt's 100 * (E / E_opt - 1) for positive errors).
  static double relative_percent(double value, double best, double scale) {
    if (best == 0) return value > best ? kInf : 0.0;
    return scale * (value - best) / std::fabs(best);
  }

  double generalization_loss(double oriented) const {
    if (!std::isfinite(opt)) return std::isnan(oriented) ? oriented : 0.0;
    return relative_percent(oriented, opt, 100.0);
  }

  // Updates a rule's memory with this epoch and says whether it wants to stop.
  bool evaluate(std::size_t i, long epoch, double value, const std::optional<double>& train) {
    const StoppingRule& rule = options.rules[i];
    RuleState& s = rules[i];
    const double o = orient(value);
    switch (rule.kind) {
      case RuleKind::Patience:
        return !improved && wait >= options.patience && epoch > 0;
      case RuleKind::GL:
        s.figure = generalization_loss(o);
        return s.figure > rule.alpha;
      case RuleKind::PQ: {
        if (!train) return false;
        const double t = orient(*train);
        ++s.strip_count;
        s.strip_sum += t;
        if (t < s.strip_min || std::isnan(t)) s.strip_min = t;
        if (s.strip_count < rule.strip) return false;
        const double mean = s.strip_sum / static_cast<double>(s.strip_count);
        // Prechelt's training progress P_k = 1000 * (mean / min - 1) over the strip.
        const double progress = relative_percent(mean, s.strip_min, 1000.0);
        const double gl = generalization_loss(o);
        s.strip_count = 0;
        s.strip_sum = 0;
        s.strip_min = kInf;
        s.figure = progress == 0 ? (gl > 0 ? kInf : 0.0) : gl / progress;
        s.figure2 = progress;
        return s.figure > rule.alpha;
      }
      case RuleKind::UP: {
        ++s.up_count;
        if (s.up_count % rule.strip != 0) return false;
        if (s.last_strip_value) s.ups = o > *s.last_strip_value ? s.ups + 1 : 0;
        s.last_strip_value = o;
        return s.ups >= rule.successive;
      }
      case RuleKind::Robust: {
        if (!std::isfinite(o)) return false;
        s.window.push_back(o);
        if (s.window.size() > static_cast<std::size_t>(rule.steps))
          s.window.erase(s.window.begin());
        if (s.window.size() < static_cast<std::size_t>(rule.steps)) return false;
        // dnn_trainer's test: stagnation must show with and without the top 10% of values,
        // so a single spike can neither cause nor hide it.
        const auto plain = count_steps_without_decrease(s.window, rule.probability, 0.0);
        const auto robust = count_steps_without_decrease(s.window, rule.probability, 0.10);
        s.figure = static_cast<double>(std::min(plain, robust));
        return plain >= static_cast<std::size_t>(rule.steps) &&
               robust >= static_cast<std::size_t>(rule.steps);
      }
    }
    return false;
  }

  std::string explain(std::size_t i, long epoch, double value) const {
    const StoppingRule& rule = options.rules[i];
    const RuleState& s = rules[i];
    const std::string& m = options.monitor;
    const std::string best_part =
        best_epoch ? fmt::format("; best {} at epoch {}", num(best), *best_epoch) : "";
    switch (rule.kind) {
      case RuleKind::Patience:
        return fmt::format("{} did not improve for {} (patience {}){}", m, plural(wait, "epoch"),
                           options.patience, best_part);
      case RuleKind::GL:
        return fmt::format("generalization loss GL = {:.4g}% exceeds {} at epoch {} ({} = {}){}",
                           s.figure, num(rule.alpha), epoch, m, num(value), best_part);
      case RuleKind::PQ:
        return fmt::format(
            "progress quotient PQ = GL / P{} = {:.4g} exceeds {} at the end of the strip ending "
            "at epoch {} (training progress P = {:.4g}){}",
            rule.strip, s.figure, num(rule.alpha), epoch, s.figure2, best_part);
      case RuleKind::UP:
        return fmt::format("{} got worse at the end of {} in a row of {} (UP{}){}", m,
                           plural(s.ups, "strip"), plural(rule.strip, "epoch"), rule.successive,
                           best_part);
      case RuleKind::Robust:
        return fmt::format("{} shows no confident decrease (probability {}) over the last {}{}", m,
                           num(rule.probability), plural(static_cast<long>(s.figure), "epoch"),
                           best_part);
    }
    return {};
  }

  StopDecision update(long epoch, double value, double elapsed, const std::optional<double>& train,
                      bool monitored_value_present, std::string warning) {
    if (epoch < 0) throw InputError(fmt::format("epoch index {} is negative", epoch));
    if (last_epoch && epoch <= *last_epoch)
      throw InputError(fmt::format(
          "epoch {} fed after epoch {}: epochs must increase (resuming from the wrong state?)",
          epoch, *last_epoch));
    last_epoch = epoch;
    improved = false;
    StopDecision d;
    d.warning = std::move(warning);

    const std::string& m = options.monitor;
    if (monitored_value_present && epoch >= options.start_from_epoch) {
      d.monitored = true;
      ++monitored;
    }
    if (d.monitored && options.check_finite && !std::isfinite(value)) {
      // Lightning checks finiteness before anything else: a NaN or infinite value stops at
      // once and never becomes the best (not even -inf when minimising).
      d.stop = true;
      d.reason_kind = StopReason::NonFinite;
      d.reason = fmt::format(
          "{} is {} at epoch {}; stopping because check_finite is on{}", m, num(value), epoch,
          best_epoch ? fmt::format("; best {} at epoch {}", num(best), *best_epoch) : "");
    } else if (d.monitored) {
      // Keras: the counter grows every monitored epoch and resets on an improvement that
      // also beats the baseline; the best moves on any improvement.
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

      // Every rule sees every monitored epoch, even one a threshold stops on, so their
      // memories stay identical whichever check fires.
      std::size_t first_fired = options.rules.size();
      std::size_t fired_count = 0;
      for (std::size_t i = 0; i < options.rules.size(); ++i) {
        if (evaluate(i, epoch, value, train)) {
          ++fired_count;
          if (first_fired == options.rules.size()) first_fired = i;
        }
      }

      const bool min = mode == Mode::Min;
      if (options.stopping_threshold &&
          (min ? value < *options.stopping_threshold : value > *options.stopping_threshold)) {
        d.stop = true;
        d.reason_kind = StopReason::StoppingThreshold;
        d.reason = fmt::format("{} = {} at epoch {} is {} the stopping threshold {}", m, num(value),
                               epoch, min ? "below" : "above", num(*options.stopping_threshold));
      } else if (options.divergence_threshold && (min ? value > *options.divergence_threshold
                                                      : value < *options.divergence_threshold)) {
        d.stop = true;
        d.reason_kind = StopReason::DivergenceThreshold;
        d.reason =
            fmt::format("{} = {} at epoch {} is {} the divergence threshold {}", m, num(value),
                        epoch, min ? "above" : "below", num(*options.divergence_threshold));
      } else if (options.combine == Combine::Any ? fired_count > 0
                                                 : fired_count == options.rules.size()) {
        d.stop = true;
        d.reason_kind = rule_reason(options.rules[first_fired].kind);
        if (options.combine == Combine::Any || options.rules.size() == 1) {
          d.reason = explain(first_fired, epoch, value);
        } else {
          for (std::size_t i = 0; i < options.rules.size(); ++i) {
            if (!d.reason.empty()) d.reason += "; and ";
            d.reason += explain(i, epoch, value);
          }
        }
      }
    }

    if (!d.stop && options.max_epochs && epoch + 1 >= *options.max_epochs) {
      d.stop = true;
      d.reason_kind = StopReason::MaxEpochs;
      d.reason = fmt::format("reached max_epochs = {} (epoch {} was the last)", *options.max_epochs,
                             epoch);
    }
    if (!d.stop && options.time_budget_seconds && elapsed >= *options.time_budget_seconds) {
      d.stop = true;
      d.reason_kind = StopReason::TimeBudget;
      d.reason = fmt::format("time budget of {} s used up ({:.1f} s elapsed after epoch {})",
                             num(*options.time_budget_seconds), elapsed, epoch);
    }
    if (d.stop && !stopped) {
      stopped = true;
      stop_epoch = epoch;
      reason_kind = d.reason_kind;
      reason = d.reason;
    }
    return d;
  }
};

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
    warning = fmt::format("epoch {}: metric '{}' is missing from the logs; epoch not monitored",
                          epoch, o.monitor);
  std::optional<double> train;
  if (impl_->needs_train && value) {
    if (const double* t = find_metric(logs, o.train_monitor, o.strict)) {
      train = *t;
    } else {
      warning = fmt::format(
          "epoch {}: training metric '{}' (for rule pq) is missing from the logs; skipped", epoch,
          o.train_monitor);
    }
  }
  return impl_->update(epoch, value ? *value : 0.0, elapsed_seconds, train, value != nullptr,
                       std::move(warning));
}

StopDecision EarlyStopper::update(long epoch, double value, double elapsed_seconds,
                                  std::optional<double> train_value) {
  if (impl_->needs_train && !train_value && impl_->options.strict &&
      epoch >= impl_->options.start_from_epoch)
    throw InputError(
        fmt::format("rule pq needs the training metric '{}' every epoch; replay a log that has it",
                    impl_->options.train_monitor));
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
StopReason EarlyStopper::stop_reason_kind() const {
  return impl_->reason_kind;
}
const std::string& EarlyStopper::stop_reason() const {
  return impl_->reason;
}
void EarlyStopper::reset() {
  impl_->clear();
}

nlohmann::json EarlyStopper::state() const {
  const Impl& s = *impl_;
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : s.rules) {
    nlohmann::json window = nlohmann::json::array();
    for (double v : r.window) window.push_back(number_to_json(v));
    rules.push_back({{"strip_count", r.strip_count},
                     {"strip_sum", number_to_json(r.strip_sum)},
                     {"strip_min", number_to_json(r.strip_min)},
                     {"up_count", r.up_count},
                     {"last_strip_value", r.last_strip_value ? number_to_json(*r.last_strip_value)
                                                             : nlohmann::json(nullptr)},
                     {"ups", r.ups},
                     {"window", std::move(window)}});
  }
  return nlohmann::json{
      {"version", 1},
      {"monitor", s.options.monitor},
      {"mode", std::string(mode_name(s.mode))},
      {"rule", rules_to_string(s.options.rules)},
      {"wait", s.wait},
      {"best", number_to_json(s.best)},
      {"best_epoch", opt_json(s.best_epoch)},
      {"improved", s.improved},
      {"epochs_monitored", s.monitored},
      {"last_epoch", opt_json(s.last_epoch)},
      {"opt", number_to_json(s.opt)},
      {"rules", std::move(rules)},
      {"stopped", s.stopped},
      {"stop_epoch", opt_json(s.stop_epoch)},
      {"reason_kind", s.reason_kind == StopReason::None
                          ? nlohmann::json(nullptr)
                          : nlohmann::json(std::string(stop_reason_name(s.reason_kind)))},
      {"reason", s.reason},
  };
}

void EarlyStopper::load_state(const nlohmann::json& state) {
  Impl next = *impl_;
  try {
    if (!state.is_object()) throw InputError("early-stopping state is not a JSON object");
    if (state.at("version").get<int>() != 1)
      throw InputError(fmt::format("early-stopping state has version {}; this vigil reads 1",
                                   state.at("version").dump()));
    const auto monitor = state.at("monitor").get<std::string>();
    const auto mode = state.at("mode").get<std::string>();
    const auto rule = state.at("rule").get<std::string>();
    if (monitor != next.options.monitor || mode != mode_name(next.mode) ||
        rule != rules_to_string(next.options.rules))
      throw InputError(fmt::format(
          "early-stopping state is for monitor '{}' mode {} rule {}, but this run uses '{}' {} "
          "{}: resume with the options the run started with",
          monitor, mode, rule, next.options.monitor, mode_name(next.mode),
          rules_to_string(next.options.rules)));
    auto opt_long = [&](const char* key) -> std::optional<long> {
      const auto& v = state.at(key);
      if (v.is_null()) return std::nullopt;
      return v.get<long>();
    };
    next.wait = state.at("wait").get<long>();
    next.best = number_from_json(state.at("best"));
    next.best_epoch = opt_long("best_epoch");
    next.improved = state.at("improved").get<bool>();
    next.monitored = state.at("epochs_monitored").get<long>();
    next.last_epoch = opt_long("last_epoch");
    next.opt = number_from_json(state.at("opt"));
    const auto& rules = state.at("rules");
    if (!rules.is_array() || rules.size() != next.rules.size())
      throw InputError("early-stopping state has a different number of rule states");
    for (std::size_t i = 0; i < next.rules.size(); ++i) {
      const auto& j = rules[i];
      RuleState r;
      r.strip_count = j.at("strip_count").get<long>();
      r.strip_sum = number_from_json(j.at("strip_sum"));
      r.strip_min = number_from_json(j.at("strip_min"));
      r.up_count = j.at("up_count").get<long>();
      if (!j.at("last_strip_value").is_null())
        r.last_strip_value = number_from_json(j.at("last_strip_value"));
      r.ups = j.at("ups").get<long>();
      for (const auto& v : j.at("window")) r.window.push_back(number_from_json(v));
      next.rules[i] = std::move(r);
    }
    next.stopped = state.at("stopped").get<bool>();
    next.stop_epoch = opt_long("stop_epoch");
    const auto& kind = state.at("reason_kind");
    next.reason_kind =
        kind.is_null() ? StopReason::None : reason_from_name(kind.get<std::string>());
    next.reason = state.at("reason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("early-stopping state is malformed: {}", e.what()));
  }
  *impl_ = std::move(next);
}

// ---- replay ----

nlohmann::json ReplayResult::to_json() const {
  return nlohmann::json{
      {"stopped", stopped},
      {"stop_epoch", opt_json(stop_epoch)},
      {"best_epoch", opt_json(best_epoch)},
      {"best_value", best_value ? number_to_json(*best_value) : nlohmann::json(nullptr)},
      {"reason", reason},
      {"reason_kind", reason_kind == StopReason::None
                          ? nlohmann::json(nullptr)
                          : nlohmann::json(std::string(stop_reason_name(reason_kind)))},
  };
}

namespace {

ReplayResult finish(const EarlyStopper& s, long epochs_run) {
  ReplayResult r;
  r.stopped = s.stopped();
  r.stop_epoch = s.stop_epoch();
  r.best_epoch = s.best_epoch();
  r.best_value = s.best_value();
  r.reason_kind = s.stop_reason_kind();
  r.epochs_run = epochs_run;
  if (r.stopped) {
    r.reason = s.stop_reason();
  } else if (epochs_run == 0) {
    r.reason = "did not stop: the history is empty";
  } else if (!r.best_epoch) {
    r.reason = fmt::format("did not stop: none of the {} was monitored (start_from_epoch {})",
                           plural(epochs_run, "epoch"), s.options().start_from_epoch);
  } else {
    r.reason =
        fmt::format("did not stop within {}; best {} = {} at epoch {}", plural(epochs_run, "epoch"),
                    s.options().monitor, num(*r.best_value), *r.best_epoch);
  }
  return r;
}

void check_lengths(std::size_t n, std::size_t other, std::string_view what) {
  if (other != 0 && other != n)
    throw InputError(fmt::format("{} has {} entries but there are {} epochs", what, other, n));
}

}  // namespace

ReplayResult replay(std::span<const double> values, const EarlyStoppingOptions& options,
                    std::span<const double> train_values, std::span<const double> elapsed_seconds) {
  check_lengths(values.size(), train_values.size(), "the training series");
  check_lengths(values.size(), elapsed_seconds.size(), "the elapsed-time series");
  EarlyStopper s(options);
  long run = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::optional<double> train;
    if (!train_values.empty()) train = train_values[i];
    const auto d = s.update(static_cast<long>(i), values[i],
                            elapsed_seconds.empty() ? 0.0 : elapsed_seconds[i], train);
    ++run;
    if (d.stop) break;
  }
  return finish(s, run);
}

ReplayResult replay(std::span<const Logs> rows, const EarlyStoppingOptions& options,
                    std::span<const long> epochs, std::span<const double> elapsed_seconds) {
  check_lengths(rows.size(), epochs.size(), "the epoch column");
  check_lengths(rows.size(), elapsed_seconds.size(), "the elapsed-time series");
  EarlyStopper s(options);
  long run = 0;
  std::vector<std::string> warnings;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const long epoch = epochs.empty() ? static_cast<long>(i) : epochs[i];
    auto d = s.on_epoch_end(epoch, rows[i], elapsed_seconds.empty() ? 0.0 : elapsed_seconds[i]);
    ++run;
    if (!d.warning.empty()) warnings.push_back(std::move(d.warning));
    if (d.stop) break;
  }
  auto r = finish(s, run);
  r.warnings = std::move(warnings);
  return r;
}

}  // namespace vigil
