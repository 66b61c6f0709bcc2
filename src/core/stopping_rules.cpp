// The built-in rules by value, rule lists as specs, and dlib's least-squares "steps without
// decrease".
#include "vigil/stopping_rules.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace vigil {
namespace {

// dlib's running_gradient: recursive least squares of y against x = 0, 1, 2, ... that also
// tracks the residual, so the slope's standard error is known at every step.
class RunningGradient {
 public:
  void add(double y) {
    const double x0 = n_, x1 = 1.0;
    const double rx0 = r00_ * x0 + r01_ * x1;
    const double rx1 = r10_ * x0 + r11_ * x1;
    const double temp = 1.0 + x0 * rx0 + x1 * rx1;
    r00_ -= rx0 * rx0 / temp;
    r01_ -= rx0 * rx1 / temp;
    r10_ -= rx1 * rx0 / temp;
    r11_ -= rx1 * rx1 / temp;
    const double sym = 0.5 * (r01_ + r10_);
    r01_ = r10_ = sym;
    const double err = y - (x0 * w0_ + x1 * w1_);
    w0_ += (r00_ * x0 + r01_ * x1) * err;
    w1_ += (r10_ * x0 + r11_ * x1) * err;
    const double post = y - (x0 * w0_ + x1 * w1_);
    residual_squared_ += post * post * temp;
    n_ += 1.0;
  }
  double n() const { return n_; }
  double probability_gradient_greater_than_zero() const {
    const double s = residual_squared_ / (n_ - 2);
    const double adjust = 12.0 / (n_ * n_ * n_ - n_);
    const double stddev = std::sqrt(s * adjust);
    const double mean = w0_;
    double below;  // P(slope < 0)
    if (stddev == 0) {
      below = 0 < mean ? 0.0 : (0 > mean ? 1.0 : 0.5);
    } else {
      below = 0.5 * std::erfc(((mean - 0.0) / stddev) / std::sqrt(2.0));
    }
    return 1.0 - below;
  }

 private:
  double n_ = 0;
  double r00_ = 1e6, r01_ = 0, r10_ = 0, r11_ = 1e6;
  double w0_ = 0, w1_ = 0;
  double residual_squared_ = 0;
};

}  // namespace

std::shared_ptr<const StoppingCriterion> rules::patience() {
  return RuleRegistry::builtin().make("patience");
}
// Through the spec, so the parameters are checked in one place.
std::shared_ptr<const StoppingCriterion> rules::gl(double alpha) {
  return RuleRegistry::builtin().make(fmt::format("gl:{}", alpha));
}
std::shared_ptr<const StoppingCriterion> rules::pq(double alpha, int strip) {
  return RuleRegistry::builtin().make(fmt::format("pq:{}:{}", alpha, strip));
}
std::shared_ptr<const StoppingCriterion> rules::up(int successive, int strip) {
  return RuleRegistry::builtin().make(fmt::format("up:{}:{}", successive, strip));
}
std::shared_ptr<const StoppingCriterion> rules::robust(int steps, double probability) {
  return RuleRegistry::builtin().make(fmt::format("robust:{}:{}", steps, probability));
}
std::shared_ptr<const StoppingCriterion> rules::median() {
  return RuleRegistry::builtin().make("median");
}
std::shared_ptr<const StoppingCriterion> rules::percentile() {
  return RuleRegistry::builtin().make("percentile");
}

RuleList parse_rules(std::string_view spec, const RuleRegistry& registry) {
  return registry.parse(spec);
}

std::string rules_to_string(const RuleList& rules) {
  std::string out;
  for (const auto& r : rules) {
    if (!out.empty()) out += ',';
    out += r->spec();
  }
  return out;
}

std::size_t count_steps_without_decrease(std::span<const double> values, double probability,
                                         double discard_quantile) {
  if (values.empty()) return 0;
  double ceiling = INFINITY;
  if (discard_quantile > 0) {
    std::vector<double> copy(values.begin(), values.end());
    const auto idx = static_cast<std::size_t>(
        std::round(static_cast<double>(copy.size() - 1) * (1.0 - discard_quantile)));
    std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(idx), copy.end());
    ceiling = copy[idx];
  }
  // Walking backwards from the newest value, remember the longest suffix whose slope is not
  // confidently negative: that many recent steps brought no reliable progress.
  RunningGradient g;
  std::size_t count = 0;
  std::size_t j = 0;
  for (auto it = values.rbegin(); it != values.rend(); ++it) {
    ++j;
    if (*it <= ceiling) g.add(*it);
    // Reversed order: a positive slope here is a decrease in time.
    if (g.n() > 2 && g.probability_gradient_greater_than_zero() < probability) count = j;
  }
  return count;
}

}  // namespace vigil
