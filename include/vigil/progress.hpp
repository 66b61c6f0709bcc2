// Training progress display: on a terminal a live bar redrawn in place (batches, rate, ETA,
// latest metrics); otherwise one plain line per epoch. The clock is injectable for tests.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "vigil/monitor.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// Options of ProgressDisplay.
struct ProgressOptions {
  /// Live bar (true) or one line per epoch (false). Default: live when writing to a terminal
  /// (a std::FILE* for which isatty() holds); an ostream is never taken for a terminal.
  std::optional<bool> live;
  /// Characters between the brackets of the bar (default 30, at least 5).
  int bar_width = 30;
  /// Shortest time between two redraws of the live bar in seconds, so drawing never slows
  /// training down (default 0.1). The last batch of an epoch is always drawn.
  double min_redraw_seconds = 0.1;
  /// Significant digits of metric values (default 4).
  int precision = 4;

  VIGIL_SETTER(live)
  VIGIL_SETTER(bar_width)
  VIGIL_SETTER(min_redraw_seconds)
  VIGIL_SETTER(precision)
};

/// Shows training progress. Feed it the loop's events; epochs are 0-based as everywhere in
/// vigil ("epoch 3 (4 of 30)"). Not thread-safe: call it from the training loop only.
class ProgressDisplay {
 public:
  /// Seconds on a monotonic clock (default: std::chrono::steady_clock).
  using Clock = std::function<double()>;

  /// Writes to `out` (not owned; flushed after every write).
  explicit ProgressDisplay(std::FILE* out, ProgressOptions options = {}, Clock clock = {});
  /// Writes to `out` (not owned; flushed after every write).
  explicit ProgressDisplay(std::ostream& out, ProgressOptions options = {}, Clock clock = {});

  /// Starts an epoch; `epochs_total` and `batches_total` are shown when known. `first_batch` is
  /// where the epoch starts (a run resumed in the middle of an epoch): the bar starts there and
  /// the rate and ETA count only the batches run now.
  void on_epoch_begin(long epoch, std::optional<long> epochs_total = std::nullopt,
                      std::optional<long> batches_total = std::nullopt, long first_batch = 0);
  /// A batch (0-based within the epoch) finished with these running metrics.
  void on_batch_end(long batch, const Logs& logs);
  /// The epoch finished with these metrics (training and validation): the final line, ending
  /// with `note` when not empty (e.g. "saved epoch-0003 (best)").
  void on_epoch_end(long epoch, const Logs& logs, std::string_view note = {});
  /// Ends a bar left unfinished (training interrupted in the middle of an epoch) with a newline,
  /// so that what is printed next starts on a line of its own. Does nothing otherwise.
  void finish();
  /// Prints a line of its own (a warning, "saved checkpoint ...") without garbling the bar.
  void message(std::string_view text);

  /// What one epoch line is called and what its batches are (singular, plural): ("epoch",
  /// "batch", "batches") by default; ("validation", "step", "steps") for a loop that validates
  /// every n optimizer steps.
  void set_names(std::string period, std::string batch, std::string batches);

  /// Whether the live bar is in use.
  bool live() const { return live_; }

  /// "0:07", "12:05", "1:02:03" for a number of seconds (rounded; negative or non-finite "?").
  static std::string format_duration(double seconds);

 private:
  void write(std::string_view text);
  void draw(bool final_draw, std::string_view note = {});
  std::string metrics_text(const Logs& logs) const;

  std::function<void(std::string_view)> sink_;
  std::string period_ = "epoch";
  std::string batch_ = "batch";
  std::string batches_ = "batches";
  ProgressOptions options_;
  Clock clock_;
  bool live_ = false;

  long epoch_ = 0;
  std::optional<long> epochs_total_;
  std::optional<long> batches_total_;
  long batches_done_ = 0;
  long first_batch_ = 0;
  double epoch_start_ = 0;
  double last_draw_ = 0;
  bool drawn_ = false;
  std::size_t last_width_ = 0;
  Logs latest_;
};

}  // namespace vigil
