// CSVLogger: writes DIR/metrics.csv (epoch, step, every metric, lr, seconds), one row per epoch,
// rewritten atomically from the run's history so a resumed run never duplicates or loses rows.
#pragma once

#include <filesystem>
#include <string>

#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of CSVLogger (Keras's CSVLogger: filename, separator).
struct CSVLoggerOptions {
  /// The file to write (required), e.g. "runs/x/metrics.csv"; its folder is created.
  std::filesystem::path filename;
  /// Field separator (default ',').
  char separator = ',';

  VIGIL_SETTER(filename)
  VIGIL_SETTER(separator)
};

/// The text of metrics.csv for `history` (header included; empty history gives ""): the format
/// CSVLogger writes, described below.
std::string render_metrics_csv(const std::vector<EpochRecord>& history, char separator = ',');

/// Columns: epoch, step, then every other metric in name order (loss, accuracy, val_*...), then
/// lr and seconds when present. Non-finite values are written nan, inf, -inf. After every epoch
/// the whole file is replaced atomically from ctx.history, which a resume restores from the
/// checkpoint: rows of epochs after the checkpoint (run before a crash) are dropped, none repeat.
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(CSVLoggerOptions options);
  std::string name() const override { return "csv_logger"; }
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_resume(TrainContext& ctx) override;

  /// The CSV text for `history` (header included; empty history gives an empty string).
  std::string render(const std::vector<EpochRecord>& history) const;

 private:
  void write(const TrainContext& ctx) const;
  CSVLoggerOptions options_;
};

}  // namespace vigil::torch
