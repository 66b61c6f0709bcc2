// The stopping rules a user can pick besides Keras' patience: Prechelt's GL/PQ/UP and a
// dlib-style noise-robust rule, written as specs like "patience,gl:5" and parsed here.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"

namespace vigil {

/// Which rule a StoppingRule is.
enum class RuleKind {
  Patience,  ///< Keras: stop once `patience` epochs in a row brought no improvement
  GL,        ///< Prechelt GL_alpha: generalization loss 100*(E/E_opt - 1) > alpha
  PQ,        ///< Prechelt PQ_alpha: GL / training progress P_k > alpha, at strip ends
  UP,        ///< Prechelt UP_s: the value got worse at the end of s successive strips
  Robust,    ///< dlib dnn_trainer: no confident least-squares decrease over `steps` epochs
};

/// One rule with its parameters. Spec syntax (see parse_rules):
/// `patience | gl:ALPHA | pq:ALPHA[:STRIP] | up:S[:STRIP] | robust:STEPS[:PROB]`.
struct StoppingRule {
  RuleKind kind = RuleKind::Patience;
  /// gl: generalization loss in percent; pq: quotient GL / P_k. Must be >= 0.
  double alpha = 0.0;
  /// pq, up: training strip length k in epochs (Prechelt's default 5). Must be >= 1.
  int strip = 5;
  /// up: number of successive strips with a worse value. Must be >= 1.
  int successive = 1;
  /// robust: stop once this many recent epochs show no confident decrease. Must be >= 3.
  int steps = 10;
  /// robust: confidence that the slope is negative needed to count as progress; dlib's
  /// default 0.51. Must be in (0.5, 1).
  double probability = 0.51;

  /// The rule as a spec, e.g. "gl:5", "pq:0.5:5", "robust:10:0.51".
  std::string to_string() const;
  /// Short name: "patience", "gl", "pq", "up" or "robust".
  std::string_view name() const;

  static StoppingRule patience() { return {}; }
  static StoppingRule gl(double alpha);
  static StoppingRule pq(double alpha, int strip = 5);
  static StoppingRule up(int successive, int strip = 5);
  static StoppingRule robust(int steps, double probability = 0.51);
};

/// Parses a comma-separated list of rule specs (spaces around items allowed). Throws
/// OptionError naming the bad item for an unknown rule, a missing or non-numeric parameter,
/// or a parameter out of range. An empty spec is an error too.
std::vector<StoppingRule> parse_rules(std::string_view spec);

/// The canonical comma-separated spec of `rules`, e.g. "patience,gl:5".
std::string rules_to_string(const std::vector<StoppingRule>& rules);

/// dlib's count_steps_without_decrease: scanning `values` from the newest backwards, the largest
/// number of recent values over which a least-squares slope is not decreasing with probability
/// >= `probability`. With `discard_quantile` > 0 (dlib's robust variant uses 0.10), values
/// above the upper (1 - discard_quantile) quantile are ignored so a few spikes cannot mask
/// stagnation.
std::size_t count_steps_without_decrease(std::span<const double> values, double probability = 0.51,
                                         double discard_quantile = 0.0);

}  // namespace vigil
