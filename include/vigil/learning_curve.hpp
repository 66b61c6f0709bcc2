// Learning-curve plots: an SVG of a metric and its validation counterpart per epoch, with the
// best and stop epochs and the saved checkpoints marked. Pure C++, no plotting library.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// One line of the plot: a name for the legend and one value per epoch. NaN (missing) values
/// are left out of the line; infinite ones too, marked by a cross at the top or bottom edge.
struct CurveSeries {
  std::string name;
  std::vector<double> values;
};

/// What to draw besides the curves.
struct LearningCurveOptions {
  /// Title above the plot (default: "<first curve> and <second curve> per epoch").
  std::string title;
  /// Label of the y axis (default: the first curve's name).
  std::string y_label;
  /// Size of the picture in pixels (defaults 800 x 480; at least 200 x 150).
  int width = 800;
  int height = 480;
  /// Epoch with the best monitored value: a dashed vertical line and a dot on the last curve
  /// (default: none).
  std::optional<long> best_epoch;
  /// Epoch after which training stopped: a solid vertical line (default: none).
  std::optional<long> stop_epoch;
  /// Epochs with a saved checkpoint: ticks on the x axis (default: none).
  std::vector<long> checkpoint_epochs;

  VIGIL_SETTER(title)
  VIGIL_SETTER(y_label)
  LearningCurveOptions& with_size(int w, int h) {
    width = w;
    height = h;
    return *this;
  }
  VIGIL_SETTER(best_epoch)
  VIGIL_SETTER(stop_epoch)
  VIGIL_SETTER(checkpoint_epochs)
};

/// Renders the curves against `epochs` (one x value per entry of every series) as a standalone
/// SVG document. Each curve is one `<polyline class="curve" data-name="...">` with a point per
/// finite value; markers carry class best-epoch, stop-epoch or checkpoint and data-epoch.
/// Throws InputError when there are no curves, a series' length differs from `epochs`, or no
/// value is finite; OptionError for a size below the minimum.
std::string render_learning_curve(const std::vector<long>& epochs,
                                  const std::vector<CurveSeries>& curves,
                                  const LearningCurveOptions& options = {});

/// The pair of columns to plot for `metric`: the training one ("loss" for "loss" or
/// "val_loss") and the validation one ("val_loss"), those that `log` has, training first.
/// Throws InputError naming the columns that exist when it has neither.
std::vector<std::string> learning_curve_columns(const MetricsLog& log, const std::string& metric);

/// render_learning_curve over a metrics log: x from its "epoch" column (or the row number),
/// the curves from learning_curve_columns(log, metric).
std::string render_learning_curve(const MetricsLog& log, const std::string& metric,
                                  const LearningCurveOptions& options = {});

}  // namespace vigil
