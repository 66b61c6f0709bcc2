// Scoring stopping rules on recorded learning curves: for each rule, how much of each run it
// would have trained (epochs fraction) and how much test metric its restored best epoch gives up
// against the run's best test value (regret). What `vigil replay --evaluate DIR` prints.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/early_stopping_options.hpp"
#include "vigil/monitor.hpp"

namespace vigil {

/// One recorded run: the monitored (validation) values and the test metric of every epoch.
struct CurveRun {
  /// Where it came from, for messages (e.g. the metrics.csv path).
  std::string name;
  /// The monitored metric, one value per epoch (or validation).
  std::vector<double> values;
  /// The test metric at the same epochs; finite, as long as `values`.
  std::vector<double> test;
  /// The training metric at the same epochs, for rules that need one (empty if not recorded).
  std::vector<double> train;
};

/// A rule to score: early-stopping options (their rule, patience, ...) and the label it is
/// reported under, e.g. "patience:3".
struct RuleCandidate {
  std::string label;
  EarlyStoppingOptions options;
};

/// The score of one rule over every run.
struct RuleScore {
  /// The candidate's label.
  std::string rule;
  /// Mean over runs of (s + 1) / n: s the epoch after which the rule stops (n - 1 if never).
  double epochs_fraction = 0.0;
  /// Mean over runs of the regret: t[b] - min(t) for a test metric to minimize (max(t) - t[b]
  /// to maximize), b the epoch restore_best_weights would restore (s when there is no best).
  double regret = 0.0;
  /// The largest regret of any run.
  double worst_regret = 0.0;
  /// Runs on which the rule said stop (at any epoch, the last one included).
  long stopped = 0;
};

/// The default rules: patience 1, 2, 3, 5, 10 (Keras semantics); Prechelt's GL1, GL2, GL3, GL5,
/// PQ0.5, PQ1, PQ2, PQ3 and UP2, UP3, UP4 with strips of 5; robust:10; and median (Optuna's
/// defaults, against the other runs). Each is `base` with its rule and patience replaced.
[[nodiscard]] std::vector<RuleCandidate> default_rule_candidates(const EarlyStoppingOptions& base);

/// The label of options without one: the rule spec, with patience's count ("patience:3").
[[nodiscard]] std::string rule_label(const EarlyStoppingOptions& options);

/// Scores every candidate on every run, in candidate order. The median and percentile rules
/// take as reference the other runs' values (leave-one-out). `test_mode` is the test metric's
/// direction. Throws InputError for no runs, a run with no epoch, or one whose test values are
/// not finite or not as many as its values; OptionError for invalid options.
[[nodiscard]] std::vector<RuleScore> evaluate_rules(const std::vector<CurveRun>& runs,
                                                    const std::vector<RuleCandidate>& candidates,
                                                    Mode test_mode);

/// {"runs": N, "rules": [{"rule", "epochs_fraction", "regret", "worst_regret", "stopped"}]}.
[[nodiscard]] nlohmann::json scores_to_json(std::size_t runs, const std::vector<RuleScore>& scores);

/// The trade-off as an SVG scatter plot: mean epochs fraction (x) against mean regret (y), one
/// labelled point per rule.
[[nodiscard]] std::string scores_to_svg(const std::vector<RuleScore>& scores,
                                        std::string_view test_monitor);

/// Every `metrics.csv` below `dir` (sorted by path) as a run: `monitor` as values, `test_monitor`
/// as test, `train_monitor` as train when the file has it. Throws InputError naming the problem
/// for a missing folder, a folder without metrics.csv, a file without either metric (listing its
/// columns) or with a missing or non-finite test value.
[[nodiscard]] std::vector<CurveRun> read_curve_runs(const std::filesystem::path& dir,
                                                    std::string_view monitor,
                                                    std::string_view test_monitor,
                                                    std::string_view train_monitor);

}  // namespace vigil
