// ProgressBar callback: training progress on the console through the core ProgressDisplay, a live
// bar with rate and ETA on a terminal, one plain line per epoch otherwise (Keras's ProgbarLogger).
#pragma once

#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include "vigil/progress.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of ProgressBar.
struct ProgressBarOptions {
  /// Live bar or plain lines, bar width, redraw rate, digits (default ProgressOptions{}: a live
  /// bar when the output is a terminal, isatty() decides; set display.live to force either).
  ProgressOptions display;
  /// Text appended to an epoch's line, e.g. what a ModelCheckpoint did (default: none). Called
  /// in on_epoch_end, so callbacks before this one in the list have already run.
  std::function<std::string(const TrainContext&, int epoch)> epoch_note;

  VIGIL_SETTER(display)
  /// Shortcut for display.live: true = live bar, false = one line per epoch, nullopt = isatty.
  ProgressBarOptions& with_live(std::optional<bool> v) {
    display.live = v;
    return *this;
  }
  VIGIL_SETTER(epoch_note)
};

/// Shows each epoch as "epoch 6 (7 of 30)" (0-based index, then the 1-based count, so neither
/// reading is ambiguous). While an epoch runs, the live bar shows batches done, batches per
/// second, the ETA of the epoch and the mean of the batch metrics so far; the epoch's final line
/// shows its metrics (training and val_*, lr) and the epoch_note. Put it after the callbacks
/// whose decisions the note reports.
class ProgressBar : public Callback {
 public:
  /// Writes to `out` (default stdout; not owned).
  explicit ProgressBar(ProgressBarOptions options = {}, std::FILE* out = stdout);
  /// Writes to a stream (never taken for a terminal unless options.display.live says so).
  ProgressBar(std::ostream& out, ProgressBarOptions options = {});

  std::string name() const override { return "progress_bar"; }
  void on_epoch_begin(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_interrupt(TrainContext& ctx) override;
  void on_train_end(TrainContext& ctx, const Logs& logs) override;

  /// Prints a line of its own without garbling the bar (warnings, notices).
  void message(std::string_view text) { display_.message(text); }
  /// Whether the live bar is in use.
  bool live() const { return display_.live(); }

 private:
  ProgressBarOptions options_;
  ProgressDisplay display_;
  Logs sums_;  // sums of the batch metrics of the current epoch
  long batches_ = 0;
};

}  // namespace vigil::torch
