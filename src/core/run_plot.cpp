// A run directory's learning curve: metrics, early-stopping replay and checkpoint ticks.
#include "vigil/run_plot.hpp"

#include <cmath>
#include <fstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace vigil {
namespace {

namespace fs = std::filesystem;

// A missing file is not a problem (a run without checkpoints); an unreadable one is a warning.
std::optional<nlohmann::json> read_json(const fs::path& path, std::vector<std::string>& warnings) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    warnings.push_back(fmt::format("{} is not valid JSON, ignored ({})", path.string(), e.what()));
    return std::nullopt;
  }
}

std::vector<long> checkpoint_epochs(const fs::path& run_dir, std::vector<std::string>& warnings) {
  std::vector<long> out;
  const auto manifest = read_json(run_dir / "checkpoints" / "manifest.json", warnings);
  if (!manifest || !manifest->is_object()) return out;
  const auto list = manifest->find("checkpoints");
  if (list == manifest->end() || !list->is_array()) return out;
  for (const auto& c : *list) {
    if (!c.is_object()) continue;
    const auto e = c.find("epoch");
    if (e != c.end() && e->is_number_integer()) out.push_back(e->get<long>());
  }
  return out;
}

std::vector<long> epochs_of(const MetricsLog& log) {
  std::vector<long> epochs(log.rows());
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    epochs[i] = static_cast<long>(i);
    if (log.has_value(i, "epoch") && std::isfinite(log.column("epoch")[i]))
      epochs[i] = static_cast<long>(log.column("epoch")[i]);
  }
  return epochs;
}

// Running sum of the seconds column, so that a time budget stops where training stopped.
std::vector<double> elapsed_of(const MetricsLog& log) {
  std::vector<double> out;
  if (!log.has_column("seconds")) return out;
  double sum = 0;
  for (double s : log.column("seconds")) {
    if (std::isfinite(s)) sum += s;
    out.push_back(sum);
  }
  return out;
}

// The run's own early-stopping options replayed over its log give the best and stop epochs
// exactly as training saw them.
void mark_by_replay(const MetricsLog& log, EarlyStoppingOptions options, LearningCurveOptions& o,
                    std::vector<std::string>& warnings) {
  try {
    const auto rows = log.rows_as_logs();
    const auto epochs = epochs_of(log);
    const auto elapsed = elapsed_of(log);
    const auto r = replay(rows, options.with_strict(false), epochs, elapsed);
    o.best_epoch = r.best_epoch;
    if (r.stopped) o.stop_epoch = r.stop_epoch;
  } catch (const Error& e) {
    warnings.push_back(fmt::format("cannot replay the run's early stopping: {}", e.what()));
  }
}

// Without early-stopping options: the best epoch of the validation curve (or the only curve),
// in the direction its name implies.
void mark_best_by_name(const MetricsLog& log, const std::vector<std::string>& names,
                       LearningCurveOptions& o) {
  const std::string& name = names.back();
  Mode mode = Mode::Min;
  try {
    mode = resolve_mode(name, "auto");
  } catch (const OptionError&) {
    return;  // direction unknown: no best to mark
  }
  const auto values = log.column(name);
  const auto epochs = epochs_of(log);
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i]) && (!best || is_improvement(mode, values[i], values[*best], 0.0)))
      best = i;
  if (best) o.best_epoch = epochs[*best];
}

}  // namespace

RunPlot plot_run(const fs::path& run_dir, const MetricsLog& log, const RunPlotOptions& options) {
  RunPlot p;
  p.columns = learning_curve_columns(log, options.metric);
  p.epochs = log.rows();
  p.marks.with_size(options.width, options.height)
      .with_checkpoint_epochs(checkpoint_epochs(run_dir, p.warnings));
  std::optional<EarlyStoppingOptions> stopping = options.early_stopping;
  if (!stopping) {
    const auto run = read_json(run_dir / "run.json", p.warnings);
    if (run && run->is_object() && run->contains("early_stopping")) {
      try {
        stopping = EarlyStoppingOptions::from_json(run->at("early_stopping"));
      } catch (const Error& e) {
        p.warnings.push_back(fmt::format("{}: bad early_stopping options, ignored ({})",
                                         (run_dir / "run.json").string(), e.what()));
      }
    }
  }
  if (stopping)
    mark_by_replay(log, *stopping, p.marks, p.warnings);
  else
    mark_best_by_name(log, p.columns, p.marks);
  p.svg = render_learning_curve(log, options.metric, p.marks);
  return p;
}

RunPlot plot_run(const fs::path& run_dir, const RunPlotOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    throw InputError(fmt::format("run folder '{}' does not exist", run_dir.string()));
  const fs::path metrics = run_dir / "metrics.csv";
  if (!fs::exists(metrics, ec))
    throw InputError(fmt::format(
        "'{}' has no metrics.csv: is it the run directory of a training run?", run_dir.string()));
  return plot_run(run_dir, MetricsLog::read(metrics), options);
}

}  // namespace vigil
