// `vigil plot RUN_DIR`: draws the run's learning curve (SVG) with its best and stop epochs and
// its checkpoints, from metrics.csv, checkpoints/manifest.json and run.json.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "vigil/early_stopping.hpp"
#include "vigil/io.hpp"
#include "vigil/learning_curve.hpp"
#include "vigil/metrics_log.hpp"

namespace vigil::cli {
namespace {

namespace fs = std::filesystem;

struct PlotArgs {
  std::string run_dir;
  std::string metric = "loss";
  std::string out;
  int width = 800;
  int height = 480;
};

std::optional<nlohmann::json> read_json(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fmt::print(stderr, "vigil: warning: {} is not valid JSON, ignored ({})\n", path.string(),
               e.what());
    return std::nullopt;
  }
}

std::vector<long> checkpoint_epochs(const fs::path& run_dir) {
  std::vector<long> out;
  const auto manifest = read_json(run_dir / "checkpoints" / "manifest.json");
  if (!manifest) return out;
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

// The run's own early-stopping options (run.json) replayed over its log give the best and stop
// epochs exactly as training saw them.
void mark_from_run(const fs::path& run_dir, const MetricsLog& log, LearningCurveOptions& o) {
  const auto run = read_json(run_dir / "run.json");
  if (!run || !run->is_object() || !run->contains("early_stopping")) return;
  try {
    auto options = EarlyStoppingOptions::from_json(run->at("early_stopping"));
    const auto rows = log.rows_as_logs();
    const auto epochs = epochs_of(log);
    const auto r = replay(rows, options.with_strict(false), epochs);
    o.best_epoch = r.best_epoch;
    if (r.stopped) o.stop_epoch = r.stop_epoch;
  } catch (const Error& e) {
    fmt::print(stderr, "vigil: warning: cannot replay the run's early stopping: {}\n", e.what());
  }
}

// Without run.json: the best epoch of the validation curve (or the only curve), by its name.
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

void run_plot(const PlotArgs& a) {
  const fs::path dir = a.run_dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(fmt::format("run folder '{}' does not exist", a.run_dir));
  const fs::path metrics = dir / "metrics.csv";
  if (!fs::exists(metrics, ec))
    throw InputError(
        fmt::format("'{}' has no metrics.csv: is it a vigil train --run-dir folder?", a.run_dir));
  const auto log = MetricsLog::read(metrics);
  const auto names = learning_curve_columns(log, a.metric);

  LearningCurveOptions o;
  o.with_size(a.width, a.height).with_checkpoint_epochs(checkpoint_epochs(dir));
  const fs::path run_json = dir / "run.json";
  if (fs::exists(run_json, ec)) {
    mark_from_run(dir, log, o);
  } else {
    mark_best_by_name(log, names, o);
  }
  const std::string svg = render_learning_curve(log, a.metric, o);
  const fs::path out = a.out.empty() ? dir / "learning_curve.svg" : fs::path(a.out);
  atomic_write_file(out, svg);
  fmt::print("wrote {} ({} of {} over {} epochs{}{}{})\n", out.string(),
             names.size() == 2 ? "curves" : "the curve", fmt::join(names, " and "), log.rows(),
             o.best_epoch ? fmt::format("; best epoch {}", *o.best_epoch) : "",
             o.stop_epoch ? fmt::format("; stopped after epoch {}", *o.stop_epoch) : "",
             o.checkpoint_epochs.empty()
                 ? ""
                 : fmt::format("; {} checkpoints", o.checkpoint_epochs.size()));
}

}  // namespace

void add_plot_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<PlotArgs>();
  auto* cmd = app.add_subcommand(
      "plot", "Draw a run's learning curve (SVG) with its best and stop epochs and checkpoints");
  cmd->add_option("run_dir", args->run_dir, "A vigil train --run-dir folder")->required();
  cmd->add_option("--metric", args->metric,
                  "Metric to plot with its val_ counterpart, e.g. loss or accuracy (default loss)");
  cmd->add_option("--out", args->out,
                  "Where to write the SVG (default RUN_DIR/learning_curve.svg)");
  cmd->add_option("--width", args->width, "Picture width in pixels (default 800)");
  cmd->add_option("--height", args->height, "Picture height in pixels (default 480)");
  cmd->callback([args, &ctx] {
    run_plot(*args);
    ctx.exit_code = 0;
  });
}

}  // namespace vigil::cli
