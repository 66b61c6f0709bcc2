// vigil's built-in stopping rules (Keras' patience, Prechelt's GL/PQ/UP, a dlib-style noise-robust
// rule, Optuna's median/percentile pruners), made by value or from specs like "patience,gl:5", and
// dlib's "steps without decrease".
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "vigil/error.hpp"
#include "vigil/rule_registry.hpp"

namespace vigil::rules {

/// Keras: stop once `patience` (an EarlyStoppingOptions field) monitored epochs in a row brought
/// no improvement. Spec "patience".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> patience();
/// Prechelt GL_alpha: stop once the generalization loss 100 * (E / E_opt - 1) exceeds `alpha`
/// percent (alpha >= 0). Spec "gl:ALPHA".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> gl(double alpha);
/// Prechelt PQ_alpha: at the end of each strip of `strip` epochs (>= 1, Prechelt's default 5),
/// stop once GL / P_k exceeds `alpha` (>= 0), P_k being the training progress over the strip;
/// needs the training metric. Spec "pq:ALPHA[:STRIP]".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> pq(double alpha, int strip = 5);
/// Prechelt UP_s: stop once the value got worse at the end of `successive` (>= 1) strips of
/// `strip` epochs (>= 1, default 5) in a row. Spec "up:S[:STRIP]".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> up(int successive, int strip = 5);
/// dlib dnn_trainer: stop once the last `steps` (>= 3) values show no decrease with confidence
/// `probability` (in (0.5, 1), dlib's default 0.51), with and without the top 10% of values.
/// Spec "robust:STEPS[:PROB]".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> robust(int steps, double probability = 0.51);
/// Optuna MedianPruner: after each judged step, stop once the best value so far is worse than
/// the median of the reference runs' values at that step (EarlyStoppingOptions::reference and
/// its counts n_startup_trials, n_warmup_steps, interval_steps, n_min_trials). Spec "median".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> median();
/// Optuna PercentilePruner: as median() at EarlyStoppingOptions::percentile (for max mode the
/// (100 - P)th percentile, as Optuna). Spec "percentile".
[[nodiscard]] std::shared_ptr<const StoppingCriterion> percentile();

}  // namespace vigil::rules

namespace vigil {

/// Parses a comma-separated list of rule specs through `registry` (default: the built-ins),
/// e.g. "patience,gl:5". Throws OptionError naming the bad item for an unknown rule, a missing
/// or non-numeric parameter, or a parameter out of range. An empty spec is an error too.
[[nodiscard]] RuleList parse_rules(std::string_view spec,
                                   const RuleRegistry& registry = RuleRegistry::builtin());

/// The canonical comma-separated spec of `rules`, e.g. "patience,gl:5".
[[nodiscard]] std::string rules_to_string(const RuleList& rules);

/// numpy.nanpercentile(values, percentile) with its default linear interpolation: NaN values
/// are ignored; NaN when none is left. `percentile` is from 0 to 100.
[[nodiscard]] double nan_percentile(std::span<const double> values, double percentile);

/// dlib's count_steps_without_decrease: scanning `values` from the newest backwards, the largest
/// number of recent values over which a least-squares slope is not decreasing with probability
/// >= `probability`. With `discard_quantile` > 0 (dlib's robust variant uses 0.10), values
/// above the upper (1 - discard_quantile) quantile are ignored so a few spikes cannot mask
/// stagnation.
[[nodiscard]] std::size_t count_steps_without_decrease(std::span<const double> values,
                                                       double probability = 0.51,
                                                       double discard_quantile = 0.0);

}  // namespace vigil
