// The stop-signal handler of `vigil train` and the one global it needs.
#include "torch_signals.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <csignal>

namespace vigil::cli {

namespace {

// The one global of the program: written by the signal handler, polled between batches.
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  // A second signal means "now": _exit is async-signal-safe, and every checkpoint write is
  // atomic (temporary name + rename), so leaving mid-write corrupts nothing.
  if (g_signal != 0) _exit(128 + sig);
  g_signal = sig;
}

}  // namespace

int received_stop_signal() {
  return g_signal;
}

StopSignals::StopSignals() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

std::string signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : fmt::format("signal {}", sig);
}

}  // namespace vigil::cli
