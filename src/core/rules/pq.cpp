// Prechelt's PQ_alpha: at each training-strip end, stop once GL / P_k exceeds alpha.
#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"

namespace vigil::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class ProgressQuotientRule final : public StoppingCriterion {
 public:
  ProgressQuotientRule(double alpha, int strip) : alpha_(alpha), strip_(strip) {}
  std::string_view name() const override { return "pq"; }
  std::string spec() const override { return fmt::format("pq:{}:{}", alpha_, strip_); }
  bool needs_train_metric() const override { return true; }

  bool observe(const RuleContext& c) override {
    if (!c.train_value) return false;
    const double t = c.orient(*c.train_value);
    ++count_;
    sum_ += t;
    if (t < min_ || std::isnan(t)) min_ = t;
    if (count_ < strip_) return false;
    const double mean = sum_ / static_cast<double>(count_);
    // Prechelt's training progress P_k = 1000 * (mean / min - 1) over the strip.
    progress_ = relative_percent(mean, min_, 1000.0);
    const double gl = generalization_loss(c);
    count_ = 0;
    sum_ = 0;
    min_ = kInf;
    quotient_ = progress_ == 0 ? (gl > 0 ? kInf : 0.0) : gl / progress_;
    return quotient_ > alpha_;
  }

  std::string explain(const RuleContext& c) const override {
    return fmt::format(
        "progress quotient PQ = GL / P{} = {:.4g} exceeds {} at the end of the strip ending at "
        "{} {} (training progress P = {:.4g})",
        strip_, quotient_, human_number(alpha_), c.period, c.epoch, progress_);
  }

  nlohmann::json state() const override {
    return {{"strip_count", count_},
            {"strip_sum", number_to_json(sum_)},
            {"strip_min", number_to_json(min_)}};
  }
  void load_state(const nlohmann::json& j) override {
    count_ = j.at("strip_count").get<long>();
    sum_ = number_from_json(j.at("strip_sum"));
    min_ = number_from_json(j.at("strip_min"));
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<ProgressQuotientRule>(*this);
  }

 private:
  double alpha_;
  long strip_;
  // The current training strip, in oriented training values.
  long count_ = 0;
  double sum_ = 0;
  double min_ = kInf;
  // Of the last strip end, for explain().
  double quotient_ = 0;
  double progress_ = 0;
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_pq_rule(const RuleSpec& spec) {
  spec.expect_parameters(1, 2, "pq:ALPHA[:STRIP], e.g. pq:0.5 or pq:0.5:5");
  const double alpha = spec.number(0, "ALPHA");
  if (alpha < 0) spec.fail("ALPHA must be >= 0");
  const int strip = spec.size() == 2 ? spec.whole_number(1, "STRIP") : 5;
  if (strip < 1) spec.fail("the strip length must be at least 1 epoch");
  return std::make_unique<ProgressQuotientRule>(alpha, strip);
}

}  // namespace vigil::detail
