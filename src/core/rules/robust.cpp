// dlib dnn_trainer's no-progress test: no confident least-squares decrease over `steps` epochs.
#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil::detail {
namespace {

class RobustRule final : public StoppingCriterion {
 public:
  RobustRule(int steps, double probability) : steps_(steps), probability_(probability) {}
  std::string_view name() const override { return "robust"; }
  std::string spec() const override { return fmt::format("robust:{}:{}", steps_, probability_); }

  bool observe(const RuleContext& c) override {
    if (!std::isfinite(c.oriented)) return false;
    window_.push_back(c.oriented);
    if (window_.size() > steps_) window_.erase(window_.begin());
    if (window_.size() < steps_) return false;
    // dnn_trainer's test: stagnation must show with and without the top 10% of values, so a
    // single spike can neither cause nor hide it.
    const auto plain = count_steps_without_decrease(window_, probability_, 0.0);
    const auto robust = count_steps_without_decrease(window_, probability_, 0.10);
    count_ = std::min(plain, robust);
    return plain >= steps_ && robust >= steps_;
  }

  std::string explain(const RuleContext& c) const override {
    return fmt::format("{} shows no confident decrease (probability {}) over the last {}",
                       c.options.monitor, human_number(probability_),
                       plural(static_cast<long>(count_), c.period));
  }

  nlohmann::json state() const override {
    nlohmann::json window = nlohmann::json::array();
    for (double v : window_) window.push_back(number_to_json(v));
    return {{"window", std::move(window)}};
  }
  void load_state(const nlohmann::json& j) override {
    std::vector<double> window;
    for (const auto& v : j.at("window")) window.push_back(number_from_json(v));
    window_ = std::move(window);
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<RobustRule>(*this);
  }

 private:
  std::size_t steps_;
  double probability_;
  std::vector<double> window_;  // the most recent `steps` finite oriented values
  std::size_t count_ = 0;       // of the last full window, for explain()
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_robust_rule(const RuleSpec& spec) {
  spec.expect_parameters(1, 2, "robust:STEPS[:PROB], e.g. robust:10 or robust:10:0.6");
  const int steps = spec.whole_number(0, "STEPS");
  // A slope and its standard error need at least three points.
  if (steps < 3) spec.fail("STEPS must be at least 3");
  const double probability = spec.size() == 2 ? spec.number(1, "PROB") : 0.51;
  if (!(probability > 0.5 && probability < 1))
    spec.fail("PROB must be between 0.5 and 1 (exclusive)");
  return std::make_unique<RobustRule>(steps, probability);
}

}  // namespace vigil::detail
