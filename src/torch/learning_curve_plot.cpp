// LearningCurvePlot: the run's history drawn by plot_run() after every epoch.
#include "vigil/torch/learning_curve_plot.hpp"

#include <fmt/core.h>

#include "vigil/io.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/early_stopping.hpp"

namespace vigil::torch {

LearningCurvePlot::LearningCurvePlot(LearningCurvePlotOptions options)
    : options_(std::move(options)) {
  if (options_.run_dir.empty()) throw OptionError("LearningCurvePlot needs a run_dir");
  if (options_.filename.empty()) options_.filename = options_.run_dir / "learning_curve.svg";
  if (options_.metric.empty()) throw OptionError("LearningCurvePlot needs a metric");
  if (options_.width < 200 || options_.height < 150)
    throw OptionError(
        fmt::format("LearningCurvePlot size {} x {} is too small (at least 200 x 150)",
                    options_.width, options_.height));
}

void LearningCurvePlot::draw(const TrainContext& ctx) {
  if (ctx.history.empty()) return;
  try {
    RunPlotOptions o;
    o.with_metric(options_.metric).with_size(options_.width, options_.height);
    std::error_code ec;
    if (!std::filesystem::exists(options_.run_dir / "run.json", ec) && ctx.callbacks != nullptr)
      if (auto stopping = ctx.callbacks->find<EarlyStopping>())
        o.with_early_stopping(stopping->stopper().options());
    // The same text CSVLogger writes to metrics.csv, so the picture is the one `vigil plot`
    // draws from that file.
    const auto log = MetricsLog::parse_csv(render_metrics_csv(ctx.history), "training history");
    RunPlot plot = plot_run(options_.run_dir, log, o);
    const auto parent = options_.filename.parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    atomic_write_file(options_.filename, plot.svg);
    last_ = std::move(plot);
    warning_.clear();
  } catch (const std::exception& e) {
    const std::string w = fmt::format("cannot draw {}: {}", options_.filename.string(), e.what());
    if (w != warning_) fmt::print(stderr, "vigil: warning: {}\n", w);
    warning_ = w;
  }
}

void LearningCurvePlot::on_epoch_end(TrainContext& ctx, int, const Logs&) {
  draw(ctx);
}

void LearningCurvePlot::on_resume(TrainContext& ctx) {
  draw(ctx);
}

void LearningCurvePlot::on_train_end(TrainContext& ctx, const Logs&) {
  draw(ctx);
}

}  // namespace vigil::torch
