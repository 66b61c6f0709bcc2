// The learning curve of a run directory: metrics.csv drawn with the run's best and stop epochs
// and its checkpoints, as `vigil plot RUN_DIR` and the LearningCurve callback both draw it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "vigil/early_stopping.hpp"
#include "vigil/learning_curve.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// Options of plot_run().
struct RunPlotOptions {
  /// Metric to plot with its val_ counterpart, e.g. "loss" or "accuracy" (default "loss").
  std::string metric = "loss";
  /// Size of the picture in pixels (defaults 800 x 480).
  int width = 800;
  int height = 480;
  /// Early-stopping options replayed over the log to mark the best and stop epochs. Default:
  /// RUN_DIR/run.json's "early_stopping" when the file has it; otherwise only the best epoch of
  /// the plotted validation curve (direction from its name) is marked.
  std::optional<EarlyStoppingOptions> early_stopping;

  VIGIL_SETTER(metric)
  RunPlotOptions& with_size(int w, int h) {
    width = w;
    height = h;
    return *this;
  }
  VIGIL_SETTER(early_stopping)
};

/// A drawn run.
struct RunPlot {
  std::string svg;                   ///< the SVG document
  std::vector<std::string> columns;  ///< the curves drawn, training first
  std::size_t epochs = 0;            ///< rows of the log
  LearningCurveOptions marks;        ///< best_epoch, stop_epoch and checkpoint_epochs used
  /// Problems that did not stop the drawing (an unreadable manifest.json or run.json, a replay
  /// that failed): one sentence each, for the caller to show.
  std::vector<std::string> warnings;
};

/// Draws `log` as the learning curve of the run in `run_dir`: checkpoint ticks from
/// RUN_DIR/checkpoints/manifest.json, best and stop epochs as RunPlotOptions says. Throws
/// InputError when the log lacks the metric (naming the columns it has) or has no finite value.
RunPlot plot_run(const std::filesystem::path& run_dir, const MetricsLog& log,
                 const RunPlotOptions& options = {});

/// The same over RUN_DIR/metrics.csv; throws InputError when the folder or the file is missing.
RunPlot plot_run(const std::filesystem::path& run_dir, const RunPlotOptions& options = {});

}  // namespace vigil
