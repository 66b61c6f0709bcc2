// The flags of `vigil train`: RunConfig's fields from its table (run_fields()), the
// early-stopping options, and the flags of the run itself (--run-dir, --fresh, --nproc, ...).
#include <map>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "option_flags.hpp"
#include "torch_train.hpp"

namespace vigil::cli {

namespace {

using Keyed = std::vector<std::pair<CLI::Option*, std::string>>;

// The flags' range checks, by run.json key: CLI11 reports them before the value is read.
void add_checks(const Keyed& keyed) {
  const std::map<std::string, CLI::Validator> checks = {
      {"validation_split", CLI::Range(0.0, 0.99)}, {"test_split", CLI::Range(0.01, 0.99)},
      {"limit_train", CLI::NonNegativeNumber},     {"limit_test", CLI::NonNegativeNumber},
      {"epochs", CLI::NonNegativeNumber},          {"batch_size", CLI::PositiveNumber},
      {"threads", CLI::NonNegativeNumber},
  };
  for (const auto& [opt, key] : keyed)
    if (const auto it = checks.find(key); it != checks.end()) opt->check(it->second);
}

// The early-stopping options (run.json's "early_stopping" object), bound one by one.
void add_early_stopping_flags(CLI::App* cmd, TrainArgs& a) {
  auto& es = a.config.early_stopping;
  auto key = [&](CLI::Option* o, const std::string& k) {
    a.keyed.emplace_back(o, "early_stopping." + k);
    return o->group("Early stopping");
  };
  key(cmd->add_option("--monitor", es.monitor, "Metric watched by early stopping and checkpoints")
          ->capture_default_str(),
      "monitor");
  key(cmd->add_option("--mode", es.mode, "min, max or auto")->capture_default_str(), "mode");
  key(cmd->add_option("--patience", es.patience, "Epochs without improvement before stopping")
          ->capture_default_str(),
      "patience");
  key(cmd->add_option("--min-delta", es.min_delta, "Smallest change that counts as improvement")
          ->capture_default_str(),
      "min_delta");
  a.baseline_opt =
      key(cmd->add_option("--baseline", a.baseline, "Value the metric must beat"), "baseline");
  key(cmd->add_option("--start-from-epoch", es.start_from_epoch, "Epochs of warm-up not monitored")
          ->capture_default_str(),
      "start_from_epoch");
  a.stopping_threshold_opt = key(cmd->add_option("--stopping-threshold", a.stopping_threshold,
                                                 "Stop once the metric is better than this"),
                                 "stopping_threshold");
  a.divergence_threshold_opt = key(cmd->add_option("--divergence-threshold", a.divergence_threshold,
                                                   "Stop once the metric is worse than this"),
                                   "divergence_threshold");
  key(cmd->add_flag("--check-finite,!--no-check-finite", a.check_finite,
                    "Stop when the metric becomes NaN or infinite (default on)"),
      "check_finite");
  key(cmd->add_option("--rule", a.rule,
                      "patience|gl:ALPHA|pq:ALPHA[:STRIP]|up:S[:STRIP]|robust:STEPS[:PROB], "
                      "comma-separated")
          ->capture_default_str(),
      "rule");
  a.time_budget_opt =
      key(cmd->add_option("--time-budget", a.time_budget,
                          "Stop after the epoch that ends past this many seconds of training"),
          "time_budget_seconds");
}

// The flags of the run itself: not part of run.json.
void add_run_flags(CLI::App* cmd, TrainArgs& a) {
  const char* kRun = "Run";
  cmd->add_option("--run-dir", a.run_dir,
                  "Run directory: metrics.csv, checkpoints/, best/, run.json; an existing one is "
                  "resumed")
      ->capture_default_str()
      ->group(kRun);
  cmd->add_flag("--fresh", a.fresh,
                "Start over: move an existing --run-dir aside to DIR.old-<timestamp> first")
      ->group(kRun);
  cmd->add_option("--progress", a.progress,
                  "auto (a live bar on a terminal, else one line per epoch), bar or lines")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bar", "lines"}))
      ->group(kRun);
  add_launch_options(cmd, a.launch);  // --nproc & co. (torch_launch.cpp)
  // Hidden: used by the resume tests to kill the process for real at a chosen point.
  cmd->add_option("--debug-kill-after-batches", a.debug_kill_after_batches)->group("");
  cmd->add_option("--debug-kill-after-epochs", a.debug_kill_after_epochs)->group("");
}

}  // namespace

RunConfig config_from_args(const TrainArgs& a) {
  RunConfig c = a.config;
  auto& es = c.early_stopping;
  es.with_rule(a.rule);
  auto opt = [](CLI::Option* o, double v) {
    return o != nullptr && o->count() > 0 ? std::optional<double>(v) : std::nullopt;
  };
  es.baseline = opt(a.baseline_opt, a.baseline);
  es.stopping_threshold = opt(a.stopping_threshold_opt, a.stopping_threshold);
  es.divergence_threshold = opt(a.divergence_threshold_opt, a.divergence_threshold);
  es.time_budget_seconds = opt(a.time_budget_opt, a.time_budget);
  es.check_finite = a.check_finite;
  return c;
}

std::set<std::string> explicit_keys(const TrainArgs& a) {
  std::set<std::string> keys;
  for (const auto& [opt, key] : a.keyed)
    if (opt->count() > 0) keys.insert(key);
  return keys;
}

void add_train_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", kTrainSummary);
  // A flag given twice takes its last value, so scripts can append overrides.
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // In run_fields() order, which is the --help order; the early-stopping flags go where their
  // object is, before restore_best_weights in the same group.
  for (const auto& f : run_fields()) {
    if (f.field.key == "early_stopping")
      add_early_stopping_flags(cmd, *args);
    else if (!f.group.empty())
      add_option_flags(cmd, std::span(&f.field, 1), args->config, f.group, KeyPrefix{},
                       &args->keyed);
  }
  add_checks(args->keyed);
  add_run_flags(cmd, *args);
  cmd->callback([args, &ctx]() { ctx.exit_code = run_train(*args); });
}

}  // namespace vigil::cli
