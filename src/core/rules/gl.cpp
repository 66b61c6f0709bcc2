// Prechelt's GL_alpha: stop once the generalization loss exceeds alpha percent.
#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"

namespace vigil::detail {
namespace {

class GeneralizationLossRule final : public StoppingCriterion {
 public:
  explicit GeneralizationLossRule(double alpha) : alpha_(alpha) {}
  std::string_view name() const override { return "gl"; }
  std::string spec() const override { return fmt::format("gl:{}", alpha_); }
  bool observe(const RuleContext& c) override {
    gl_ = generalization_loss(c);
    return gl_ > alpha_;
  }
  std::string explain(const RuleContext& c) const override {
    return fmt::format("generalization loss GL = {:.4g}% exceeds {} at {} {} ({} = {})", gl_,
                       human_number(alpha_), c.period, c.epoch, c.options.monitor,
                       human_number(c.value));
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<GeneralizationLossRule>(*this);
  }

 private:
  double alpha_;
  double gl_ = 0;  // of the last observed epoch, for explain()
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_gl_rule(const RuleSpec& spec) {
  spec.expect_parameters(1, 1, "gl:ALPHA, e.g. gl:5");
  const double alpha = spec.number(0, "ALPHA");
  if (alpha < 0) spec.fail("ALPHA must be >= 0");
  return std::make_unique<GeneralizationLossRule>(alpha);
}

}  // namespace vigil::detail
