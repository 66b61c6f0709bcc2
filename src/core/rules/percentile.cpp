// Optuna's PercentilePruner (and MedianPruner, its 50th percentile): stop a run whose best value
// so far is worse than the given percentile of earlier runs' values at the same step.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil {

double nan_percentile(std::span<const double> values, double percentile) {
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values)
    if (!std::isnan(x)) v.push_back(x);
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  // numpy's "linear" method: virtual index q * (n - 1) between its floor and the next value,
  // interpolated from whichever end is nearer (numpy's _lerp), so the last bit agrees too.
  const double index = percentile / 100.0 * static_cast<double>(v.size() - 1);
  const double below = std::floor(index);
  const auto lo = static_cast<std::size_t>(below);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const double t = index - below;
  const double a = v[lo], b = v[hi];
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

namespace detail {
namespace {

class PercentileRule final : public StoppingCriterion {
 public:
  explicit PercentileRule(bool median) : median_(median) {}
  std::string_view name() const override { return median_ ? "median" : "percentile"; }
  std::string spec() const override { return std::string(name()); }

  void validate(const EarlyStoppingOptions& o) const override {
    if (median_ && o.percentile && *o.percentile != 50)
      throw OptionError(fmt::format(
          "rule 'median' is the 50th percentile, but the percentile option is {}: use rule "
          "'percentile' for another",
          human_number(*o.percentile)));
    if (!median_ && !o.percentile)
      throw OptionError(
          "rule 'percentile' needs the percentile option (0 to 100; 50 is the median)");
  }

  bool observe(const RuleContext& c) override {
    const std::optional<long> previous = last_step_;
    last_step_ = c.epoch;
    if (!std::isnan(c.value)) best_ = best_ ? std::min(*best_, c.oriented) : c.oriented;
    verdict_ = Verdict::None;
    const auto& o = c.options;
    const auto runs = static_cast<long>(o.reference.size());
    if (runs == 0 || runs < o.n_startup_trials) return false;
    if (c.epoch < o.n_warmup_steps) return false;
    // Judged only at the first step fed at or after each of w, w + i, w + 2i, ...
    const long w = o.n_warmup_steps;
    const long judged = (c.epoch - w) / o.interval_steps * o.interval_steps + w;
    if (previous.value_or(-1) >= judged) return false;
    if (!best_) {
      verdict_ = Verdict::AllNan;
      return true;
    }
    std::vector<double> at_step;
    for (const auto& run : o.reference)
      if (static_cast<std::size_t>(c.epoch) < run.size())
        at_step.push_back(run[static_cast<std::size_t>(c.epoch)]);
    if (static_cast<long>(at_step.size()) < o.n_min_trials) return false;
    // In the monitor's own units, as Optuna compares: for max the (100 - p)th percentile.
    used_percentile_ = c.mode == Mode::Min ? percentile(o) : 100 - percentile(o);
    threshold_ = nan_percentile(at_step, used_percentile_);
    reference_values_ = static_cast<long>(at_step.size());
    if (std::isnan(threshold_)) return false;
    const double best = c.orient(*best_);
    const bool worse = c.mode == Mode::Min ? best > threshold_ : best < threshold_;
    if (worse) verdict_ = Verdict::Worse;
    return worse;
  }

  std::string explain(const RuleContext& c) const override {
    if (verdict_ == Verdict::AllNan)
      return fmt::format("{} has been NaN at every {} so far ({} rule)", c.options.monitor,
                         c.period, name());
    return fmt::format(
        "the best {} so far, {}, is worse than {}, the {} percentile of {} earlier runs at {} {} "
        "({} rule)",
        c.options.monitor, human_number(best_ ? c.orient(*best_) : c.value),
        human_number(threshold_), ordinal(used_percentile_), reference_values_, c.period, c.epoch,
        name());
  }

  nlohmann::json state() const override {
    return {{"best", best_ ? number_to_json(*best_) : nlohmann::json(nullptr)},
            {"last_step", last_step_ ? nlohmann::json(*last_step_) : nlohmann::json(nullptr)}};
  }
  void load_state(const nlohmann::json& j) override {
    best_.reset();
    last_step_.reset();
    if (!j.at("best").is_null()) best_ = number_from_json(j.at("best"));
    if (!j.at("last_step").is_null()) last_step_ = j.at("last_step").get<long>();
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<PercentileRule>(*this);
  }

 private:
  enum class Verdict { None, Worse, AllNan };

  double percentile(const EarlyStoppingOptions& o) const {
    return median_ ? 50.0 : o.percentile.value_or(50.0);
  }
  static std::string ordinal(double p) {
    const std::string n = human_number(p);
    if (n.find_first_not_of("0123456789") != std::string::npos) return n + "th";
    const long v = std::stol(n);
    if (v % 100 >= 11 && v % 100 <= 13) return n + "th";
    switch (v % 10) {
      case 1:
        return n + "st";
      case 2:
        return n + "nd";
      case 3:
        return n + "rd";
      default:
        return n + "th";
    }
  }

  bool median_;
  // The lowest oriented value fed so far, NaN ignored (none while every value was NaN), and the
  // last step fed: the memory Optuna reads from a trial's intermediate values.
  std::optional<double> best_;
  std::optional<long> last_step_;
  // Of the last judgement, for explain().
  Verdict verdict_ = Verdict::None;
  double used_percentile_ = 50.0;
  double threshold_ = 0.0;
  long reference_values_ = 0;
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_median_rule(const RuleSpec& spec) {
  spec.expect_parameters(0, 0,
                         "'median' without parameters (the reference runs and the counts "
                         "n_startup_trials, n_warmup_steps, interval_steps and n_min_trials are "
                         "options)");
  return std::make_unique<PercentileRule>(true);
}

std::unique_ptr<StoppingCriterion> make_percentile_rule(const RuleSpec& spec) {
  spec.expect_parameters(0, 0,
                         "'percentile' without parameters (set P with the percentile option)");
  return std::make_unique<PercentileRule>(false);
}

}  // namespace detail
}  // namespace vigil
