// LearningCurvePlot callback: after every epoch, redraws DIR/learning_curve.svg (training and
// validation curves, best and stop epochs, checkpoint ticks), the picture `vigil plot DIR` draws.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "vigil/early_stopping.hpp"
#include "vigil/run_plot.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of LearningCurvePlot.
struct LearningCurvePlotOptions {
  /// The run directory (required): checkpoint ticks come from its checkpoints/manifest.json,
  /// and its run.json's "early_stopping" options (when present) mark the best and stop epochs.
  std::filesystem::path run_dir;
  /// Where to write the SVG (default: RUN_DIR/learning_curve.svg, where `vigil plot` writes).
  std::filesystem::path filename;
  /// Metric to plot with its val_ counterpart (default "loss").
  std::string metric = "loss";
  /// Size of the picture in pixels (defaults 800 x 480).
  int width = 800;
  int height = 480;

  VIGIL_SETTER(run_dir)
  VIGIL_SETTER(filename)
  VIGIL_SETTER(metric)
  LearningCurvePlotOptions& with_size(int w, int h) {
    width = w;
    height = h;
    return *this;
  }
};

/// Draws the run's history (the rows CSVLogger writes to metrics.csv, rendered in memory, so the
/// order against a CSVLogger does not matter) with plot_run(), the code of `vigil plot`, and
/// replaces the SVG atomically. The best and stop epochs come from replaying early-stopping
/// options over the history: run.json's when RUN_DIR has one (as `vigil plot` does), otherwise
/// those of the EarlyStopping callback in the list, otherwise the best of the validation curve.
/// Redrawn after every epoch, after a resume (rows of discarded epochs disappear) and when
/// training ends (put it after ModelCheckpoint: its on_train_end waits for async saves, so the
/// last ticks are there). A plot that cannot be drawn or written never stops training: the
/// problem is kept in last_warning() and printed to stderr once.
class LearningCurvePlot : public Callback {
 public:
  explicit LearningCurvePlot(LearningCurvePlotOptions options);

  std::string name() const override { return "learning_curve_plot"; }
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_resume(TrainContext& ctx) override;
  void on_train_end(TrainContext& ctx, const Logs& logs) override;

  /// The SVG file written.
  const std::filesystem::path& filename() const { return options_.filename; }
  /// The last drawing (nullopt before the first one succeeded).
  const std::optional<RunPlot>& last_plot() const { return last_; }
  /// Why the last drawing failed, or "" when it succeeded.
  const std::string& last_warning() const { return warning_; }

 private:
  void draw(const TrainContext& ctx);
  LearningCurvePlotOptions options_;
  std::optional<RunPlot> last_;
  std::string warning_;
};

}  // namespace vigil::torch
