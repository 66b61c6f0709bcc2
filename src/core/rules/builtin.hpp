// The factories of the built-in rules (one file each beside this one) and the measures of
// Prechelt's criteria that several of them share. Not part of the public API.
#pragma once

#include <cmath>
#include <limits>
#include <memory>

#include "vigil/rule_registry.hpp"
#include "vigil/stopping_rule.hpp"

namespace vigil::detail {

std::unique_ptr<StoppingCriterion> make_patience_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_gl_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_pq_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_up_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_robust_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_median_rule(const RuleSpec& spec);
std::unique_ptr<StoppingCriterion> make_percentile_rule(const RuleSpec& spec);

/// Relative worsening of an oriented value against an oriented best, scaled: Prechelt's
/// 100 * (E / E_opt - 1) for positive errors with scale 100.
inline double relative_percent(double value, double best, double scale) {
  if (best == 0) return value > best ? std::numeric_limits<double>::infinity() : 0.0;
  return scale * (value - best) / std::fabs(best);
}

/// Prechelt's generalization loss GL of this epoch against E_opt, in percent.
inline double generalization_loss(const RuleContext& c) {
  if (!std::isfinite(c.e_opt)) return std::isnan(c.oriented) ? c.oriented : 0.0;
  return relative_percent(c.oriented, c.e_opt, 100.0);
}

}  // namespace vigil::detail
