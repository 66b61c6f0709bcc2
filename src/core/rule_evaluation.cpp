// Scoring stopping rules on recorded runs: replay each rule over each run's validation curve and
// measure the epochs it trains and the test metric its restored epoch gives up.
#include "vigil/rule_evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <system_error>

#include <fmt/format.h>

#include "detail/input_file.hpp"
#include "detail/text.hpp"
#include "vigil/error.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/replay.hpp"
#include "vigil/stopping_rules.hpp"

namespace vigil {
namespace {

RuleCandidate candidate(std::string label, const EarlyStoppingOptions& base, std::string_view rule,
                        int patience = 0) {
  EarlyStoppingOptions o = base;
  o.with_rule(rule);
  o.patience = patience;
  return RuleCandidate{std::move(label), std::move(o)};
}

bool is_reference_rule(const EarlyStoppingOptions& o) {
  return std::any_of(o.rules.begin(), o.rules.end(), [](const auto& r) {
    return r->name() == "median" || r->name() == "percentile";
  });
}

void check_run(const CurveRun& run) {
  if (run.values.empty()) throw InputError(fmt::format("{}: the run has no epoch", run.name));
  if (run.test.size() != run.values.size())
    throw InputError(
        fmt::format("{}: {} monitored values but {} test values: both need one per epoch", run.name,
                    run.values.size(), run.test.size()));
  for (std::size_t i = 0; i < run.test.size(); ++i)
    if (!std::isfinite(run.test[i]))
      throw InputError(fmt::format("{}: the test value of epoch {} is {}: regret needs numbers",
                                   run.name, i, detail::format_number(run.test[i])));
}

}  // namespace

std::vector<RuleCandidate> default_rule_candidates(const EarlyStoppingOptions& base) {
  std::vector<RuleCandidate> out;
  for (int p : {1, 2, 3, 5, 10})
    out.push_back(candidate(fmt::format("patience:{}", p), base, "patience", p));
  for (int a : {1, 2, 3, 5})
    out.push_back(candidate(fmt::format("gl:{}", a), base, fmt::format("gl:{}", a)));
  for (double a : {0.5, 1.0, 2.0, 3.0})
    out.push_back(candidate(fmt::format("pq:{}", a), base, fmt::format("pq:{}:5", a)));
  for (int s : {2, 3, 4})
    out.push_back(candidate(fmt::format("up:{}", s), base, fmt::format("up:{}:5", s)));
  out.push_back(candidate("robust:10", base, "robust:10"));
  out.push_back(candidate("median", base, "median"));
  return out;
}

std::string rule_label(const EarlyStoppingOptions& o) {
  std::string label;
  for (const auto& r : o.rules) {
    if (!label.empty()) label += ',';
    label += r->name() == "patience" ? fmt::format("patience:{}", o.patience) : r->spec();
  }
  return label;
}

std::vector<RuleScore> evaluate_rules(const std::vector<CurveRun>& runs,
                                      const std::vector<RuleCandidate>& candidates,
                                      Mode test_mode) {
  if (runs.empty()) throw InputError("no runs to evaluate the rules on");
  for (const auto& run : runs) check_run(run);
  std::vector<RuleScore> scores;
  for (const auto& c : candidates) {
    c.options.validate();
    const bool reference = is_reference_rule(c.options);
    RuleScore score{c.label};
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const CurveRun& run = runs[i];
      EarlyStoppingOptions o = c.options;
      if (reference) {
        o.reference.clear();
        for (std::size_t j = 0; j < runs.size(); ++j)
          if (j != i) o.reference.push_back(runs[j].values);
      }
      const ReplayResult r = replay(run.values, o, run.train);
      const long n = static_cast<long>(run.values.size());
      const long s = r.stopped && r.stop_epoch ? *r.stop_epoch : n - 1;
      const long b = r.best_epoch ? *r.best_epoch : s;
      const auto& t = run.test;
      const double best_test = test_mode == Mode::Min ? *std::min_element(t.begin(), t.end())
                                                      : *std::max_element(t.begin(), t.end());
      const double at_b = t[static_cast<std::size_t>(b)];
      const double regret = test_mode == Mode::Min ? at_b - best_test : best_test - at_b;
      score.epochs_fraction += static_cast<double>(s + 1) / static_cast<double>(n);
      score.regret += regret;
      score.worst_regret = i == 0 ? regret : std::max(score.worst_regret, regret);
      if (r.stopped) ++score.stopped;
    }
    score.epochs_fraction /= static_cast<double>(runs.size());
    score.regret /= static_cast<double>(runs.size());
    scores.push_back(std::move(score));
  }
  return scores;
}

nlohmann::json scores_to_json(std::size_t runs, const std::vector<RuleScore>& scores) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& s : scores)
    rules.push_back({{"rule", s.rule},
                     {"epochs_fraction", s.epochs_fraction},
                     {"regret", s.regret},
                     {"worst_regret", s.worst_regret},
                     {"stopped", s.stopped}});
  return {{"runs", runs}, {"rules", std::move(rules)}};
}

std::vector<CurveRun> read_curve_runs(const std::filesystem::path& dir, std::string_view monitor,
                                      std::string_view test_monitor,
                                      std::string_view train_monitor) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw InputError(fmt::format("'{}' is not a folder of runs", dir.string()));
  std::vector<std::filesystem::path> files;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename() == "metrics.csv" && it->is_regular_file(ec))
      files.push_back(it->path());
  if (ec) throw InputError(fmt::format("cannot list '{}': {}", dir.string(), ec.message()));
  if (files.empty())
    throw InputError(fmt::format("no metrics.csv below '{}': nothing to evaluate", dir.string()));
  std::sort(files.begin(), files.end());
  std::vector<CurveRun> runs;
  for (const auto& f : files) {
    const MetricsLog log = MetricsLog::read(f);
    CurveRun run;
    run.name = f.string();
    if (!log.has_column(monitor) || !log.has_column(test_monitor))
      throw InputError(fmt::format("{} lacks '{}': its columns are {}", run.name,
                                   log.has_column(monitor) ? test_monitor : monitor,
                                   detail::name_list(log.columns(), 20)));
    const auto v = log.column(monitor);
    const auto t = log.column(test_monitor);
    run.values.assign(v.begin(), v.end());
    for (std::size_t i = 0; i < log.rows(); ++i)
      if (!log.has_value(i, test_monitor))
        throw InputError(fmt::format("{}: row {} has no {}: every epoch needs a test value",
                                     run.name, i + 1, test_monitor));
    run.test.assign(t.begin(), t.end());
    if (log.has_column(train_monitor)) {
      const auto tr = log.column(train_monitor);
      run.train.assign(tr.begin(), tr.end());
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace vigil
