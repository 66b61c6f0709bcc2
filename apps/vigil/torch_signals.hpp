// SIGINT/SIGTERM during `vigil train`: the first one asks training to stop after the current
// batch (with a checkpoint), a second one exits at once.
#pragma once

#include <signal.h>

#include <string>

namespace vigil::cli {

/// The stop signal received since the newest StopSignals was installed, or 0.
int received_stop_signal();

/// Installs the handler for SIGINT and SIGTERM for the lifetime of the object (and forgets a
/// signal received before); the previous handlers come back on destruction.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

/// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int sig);

}  // namespace vigil::cli
