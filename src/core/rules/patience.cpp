// Keras' patience rule: the stopper's wait counter reached the patience option.
#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"

namespace vigil::detail {
namespace {

class PatienceRule final : public StoppingCriterion {
 public:
  std::string_view name() const override { return "patience"; }
  std::string spec() const override { return "patience"; }
  bool observe(const RuleContext& c) override {
    return !c.improved && c.wait >= c.options.patience && c.epoch > 0;
  }
  std::string explain(const RuleContext& c) const override {
    return fmt::format("{} did not improve for {} (patience {})", c.options.monitor,
                       plural(c.wait, c.period), c.options.patience);
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<PatienceRule>(*this);
  }
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_patience_rule(const RuleSpec& spec) {
  spec.expect_parameters(0, 0,
                         "'patience' without parameters (set the count with the patience "
                         "option)");
  return std::make_unique<PatienceRule>();
}

}  // namespace vigil::detail
