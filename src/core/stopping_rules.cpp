// Rule specs ("patience,gl:5,robust:10") and dlib's least-squares "steps without decrease".
#include "vigil/stopping_rules.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"

namespace vigil {
namespace {

using detail::trim;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

double parse_double(std::string_view item, std::string_view text, std::string_view what) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    throw OptionError(fmt::format("rule '{}': {} '{}' is not a number", item, what, text));
  return v;
}

int parse_int(std::string_view item, std::string_view text, std::string_view what) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw OptionError(fmt::format("rule '{}': {} '{}' is not a whole number", item, what, text));
  return v;
}

void check_strip(std::string_view item, int strip) {
  if (strip < 1)
    throw OptionError(fmt::format("rule '{}': the strip length must be at least 1 epoch", item));
}

StoppingRule parse_one(std::string_view item) {
  auto parts = split(item, ':');
  for (auto& p : parts) p = trim(p);
  const std::string_view name = parts[0];
  const std::size_t nparams = parts.size() - 1;
  auto arity = [&](std::size_t lo, std::size_t hi, std::string_view usage) {
    if (nparams < lo || nparams > hi)
      throw OptionError(fmt::format("rule '{}': expected {}", item, usage));
  };
  StoppingRule r;
  if (name == "patience") {
    arity(0, 0, "'patience' without parameters (set the count with --patience)");
    return r;
  }
  if (name == "gl") {
    arity(1, 1, "gl:ALPHA, e.g. gl:5");
    r.kind = RuleKind::GL;
    r.alpha = parse_double(item, parts[1], "ALPHA");
    if (r.alpha < 0) throw OptionError(fmt::format("rule '{}': ALPHA must be >= 0", item));
    return r;
  }
  if (name == "pq") {
    arity(1, 2, "pq:ALPHA[:STRIP], e.g. pq:0.5 or pq:0.5:5");
    r.kind = RuleKind::PQ;
    r.alpha = parse_double(item, parts[1], "ALPHA");
    if (r.alpha < 0) throw OptionError(fmt::format("rule '{}': ALPHA must be >= 0", item));
    if (nparams == 2) r.strip = parse_int(item, parts[2], "STRIP");
    check_strip(item, r.strip);
    return r;
  }
  if (name == "up") {
    arity(1, 2, "up:S[:STRIP], e.g. up:3 or up:3:5");
    r.kind = RuleKind::UP;
    r.successive = parse_int(item, parts[1], "S");
    if (r.successive < 1) throw OptionError(fmt::format("rule '{}': S must be at least 1", item));
    if (nparams == 2) r.strip = parse_int(item, parts[2], "STRIP");
    check_strip(item, r.strip);
    return r;
  }
  if (name == "robust") {
    arity(1, 2, "robust:STEPS[:PROB], e.g. robust:10 or robust:10:0.6");
    r.kind = RuleKind::Robust;
    r.steps = parse_int(item, parts[1], "STEPS");
    // A slope and its standard error need at least three points.
    if (r.steps < 3) throw OptionError(fmt::format("rule '{}': STEPS must be at least 3", item));
    if (nparams == 2) r.probability = parse_double(item, parts[2], "PROB");
    if (!(r.probability > 0.5 && r.probability < 1))
      throw OptionError(fmt::format("rule '{}': PROB must be between 0.5 and 1 (exclusive)", item));
    return r;
  }
  throw OptionError(
      fmt::format("unknown rule '{}': use patience, gl:ALPHA, pq:ALPHA[:STRIP], up:S[:STRIP] or "
                  "robust:STEPS[:PROB]",
                  item));
}

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

std::string_view StoppingRule::name() const {
  switch (kind) {
    case RuleKind::Patience:
      return "patience";
    case RuleKind::GL:
      return "gl";
    case RuleKind::PQ:
      return "pq";
    case RuleKind::UP:
      return "up";
    case RuleKind::Robust:
      return "robust";
  }
  return "patience";
}

std::string StoppingRule::to_string() const {
  switch (kind) {
    case RuleKind::Patience:
      return "patience";
    case RuleKind::GL:
      return fmt::format("gl:{}", alpha);
    case RuleKind::PQ:
      return fmt::format("pq:{}:{}", alpha, strip);
    case RuleKind::UP:
      return fmt::format("up:{}:{}", successive, strip);
    case RuleKind::Robust:
      return fmt::format("robust:{}:{}", steps, probability);
  }
  return "patience";
}

StoppingRule StoppingRule::gl(double alpha) {
  return parse_one(fmt::format("gl:{}", alpha));
}
StoppingRule StoppingRule::pq(double alpha, int strip) {
  return parse_one(fmt::format("pq:{}:{}", alpha, strip));
}
StoppingRule StoppingRule::up(int successive, int strip) {
  return parse_one(fmt::format("up:{}:{}", successive, strip));
}
StoppingRule StoppingRule::robust(int steps, double probability) {
  return parse_one(fmt::format("robust:{}:{}", steps, probability));
}

std::vector<StoppingRule> parse_rules(std::string_view spec) {
  std::vector<StoppingRule> rules;
  for (auto item : split(spec, ',')) {
    item = trim(item);
    if (item.empty())
      throw OptionError(
          fmt::format("rule spec '{}' has an empty item: list rules like "
                      "'patience,gl:5'",
                      spec));
    rules.push_back(parse_one(item));
  }
  return rules;
}

std::string rules_to_string(const std::vector<StoppingRule>& rules) {
  std::string out;
  for (const auto& r : rules) {
    if (!out.empty()) out += ',';
    out += r.to_string();
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
