// `vigil replay --evaluate DIR`: scores stopping rules on every recorded run below DIR.
#include "cmd_replay_evaluate.hpp"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "detail/input_file.hpp"
#include "detail/text.hpp"
#include "vigil/io.hpp"
#include "vigil/rule_evaluation.hpp"

namespace vigil::cli {
namespace {

// JSON lines of early-stopping options over `base`, each with an optional "label".
std::vector<RuleCandidate> read_rules_file(const std::string& path,
                                           const EarlyStoppingOptions& base) {
  detail::check_input_file(path, "rules file");
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot open rules file '{}'", path));
  std::vector<RuleCandidate> out;
  std::string line;
  for (long lineno = 1; detail::getline_bounded(in, line); ++lineno) {
    if (detail::trim(line).empty()) continue;
    const auto where = [&] { return fmt::format("rules file '{}', line {}", path, lineno); };
    try {
      auto j = nlohmann::json::parse(line);
      if (!j.is_object())
        throw InputError("expected an object of early-stopping options, e.g. {\"rule\": \"gl:5\"}");
      std::string label;
      if (const auto l = j.find("label"); l != j.end()) {
        if (!l->is_string() || l->get_ref<const std::string&>().empty())
          throw InputError("\"label\" must be a non-empty string");
        label = l->get<std::string>();
        j.erase("label");
      }
      RuleCandidate c{label, EarlyStoppingOptions::from_json(j, base)};
      c.options.validate();
      if (c.label.empty()) c.label = rule_label(c.options);
      out.push_back(std::move(c));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: {}", where(), e.what()));
    } catch (const Error& e) {
      throw InputError(fmt::format("{}: {}", where(), e.what()));
    }
  }
  if (in.bad()) throw InputError(fmt::format("cannot read rules file '{}'", path));
  if (out.empty()) throw InputError(fmt::format("rules file '{}' holds no rule", path));
  return out;
}

void print_table(const EvaluateArgs& a, Mode test_mode, std::size_t runs,
                 const std::vector<RuleScore>& scores) {
  fmt::print("stopping rules on {} runs below {} (test metric {}, {})\n\n", runs, a.dir,
             a.test_monitor, mode_name(test_mode));
  std::size_t width = 4;
  for (const auto& s : scores) width = std::max(width, s.rule.size());
  fmt::print("{:<{}}  {:>15}  {:>11}  {:>12}  {:>9}\n", "rule", width, "epochs fraction",
             "mean regret", "worst regret", "stopped");
  for (const auto& s : scores)
    fmt::print("{:<{}}  {:>15.3f}  {:>11}  {:>12}  {:>9}\n", s.rule, width, s.epochs_fraction,
               detail::human_number(s.regret), detail::human_number(s.worst_regret),
               fmt::format("{}/{}", s.stopped, runs));
  fmt::print(
      "\nepochs fraction: share of each run's epochs the rule trains; regret: how much worse the\n"
      "test metric is at the epoch it restores than at the run's best epoch for the test set.\n");
}

}  // namespace

int run_evaluate(const EvaluateArgs& a, const EarlyStoppingOptions& base) {
  const Mode test_mode = resolve_mode(a.test_monitor, a.test_mode);
  std::vector<RuleCandidate> candidates =
      a.rules_file.empty() ? default_rule_candidates(base) : read_rules_file(a.rules_file, base);
  const auto runs = read_curve_runs(a.dir, base.monitor, a.test_monitor, base.train_monitor);
  const auto lacking =
      std::find_if(runs.begin(), runs.end(), [](const CurveRun& r) { return r.train.empty(); });
  const auto needs_train = [](const RuleCandidate& c) {
    return std::any_of(c.options.rules.begin(), c.options.rules.end(),
                       [](const auto& r) { return r->needs_train_metric(); });
  };
  if (lacking != runs.end()) {
    if (!a.rules_file.empty()) {
      for (const auto& c : candidates)
        if (needs_train(c))
          throw InputError(
              fmt::format("{}: rule {} needs the training metric '{}', which the "
                          "file does not have",
                          lacking->name, c.label, base.train_monitor));
    } else {
      // The default set is a survey: leave out what these runs cannot answer, and say so.
      std::erase_if(candidates, needs_train);
      fmt::print(stderr, "vigil: note: the PQ rules are left out: {} has no '{}' column\n",
                 lacking->name, base.train_monitor);
    }
  }
  const auto scores = evaluate_rules(runs, candidates, test_mode);
  if (!a.plot.empty()) {
    const std::string svg = scores_to_svg(scores, a.test_monitor);
    atomic_write_file(a.plot, svg);
  }
  if (a.json) {
    fmt::print("{}\n", scores_to_json(runs.size(), scores).dump());
  } else {
    print_table(a, test_mode, runs.size(), scores);
    if (!a.plot.empty()) fmt::print("trade-off plot: {}\n", a.plot);
  }
  return 0;
}

}  // namespace vigil::cli
