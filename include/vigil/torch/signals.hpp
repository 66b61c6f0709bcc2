// StopSignals: SIGINT, SIGTERM (and e.g. SIGUSR1, which schedulers send before preemption) ask a
// training loop to stop at the next step boundary, where it checkpoints; never in the handler.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vigil/setter.hpp"

namespace vigil::torch {

/// Options of StopSignals.
struct StopSignalsOptions {
  /// The signals that ask training to stop (default SIGINT and SIGTERM).
  std::vector<int> signals = {SIGINT, SIGTERM};
  /// One more such signal, e.g. SIGUSR1 (Slurm's `--signal=USR1@120`); 0 = none (default 0).
  int extra_signal = 0;
  /// A second signal exits the process at once with 128 + signal (default true). Checkpoint
  /// writes are atomic (temporary name + rename), so leaving in the middle of one loses nothing.
  bool second_exits = true;
  /// A repeat of the signal already received within this long of it is the same request, not a
  /// second one (default 1 s): `timeout` signals its child and then the child's process group,
  /// so one SIGTERM can arrive twice, microseconds apart. Another signal always counts.
  std::chrono::milliseconds repeat_window{1000};

  VIGIL_SETTER(signals)
  VIGIL_SETTER(extra_signal)
  VIGIL_SETTER(second_exits)
  VIGIL_SETTER(repeat_window)
};

/// Installs the handler for the lifetime of the object (forgetting a signal received before);
/// the previous handlers come back on destruction. The handler only records the signal: pass
/// interrupt() to TrainerOptions::interrupt or TrainLoopOptions::interrupt, which poll it
/// between steps. One StopSignals may be alive at a time (a signal handler has one global).
class StopSignals {
 public:
  /// Throws OptionError for an invalid signal or when another StopSignals is alive.
  explicit StopSignals(StopSignalsOptions options = {});
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// The signal received since this object was installed, or 0.
  int received() const;
  /// Returns "interrupted by SIGTERM" once a signal came, nullopt before.
  std::function<std::optional<std::string>()> interrupt() const;

 private:
  std::vector<int> installed_;
  std::vector<struct sigaction> previous_;
};

/// The stop signal received since the newest StopSignals was installed (0 = none); still
/// readable after it was destroyed, e.g. to exit with 128 + signal.
int received_stop_signal();

/// "SIGINT", "SIGTERM", "SIGUSR1", ... or "signal N".
std::string signal_name(int sig);

}  // namespace vigil::torch
