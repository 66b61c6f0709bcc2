// replay(): a recorded metric history through a fresh EarlyStopper, and its summary.
#include "vigil/replay.hpp"

#include <fmt/format.h>

#include "detail/text.hpp"
#include "vigil/early_stopping.hpp"

namespace vigil {
namespace {

using detail::human_number;
using detail::plural;

nlohmann::json opt_json(const std::optional<long>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

ReplayResult finish(const EarlyStopper& s, long epochs_run) {
  ReplayResult r;
  r.stopped = s.stopped();
  r.stop_epoch = s.stop_epoch();
  r.best_epoch = s.best_epoch();
  r.best_value = s.best_value();
  r.reason_kind = s.stop_reason_kind();
  r.epochs_run = epochs_run;
  if (r.stopped) {
    r.reason = s.stop_reason();
  } else if (epochs_run == 0) {
    r.reason = "did not stop: the history is empty";
  } else if (!r.best_epoch) {
    r.reason = fmt::format("did not stop: none of the {} was monitored (start_from_epoch {})",
                           plural(epochs_run, "epoch"), s.options().start_from_epoch);
  } else {
    r.reason =
        fmt::format("did not stop within {}; best {} = {} at epoch {}", plural(epochs_run, "epoch"),
                    s.options().monitor, human_number(*r.best_value), *r.best_epoch);
  }
  return r;
}

void check_lengths(std::size_t n, std::size_t other, std::string_view what) {
  if (other != 0 && other != n)
    throw InputError(fmt::format("{} has {} entries but there are {} epochs", what, other, n));
}

}  // namespace

nlohmann::json ReplayResult::to_json() const {
  return nlohmann::json{
      {"stopped", stopped},
      {"stop_epoch", opt_json(stop_epoch)},
      {"best_epoch", opt_json(best_epoch)},
      {"best_value", best_value ? number_to_json(*best_value) : nlohmann::json(nullptr)},
      {"reason", reason},
      {"reason_kind", reason_kind.empty() ? nlohmann::json(nullptr) : nlohmann::json(reason_kind)},
  };
}

namespace {

// Feeds epochs 0..n-1 to a fresh stopper through `feed(stopper, i)` until one stops.
template <class Feed>
ReplayResult run_replay(const EarlyStoppingOptions& options, std::size_t n, Feed feed) {
  EarlyStopper s(options);
  long run = 0;
  std::vector<std::string> warnings;
  for (std::size_t i = 0; i < n; ++i) {
    StopDecision d = feed(s, i);
    ++run;
    if (!d.warning.empty()) warnings.push_back(std::move(d.warning));
    if (d.stop) break;
  }
  auto r = finish(s, run);
  r.warnings = std::move(warnings);
  return r;
}

}  // namespace

ReplayResult replay(std::span<const double> values, const EarlyStoppingOptions& options,
                    std::span<const double> train_values, std::span<const double> elapsed_seconds) {
  check_lengths(values.size(), train_values.size(), "the training series");
  check_lengths(values.size(), elapsed_seconds.size(), "the elapsed-time series");
  return run_replay(options, values.size(), [&](EarlyStopper& s, std::size_t i) {
    std::optional<double> train;
    if (!train_values.empty()) train = train_values[i];
    return s.update(static_cast<long>(i), values[i],
                    elapsed_seconds.empty() ? 0.0 : elapsed_seconds[i], train);
  });
}

ReplayResult replay(std::span<const Logs> rows, const EarlyStoppingOptions& options,
                    std::span<const long> epochs, std::span<const double> elapsed_seconds) {
  check_lengths(rows.size(), epochs.size(), "the epoch column");
  check_lengths(rows.size(), elapsed_seconds.size(), "the elapsed-time series");
  return run_replay(options, rows.size(), [&](EarlyStopper& s, std::size_t i) {
    const long epoch = epochs.empty() ? static_cast<long>(i) : epochs[i];
    return s.on_epoch_end(epoch, rows[i], elapsed_seconds.empty() ? 0.0 : elapsed_seconds[i]);
  });
}

}  // namespace vigil
