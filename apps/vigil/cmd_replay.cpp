// `vigil replay`: runs a recorded metric history through the stopping rules, without training.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cmd_replay_evaluate.hpp"
#include "commands.hpp"
#include "detail/input_file.hpp"
#include "detail/json_scan.hpp"
#include "detail/text.hpp"
#include "option_flags.hpp"
#include "stdout.hpp"
#include "vigil/early_stopping.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/reference_runs.hpp"

namespace vigil::cli {
namespace {

struct ReplayArgs {
  std::string values;
  std::string log;
  std::string batch;
  bool json = false;
  /// --reference-runs: the earlier runs of the median and percentile rules.
  std::string reference_runs;
  /// --evaluate and its settings.
  EvaluateArgs evaluate;
  /// Written by the early-stopping flags; with --batch, the defaults of every line.
  EarlyStoppingOptions options;
};

// "0.9, 0.8,nan" -> numbers; nan/inf/-inf allowed, anything else is an error naming the item.
std::vector<double> parse_values(const std::string& text) {
  std::vector<double> out;
  std::size_t start = 0;
  for (std::size_t item = 1;; ++item) {
    const auto end = text.find(',', start);
    std::string cell = text.substr(start, end == std::string::npos ? end : end - start);
    const auto first = cell.find_first_not_of(" \t");
    const auto last = cell.find_last_not_of(" \t");
    cell = first == std::string::npos ? "" : cell.substr(first, last - first + 1);
    if (cell.empty() && out.empty() && end == std::string::npos) break;  // "--values ''"
    try {
      out.push_back(number_from_json(nlohmann::json(cell)));
    } catch (const InputError&) {
      // Not one of nan/inf/-inf: it must be a plain number, all of it.
      char* stop = nullptr;
      const double v = std::strtod(cell.c_str(), &stop);
      if (cell.empty() || stop != cell.c_str() + cell.size())
        throw OptionError(fmt::format("--values: item {} '{}' is not a number", item, cell));
      out.push_back(v);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// One block character per epoch, scaled between the finite min and max; '!' marks non-finite.
std::string sparkline(const std::vector<double>& values) {
  static const char* const kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  std::string out;
  for (double v : values) {
    if (!std::isfinite(v)) {
      out += '!';
      continue;
    }
    const int level = hi > lo ? static_cast<int>(std::lround((v - lo) / (hi - lo) * 7.0)) : 3;
    out += kBlocks[std::clamp(level, 0, 7)];
  }
  return out;
}

void print_human(const std::string& title, const std::vector<double>& values,
                 const std::vector<long>& epochs, const ReplayResult& r) {
  fmt::print("{}\n", title);
  const std::size_t n = values.size();
  const auto best_row = [&]() -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < n; ++i)
      if (r.best_epoch && epochs[i] == *r.best_epoch) return i;
    return std::nullopt;
  }();
  const std::size_t run = static_cast<std::size_t>(r.epochs_run);
  // Long histories show the start, the neighbourhoods of the best and stop epochs, and the end.
  auto shown = [&](std::size_t i) {
    if (n <= 30) return true;
    auto near = [&](std::optional<std::size_t> at) { return at && i + 2 >= *at && i <= *at + 2; };
    return i < 3 || i + 3 >= n || near(best_row) || (r.stopped && near(run - 1));
  };
  fmt::print("{:>7}  {:>12}\n", "epoch", "value");
  bool gap = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!shown(i)) {
      if (!gap) fmt::print("{:>7}\n", "...");
      gap = true;
      continue;
    }
    gap = false;
    std::string mark;
    if (best_row && i == *best_row) mark += "  <- best";
    if (r.stopped && i + 1 == run) mark += "  <- stop";
    if (i >= run) mark += "  (not run)";
    fmt::print("{:>7}  {:>12}{}\n", epochs[i], detail::human_number(values[i]), mark);
  }
  if (n > 0) {
    fmt::print("\n  {}\n", sparkline(values));
    std::string marks(n, ' ');
    if (best_row) marks[*best_row] = 'b';
    if (r.stopped && run > 0) marks[run - 1] = marks[run - 1] == 'b' ? '*' : 's';
    fmt::print("  {}  (b best, s stop, * both)\n\n", marks);
  }
  if (r.stopped) {
    fmt::print("stopped after epoch {} ({}): {}\n", *r.stop_epoch, r.reason_kind, r.reason);
  } else {
    fmt::print("{}\n", r.reason);
  }
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) fmt::print(stderr, "vigil: warning: {}\n", w);
}

int run_values(const ReplayArgs& a, const EarlyStoppingOptions& o) {
  if (o.time_budget_seconds)
    throw OptionError(
        "--values has no elapsed times, so a time budget cannot fire: replay a --log with a "
        "'seconds' column");
  const auto values = parse_values(a.values);
  const ReplayResult r = replay(values, o);
  if (a.json) {
    fmt::print("{}\n", r.to_json().dump());
  } else {
    std::vector<long> epochs(values.size());
    for (std::size_t i = 0; i < epochs.size(); ++i) epochs[i] = static_cast<long>(i);
    const EarlyStopper s(o);
    print_human(fmt::format("replay of {} values of {} ({}), rule {}, patience {}", values.size(),
                            o.monitor, mode_name(s.mode()), rules_to_string(o.rules), o.patience),
                values, epochs, r);
  }
  return 0;
}

int run_log(const ReplayArgs& a, const EarlyStoppingOptions& o) {
  const MetricsLog log = MetricsLog::read(a.log);
  const auto column = log.column(o.monitor);  // throws naming the columns that exist
  for (const auto& rule : o.rules)
    if (rule->needs_train_metric()) (void)log.column(o.train_monitor);
  std::vector<long> epochs(log.rows());
  if (log.has_column("epoch")) {
    const auto e = log.column("epoch");
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (!std::isfinite(e[i]) || e[i] != std::floor(e[i]) || e[i] < 0)
        throw InputError(fmt::format("{}: row {}: epoch '{}' is not a whole number", a.log, i + 1,
                                     detail::format_number(e[i])));
      epochs[i] = static_cast<long>(e[i]);
    }
  } else {
    for (std::size_t i = 0; i < epochs.size(); ++i) epochs[i] = static_cast<long>(i);
  }
  // metrics.csv records each epoch's duration; the time budget needs the running total.
  std::vector<double> elapsed;
  if (log.has_column("seconds")) {
    double total = 0;
    for (std::size_t i = 0; i < log.rows(); ++i) {
      if (log.has_value(i, "seconds")) {
        const double t = log.column("seconds")[i];
        if (!(t >= 0) || !std::isfinite(t))
          throw InputError(fmt::format(
              "{}: row {} has seconds = {}: an epoch's duration is a finite number >= 0", a.log,
              i + 1, detail::format_number(t)));
        total += t;
      }
      elapsed.push_back(total);
    }
  } else if (o.time_budget_seconds) {
    throw InputError(
        fmt::format("{} has no 'seconds' column, so a time budget cannot be replayed", a.log));
  }
  const auto rows = log.rows_as_logs();
  const ReplayResult r = replay(rows, o, epochs, elapsed);
  print_warnings(r.warnings);
  if (a.json) {
    fmt::print("{}\n", r.to_json().dump());
  } else {
    const EarlyStopper s(o);
    print_human(
        fmt::format("replay of {} ({}) from {}: {} epochs, rule {}, patience {}", o.monitor,
                    mode_name(s.mode()), a.log, log.rows(), rules_to_string(o.rules), o.patience),
        std::vector<double>(column.begin(), column.end()), epochs, r);
  }
  return 0;
}

// ---- --batch: one case per line ----

std::string answer(const detail::BatchCase& c, const EarlyStoppingOptions& base) {
  const EarlyStoppingOptions o =
      c.options ? EarlyStoppingOptions::from_json(*c.options, base) : base;
  if (o.time_budget_seconds && c.elapsed_seconds.empty())
    throw InputError("a time budget needs \"elapsed_seconds\" (cumulative, one per value)");
  EarlyStoppingOptions with_reference;
  const EarlyStoppingOptions* used = &o;
  if (!c.reference.empty()) {
    with_reference = o;
    with_reference.reference = c.reference;
    used = &with_reference;
  }
  auto out = replay(c.values, *used, c.train_values, c.elapsed_seconds).to_json();
  if (c.name) out["name"] = *c.name;
  return out.dump();
}

struct BatchLine {
  long lineno = 0;
  std::string text;  ///< the case; then its answer (one JSON line, no newline)
  bool failed = false;
};

// Answers lines [begin, end) of `chunk` in place.
void answer_lines(std::vector<BatchLine>& chunk, std::size_t begin, std::size_t end,
                  const EarlyStoppingOptions& base) {
  detail::BatchCase c;
  for (std::size_t i = begin; i < end; ++i) {
    auto& l = chunk[i];
    try {
      detail::read_batch_case(l.text, c);
      l.text = answer(c, base);
    } catch (const std::exception& e) {
      // One bad case must not hide the answers to the others: report it in place.
      l.failed = true;
      // nlohmann's parse errors quote the bytes last read, which may be invalid UTF-8.
      l.text = nlohmann::json{{"error", fmt::format("line {}: {}", l.lineno, e.what())}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
}

int run_batch(const ReplayArgs& a, const EarlyStoppingOptions& base) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.batch != "-") {
    detail::check_input_file(a.batch, "batch file");
    file.open(a.batch);
    if (!file) throw InputError(fmt::format("cannot open batch file '{}'", a.batch));
    in = &file;
  }
  // Cases are independent: chunks of lines are answered by every core, and printed in order.
  const std::size_t jobs = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 16);
  constexpr std::size_t chunk_lines = 4096;
  std::vector<BatchLine> chunk;
  std::string out, line;
  long lineno = 0, cases = 0, failed = 0;
  std::string first_error;
  auto flush_chunk = [&] {
    const std::size_t n = chunk.size();
    const std::size_t workers = std::min(jobs, (n + 255) / 256);
    {
      std::vector<std::jthread> threads;
      for (std::size_t w = 1; w < workers; ++w)
        threads.emplace_back(
            [&, w] { answer_lines(chunk, n * w / workers, n * (w + 1) / workers, base); });
      answer_lines(chunk, 0, workers > 0 ? n / workers : n, base);
    }
    for (auto& l : chunk) {
      if (l.failed) {
        ++failed;
        if (first_error.empty())
          first_error = nlohmann::json::parse(l.text)["error"].get<std::string>();
      }
      out += l.text;
      out += '\n';
    }
    chunk.clear();
    // A failed write ends the batch at once: its answers would be lost anyway.
    write_stdout(out);
    out.clear();
  };
  for (;;) {
    try {
      if (!detail::getline_bounded(*in, line)) break;
    } catch (const InputError& e) {
      throw InputError(fmt::format("batch input '{}', line {}: {}", a.batch, lineno + 1, e.what()));
    }
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++cases;
    chunk.push_back(BatchLine{lineno, std::move(line), false});
    if (chunk.size() == chunk_lines) flush_chunk();
  }
  if (in->bad()) throw InputError(fmt::format("cannot read batch input '{}'", a.batch));
  flush_chunk();
  flush_stdout();
  if (failed > 0) {
    fmt::print(stderr, "vigil: error: {} of {} batch cases failed; first: {}\n", failed, cases,
               first_error);
    return 1;
  }
  return 0;
}

}  // namespace

void add_replay_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ReplayArgs>();
  auto* cmd = app.add_subcommand(
      "replay", "Replay a metric history through the stopping rules: when would it have stopped?");
  auto* values = cmd->add_option("--values", args->values,
                                 "Comma-separated values of the monitored metric, one per epoch "
                                 "(nan, inf, -inf allowed)");
  auto* log = cmd->add_option("--log", args->log,
                              "A metrics log: CSV with a header (as vigil train writes "
                              "metrics.csv) or JSON lines");
  auto* batch = cmd->add_option("--batch", args->batch,
                                "JSON lines of {\"values\": [...], \"options\": {...}}, or - for "
                                "stdin; prints one JSON result per line");
  auto* evaluate = cmd->add_option("--evaluate", args->evaluate.dir,
                                   "Score stopping rules on every metrics.csv below this folder "
                                   "(epochs trained against test metric given up)");
  values->excludes(log)->excludes(batch)->excludes(evaluate);
  log->excludes(batch)->excludes(evaluate);
  batch->excludes(evaluate);
  auto* test_monitor = cmd->add_option("--test-monitor", args->evaluate.test_monitor,
                                       "--evaluate: the test metric regret is measured on")
                           ->capture_default_str();
  auto* test_mode = cmd->add_option("--test-mode", args->evaluate.test_mode,
                                    "--evaluate: min, max or auto (from the test metric's name)")
                        ->capture_default_str();
  auto* rules_file = cmd->add_option("--rules", args->evaluate.rules_file,
                                     "--evaluate: JSON lines of options to score (each as in "
                                     "--batch, with an optional \"label\") instead of the "
                                     "default set");
  auto* plot = cmd->add_option("--plot", args->evaluate.plot,
                               "--evaluate: draw the trade-off (epochs fraction against regret) "
                               "as SVG into this file");
  for (auto* o : {test_monitor, test_mode, rules_file, plot}) o->needs(evaluate);
  auto* reference = cmd->add_option("--reference-runs", args->reference_runs,
                                    "median/percentile rules: a glob of earlier runs' metrics.csv "
                                    "(or their folders) to compare with");
  reference->excludes(batch)->excludes(evaluate);
  add_option_flags(cmd, early_stopping_option_fields(), args->options, "Early stopping",
                   KeyPrefix{}, nullptr);
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, &ctx, values, log, batch, evaluate] {
    if (!values->count() && !log->count() && !batch->count() && !evaluate->count())
      throw OptionError(
          "replay needs a history: --values LIST, --log FILE, --batch FILE or --evaluate DIR");
    EarlyStoppingOptions& options = args->options;
    if (!args->reference_runs.empty()) {
      // The log replayed is never its own reference.
      const auto own = log->count() ? std::filesystem::path(args->log) : std::filesystem::path();
      options.reference = find_reference_runs(args->reference_runs, options.monitor, own).curves();
    }
    options.validate();
    if (evaluate->count()) {
      args->evaluate.json = args->json;
      ctx.exit_code = run_evaluate(args->evaluate, options);
    } else if (values->count()) {
      ctx.exit_code = run_values(*args, options);
    } else if (log->count()) {
      ctx.exit_code = run_log(*args, options);
    } else {
      ctx.exit_code = run_batch(*args, options);
    }
  });
}

}  // namespace vigil::cli
