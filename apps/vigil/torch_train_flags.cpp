// The flags of `vigil train`: RunConfig's fields from its table (run_fields()), the
// early-stopping options, and the flags of the run itself (--run-dir, --fresh, --nproc, ...).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "option_flags.hpp"
#include "torch_train.hpp"

namespace vigil::cli {

namespace {

using Keyed = std::vector<std::pair<CLI::Option*, std::string>>;

// "must be >= min, got X" (CLI11's own range validators print the largest double).
CLI::Validator at_least(double min) {
  return {[min](std::string& text) -> std::string {
            double v = 0;
            try {
              std::size_t used = 0;
              v = std::stod(text, &used);
              if (used != text.size()) return "must be a number, got '" + text + "'";
            } catch (const std::exception&) {
              return "must be a number, got '" + text + "'";
            }
            if (!(v >= min)) return fmt::format("must be >= {}, got {}", min, text);
            return {};
          },
          fmt::format(">= {}", min)};
}

// "must be a finite number > 0": a learning rate of inf trains to NaN on the first step.
CLI::Validator positive_finite() {
  return {[](std::string& text) -> std::string {
            double v = 0;
            try {
              v = std::stod(text);
            } catch (const std::exception&) {
              return {};  // not a number: the option's own reader says so, naming the key
            }
            if (!(v > 0) || !std::isfinite(v))
              return fmt::format("must be a finite number > 0, got {}", text);
            return {};
          },
          "> 0"};
}

// Threads beyond a few per core only contend, and libtorch spends minutes creating 100,000 of
// them without a word (or a reaction to SIGTERM): at most 4 per core, and never above 1024.
CLI::Validator thread_count() {
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  const unsigned most = std::min(1024U, 4 * cores);
  return {[most, cores](std::string& text) -> std::string {
            if (auto bad = at_least(0)(text); !bad.empty()) return bad;
            if (std::stod(text) > most)
              return fmt::format(
                  "must be at most {} (4 per core on this machine's {} cores), got {}", most, cores,
                  text);
            return {};
          },
          fmt::format("0 to {}", most)};
}

// The flags' range checks, by run.json key: CLI11 reports them before the value is read.
void add_checks(const Keyed& keyed) {
  const std::map<std::string, CLI::Validator> checks = {
      {"validation_split", CLI::Range(0.0, 0.99)},
      {"test_split", CLI::Range(0.01, 0.99)},
      {"limit_train", at_least(0)},
      {"limit_test", at_least(0)},
      {"epochs", at_least(0)},
      {"batch_size", at_least(1)},
      {"threads", thread_count()},
      {"lr", positive_finite()},
      {"max_steps", at_least(0)},
      {"val_every_n_steps", at_least(0)},
      {"accumulate", at_least(1)},
      {"clip_grad_norm", at_least(0)},
  };
  for (const auto& [opt, key] : keyed)
    if (const auto it = checks.find(key); it != checks.end()) opt->check(it->second);
  // Unset by default, so the table has no type to show; the range is checked in run_train.
  for (const auto& [opt, key] : keyed)
    if (key == "ema") opt->type_name("DECAY");
}

// The early-stopping options of run.json's "early_stopping" object that `vigil train` offers,
// from the options' own table (--epochs plays max_epochs' part; the rest keep their defaults).
void add_early_stopping_flags(CLI::App* cmd, TrainArgs& a) {
  static const std::set<std::string_view> kTrainKeys = {"monitor",
                                                        "mode",
                                                        "patience",
                                                        "min_delta",
                                                        "baseline",
                                                        "start_from_epoch",
                                                        "check_finite",
                                                        "stopping_threshold",
                                                        "divergence_threshold",
                                                        "rule",
                                                        "time_budget_seconds"};
  std::vector<OptionField<EarlyStoppingOptions>> fields;
  for (const auto& f : early_stopping_option_fields())
    if (kTrainKeys.count(f.key) > 0) fields.push_back(f);
  add_option_flags(cmd, std::span<const OptionField<EarlyStoppingOptions>>(fields),
                   a.config.early_stopping, "Early stopping", KeyPrefix{"early_stopping."},
                   &a.keyed);
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
