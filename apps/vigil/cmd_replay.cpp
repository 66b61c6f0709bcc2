// `vigil replay`: runs a recorded metric history through the stopping rules, without training.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "vigil/early_stopping.hpp"
#include "vigil/metrics_log.hpp"

namespace vigil::cli {
namespace {

struct ReplayArgs {
  std::string values;
  std::string log;
  std::string batch;
  bool json = false;

  std::string monitor = "val_loss";
  std::string mode = "auto";
  int patience = 0;
  double min_delta = 0.0;
  double baseline = 0.0;
  int start_from_epoch = 0;
  double stopping_threshold = 0.0;
  double divergence_threshold = 0.0;
  bool check_finite = true;
  std::string rule = "patience";
  std::string combine = "any";
  long max_epochs = 0;
  double time_budget = 0.0;
  std::string train_monitor = "loss";
  bool no_strict = false;

  // Set only when given on the command line.
  CLI::Option* baseline_opt = nullptr;
  CLI::Option* stopping_opt = nullptr;
  CLI::Option* divergence_opt = nullptr;
  CLI::Option* max_epochs_opt = nullptr;
  CLI::Option* time_budget_opt = nullptr;
};

EarlyStoppingOptions options_from(const ReplayArgs& a) {
  EarlyStoppingOptions o;
  o.with_monitor(a.monitor)
      .with_mode(a.mode)
      .with_patience(a.patience)
      .with_min_delta(a.min_delta)
      .with_start_from_epoch(a.start_from_epoch)
      .with_check_finite(a.check_finite)
      .with_rule(a.rule)
      .with_strict(!a.no_strict)
      .with_train_monitor(a.train_monitor);
  if (a.baseline_opt->count()) o.with_baseline(a.baseline);
  if (a.stopping_opt->count()) o.with_stopping_threshold(a.stopping_threshold);
  if (a.divergence_opt->count()) o.with_divergence_threshold(a.divergence_threshold);
  if (a.max_epochs_opt->count()) o.with_max_epochs(a.max_epochs);
  if (a.time_budget_opt->count()) o.with_time_budget_seconds(a.time_budget);
  if (a.combine == "any") {
    o.with_combine(Combine::Any);
  } else if (a.combine == "all") {
    o.with_combine(Combine::All);
  } else {
    throw OptionError(fmt::format("unknown --combine '{}': use any or all", a.combine));
  }
  return o;
}

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

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
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
    fmt::print("{:>7}  {:>12}{}\n", epochs[i], num(values[i]), mark);
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
        throw InputError(
            fmt::format("{}: row {}: epoch '{}' is not a whole number", a.log, i + 1, num(e[i])));
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
      if (log.has_value(i, "seconds")) total += log.column("seconds")[i];
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
//
// Profiled on 100,000 cases (bench/notes.md): most of the time went into nlohmann building a
// DOM of every number array (a lexer call per character, strtod, a heap node per number). A
// line is therefore first split into its top-level members by a small scanner; number arrays
// are read with std::from_chars after a strict check of JSON's number grammar, and every other
// member is still parsed by nlohmann. A line the fast path does not accept in full (escaped
// keys, null or "nan" items, anything malformed) goes through the full parser, so results and
// error messages are the same as before.

struct Member {
  std::string_view key;
  std::string_view value;  ///< the raw JSON text of the value
};

void skip_ws(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
}

// Past the end of the JSON value starting at s[i]: strings with escapes, nested arrays and
// objects (brackets balanced outside strings), or a scalar up to the next delimiter. Checks only
// the structure; the caller validates the value itself.
bool skip_value(std::string_view s, std::size_t& i) {
  int depth = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
      if (i >= s.size()) return false;
      ++i;  // the closing quote
      if (depth == 0) return true;
    } else if (c == '[' || c == '{') {
      ++depth;
      ++i;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return true;  // closes the enclosing object: a scalar ended
      ++i;
      if (--depth == 0) return true;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      return true;
    } else {
      ++i;
    }
  }
  return depth == 0;
}

// The top-level members of a JSON object line, or nullopt when the scanner cannot vouch for it.
std::optional<std::vector<Member>> split_object(std::string_view s) {
  std::vector<Member> out;
  std::size_t i = 0;
  skip_ws(s, i);
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  ++i;
  skip_ws(s, i);
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    for (;;) {
      skip_ws(s, i);
      if (i >= s.size() || s[i] != '"') return std::nullopt;
      const std::size_t k = ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' || static_cast<unsigned char>(s[i]) < 0x20) return std::nullopt;
        ++i;
      }
      if (i >= s.size()) return std::nullopt;
      const std::string_view key = s.substr(k, i - k);
      ++i;
      skip_ws(s, i);
      if (i >= s.size() || s[i] != ':') return std::nullopt;
      ++i;
      skip_ws(s, i);
      const std::size_t v = i;
      if (v >= s.size() || !skip_value(s, i) || i == v) return std::nullopt;
      out.push_back(Member{key, s.substr(v, i - v)});
      skip_ws(s, i);
      if (i >= s.size()) return std::nullopt;
      if (s[i] == ',') {
        ++i;
        continue;
      }
      if (s[i] != '}') return std::nullopt;
      ++i;
      break;
    }
  }
  skip_ws(s, i);
  if (i != s.size()) return std::nullopt;
  return out;
}

// Length of the JSON number at the start of `s` (RFC 8259 grammar), 0 if there is none.
std::size_t json_number_length(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - b;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return 0;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return 0;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return 0;
  }
  return i;
}

// A JSON array of plain numbers into `out`; false for anything else (the full parser decides).
bool read_number_array(std::string_view s, std::vector<double>& out) {
  out.clear();
  std::size_t i = 0;
  if (s.empty() || s[i] != '[') return false;
  ++i;
  skip_ws(s, i);
  if (i < s.size() && s[i] == ']') return i + 1 == s.size();
  for (;;) {
    skip_ws(s, i);
    const std::size_t n = json_number_length(s.substr(i));
    if (n == 0) return false;
    double v = 0;
    const auto r = std::from_chars(s.data() + i, s.data() + i + n, v);
    // Out of range (1e999) is left to the full parser, which has its own rule for it.
    if (r.ec != std::errc{} || r.ptr != s.data() + i + n) return false;
    out.push_back(v);
    i += n;
    skip_ws(s, i);
    if (i >= s.size()) return false;
    if (s[i] == ']') return i + 1 == s.size();
    if (s[i] != ',') return false;
    ++i;
  }
}

struct CaseBuffers {
  std::vector<double> values, train, elapsed;
};

std::string answer(const std::vector<double>& values, const std::vector<double>& train,
                   const std::vector<double>& elapsed, const EarlyStoppingOptions& o,
                   const nlohmann::json* name) {
  if (o.time_budget_seconds && elapsed.empty())
    throw InputError("a time budget needs \"elapsed_seconds\" (cumulative, one per value)");
  auto out = replay(values, o, train, elapsed).to_json();
  if (name != nullptr) out["name"] = *name;
  return out.dump();
}

// The fast path; nullopt hands the line to run_case_full().
std::optional<std::string> run_case_fast(std::string_view line, const EarlyStoppingOptions& base,
                                         CaseBuffers& b) {
  const auto members = split_object(line);
  if (!members) return std::nullopt;
  const Member *values = nullptr, *train = nullptr, *elapsed = nullptr, *options = nullptr,
               *name = nullptr;
  for (const auto& m : *members) {
    // Later duplicates win, as in nlohmann's DOM.
    if (m.key == "values") {
      values = &m;
    } else if (m.key == "train_values") {
      train = &m;
    } else if (m.key == "elapsed_seconds") {
      elapsed = &m;
    } else if (m.key == "options") {
      options = &m;
    } else if (m.key == "name") {
      name = &m;
    } else if (!nlohmann::json::accept(m.value)) {
      return std::nullopt;  // ignored, but it must still be valid JSON
    }
  }
  if (values == nullptr || !read_number_array(values->value, b.values)) return std::nullopt;
  b.train.clear();
  if (train != nullptr && !read_number_array(train->value, b.train)) return std::nullopt;
  b.elapsed.clear();
  if (elapsed != nullptr && !read_number_array(elapsed->value, b.elapsed)) return std::nullopt;
  nlohmann::json opts, name_json;
  if (options != nullptr) {
    opts = nlohmann::json::parse(options->value, nullptr, /*allow_exceptions=*/false);
    if (opts.is_discarded()) return std::nullopt;
  }
  if (name != nullptr) {
    name_json = nlohmann::json::parse(name->value, nullptr, /*allow_exceptions=*/false);
    if (name_json.is_discarded()) return std::nullopt;
  }
  const EarlyStoppingOptions o =
      options == nullptr ? base : EarlyStoppingOptions::from_json(opts, base);
  return answer(b.values, b.train, b.elapsed, o, name != nullptr ? &name_json : nullptr);
}

// One case per line: {"values": [...], "options": {...}} with optional "train_values" (for
// pq), "elapsed_seconds" (cumulative, for a time budget) and "name" (echoed back).
std::string run_case_full(const std::string& line, const EarlyStoppingOptions& base,
                          CaseBuffers& b) {
  const auto j = nlohmann::json::parse(line);
  if (!j.is_object()) throw InputError("a batch line must be a JSON object with \"values\"");
  const auto v = j.find("values");
  if (v == j.end() || !v->is_array())
    throw InputError("a batch line needs \"values\": an array of numbers");
  b.values.clear();
  for (const auto& x : *v) b.values.push_back(number_from_json(x));
  b.train.clear();
  if (const auto t = j.find("train_values"); t != j.end()) {
    if (!t->is_array()) throw InputError("\"train_values\" must be an array of numbers");
    for (const auto& x : *t) b.train.push_back(number_from_json(x));
  }
  b.elapsed.clear();
  if (const auto t = j.find("elapsed_seconds"); t != j.end()) {
    if (!t->is_array()) throw InputError("\"elapsed_seconds\" must be an array of numbers");
    for (const auto& x : *t) b.elapsed.push_back(number_from_json(x));
  }
  const auto opts = j.find("options");
  const EarlyStoppingOptions o =
      opts == j.end() ? base : EarlyStoppingOptions::from_json(*opts, base);
  const auto name = j.find("name");
  return answer(b.values, b.train, b.elapsed, o, name != j.end() ? &*name : nullptr);
}

struct BatchLine {
  long lineno = 0;
  std::string text;  ///< the case; then its answer (one JSON line, no newline)
  bool failed = false;
};

// Answers lines [begin, end) of `chunk` in place.
void answer_lines(std::vector<BatchLine>& chunk, std::size_t begin, std::size_t end,
                  const EarlyStoppingOptions& base) {
  CaseBuffers b;
  for (std::size_t i = begin; i < end; ++i) {
    auto& l = chunk[i];
    try {
      auto fast = run_case_fast(l.text, base, b);
      l.text = fast ? std::move(*fast) : run_case_full(l.text, base, b);
    } catch (const std::exception& e) {
      // One bad case must not hide the answers to the others: report it in place.
      l.failed = true;
      l.text = nlohmann::json{{"error", fmt::format("line {}: {}", l.lineno, e.what())}}.dump();
    }
  }
}

int run_batch(const ReplayArgs& a, const EarlyStoppingOptions& base) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.batch != "-") {
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
    std::fwrite(out.data(), 1, out.size(), stdout);
    out.clear();
  };
  while (std::getline(*in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++cases;
    chunk.push_back(BatchLine{lineno, std::move(line), false});
    if (chunk.size() == chunk_lines) flush_chunk();
  }
  if (in->bad()) throw InputError(fmt::format("cannot read batch input '{}'", a.batch));
  flush_chunk();
  std::fflush(stdout);
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
  values->excludes(log)->excludes(batch);
  log->excludes(batch);
  cmd->add_option("--monitor", args->monitor, "Metric to watch (default val_loss)");
  cmd->add_option("--mode", args->mode, "min, max or auto (default auto: from the name)");
  cmd->add_option("--patience", args->patience,
                  "Epochs without improvement before stopping (default 0)");
  cmd->add_option("--min-delta", args->min_delta,
                  "Smallest change that counts as an improvement (default 0)");
  args->baseline_opt = cmd->add_option("--baseline", args->baseline,
                                       "Improvements reset the wait only if they also beat this");
  cmd->add_option("--start-from-epoch", args->start_from_epoch,
                  "Ignore epochs before this index (default 0)");
  args->stopping_opt = cmd->add_option("--stopping-threshold", args->stopping_threshold,
                                       "Stop once the value is strictly better than this");
  args->divergence_opt = cmd->add_option("--divergence-threshold", args->divergence_threshold,
                                         "Stop once the value is strictly worse than this");
  cmd->add_flag("--check-finite,!--no-check-finite", args->check_finite,
                "Stop at once on nan or inf (default on)");
  cmd->add_option("--rule", args->rule,
                  "patience|gl:ALPHA|pq:ALPHA[:STRIP]|up:S[:STRIP]|robust:STEPS[:PROB], "
                  "comma-separated (default patience)");
  cmd->add_option("--combine", args->combine,
                  "With several rules: stop when any (default) or all of them fire");
  args->max_epochs_opt =
      cmd->add_option("--max-epochs", args->max_epochs, "Stop after this many epochs");
  args->time_budget_opt =
      cmd->add_option("--time-budget,--time-budget-seconds", args->time_budget,
                      "Stop once this many seconds have elapsed (needs a log with 'seconds')");
  cmd->add_option("--train-monitor", args->train_monitor,
                  "Training metric for the pq rule (default loss)");
  cmd->add_flag("--no-strict", args->no_strict,
                "Warn and skip epochs that lack the monitored metric instead of failing");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, &ctx, values, log, batch] {
    if (!values->count() && !log->count() && !batch->count())
      throw OptionError("replay needs a history: --values LIST, --log FILE or --batch FILE");
    const EarlyStoppingOptions options = options_from(*args);
    options.validate();
    if (values->count()) {
      ctx.exit_code = run_values(*args, options);
    } else if (log->count()) {
      ctx.exit_code = run_log(*args, options);
    } else {
      ctx.exit_code = run_batch(*args, options);
    }
  });
}

}  // namespace vigil::cli
