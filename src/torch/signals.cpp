// The stop-signal handler and the globals a signal handler cannot do without.
#include "vigil/torch/signals.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>

#include "vigil/error.hpp"

namespace vigil::torch {

namespace {

// Written by the handler, polled between steps: a handler can reach nothing but globals.
volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_second_exits = 1;
std::atomic<bool> g_installed{false};
// When the first signal came and how long a repeat of it counts as the same request (ns).
std::atomic<std::int64_t> g_first_ns{0};
std::atomic<std::int64_t> g_repeat_window_ns{0};
static_assert(std::atomic<std::int64_t>::is_always_lock_free, "a handler needs lock-free atomics");

// clock_gettime is async-signal-safe.
std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Fixed texts: a handler may call write(2) but nothing that formats or allocates.
constexpr char kSecondSigint[] =
    "vigil: a second SIGINT: exiting at once (the checkpoints already written are intact)\n";
constexpr char kSecondSigterm[] =
    "vigil: a second SIGTERM: exiting at once (the checkpoints already written are intact)\n";
constexpr char kSecondOther[] =
    "vigil: a second stop signal: exiting at once (the checkpoints already written are intact)\n";

extern "C" void on_stop_signal(int sig) {
  // _exit is async-signal-safe; every checkpoint write is atomic, so leaving mid-write is safe.
  if (g_signal != 0 && g_second_exits != 0) {
    // `timeout` signals its child and then the child's whole process group, so one request can
    // arrive twice within microseconds; only a later one, or another signal, means "now".
    if (sig == g_signal && monotonic_ns() - g_first_ns.load() < g_repeat_window_ns.load()) return;
    const char* text = sig == SIGINT    ? kSecondSigint
                       : sig == SIGTERM ? kSecondSigterm
                                        : kSecondOther;
    const std::size_t n = sig == SIGINT    ? sizeof kSecondSigint - 1
                          : sig == SIGTERM ? sizeof kSecondSigterm - 1
                                           : sizeof kSecondOther - 1;
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, text, n);
    _exit(128 + sig);
  }
  if (g_signal == 0) g_first_ns = monotonic_ns();
  g_signal = sig;
}

}  // namespace

int received_stop_signal() {
  return g_signal;
}

StopSignals::StopSignals(StopSignalsOptions options) {
  std::vector<int> sigs = options.signals;
  if (options.extra_signal != 0) sigs.push_back(options.extra_signal);
  for (int s : sigs)
    if (s <= 0 || s >= NSIG || s == SIGKILL || s == SIGSTOP)
      throw OptionError(fmt::format("StopSignals: {} cannot be caught", signal_name(s)));
  if (options.repeat_window.count() < 0)
    throw OptionError("StopSignals: repeat_window must not be negative");
  if (g_installed.exchange(true))
    throw OptionError("StopSignals: another one is installed; keep one for the process");
  g_signal = 0;
  g_second_exits = options.second_exits ? 1 : 0;
  g_repeat_window_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options.repeat_window).count();
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : sigs) {
    struct sigaction old {};
    sigaction(s, &sa, &old);
    installed_.push_back(s);
    previous_.push_back(old);
  }
}

StopSignals::~StopSignals() {
  for (std::size_t i = 0; i < installed_.size(); ++i)
    sigaction(installed_[i], &previous_[i], nullptr);
  g_installed = false;
}

int StopSignals::received() const {
  return g_signal;
}

std::function<std::optional<std::string>()> StopSignals::interrupt() const {
  return []() -> std::optional<std::string> {
    const int sig = g_signal;
    if (sig == 0) return std::nullopt;
    return "interrupted by " + signal_name(sig);
  };
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGHUP:
      return "SIGHUP";
    default:
      return fmt::format("signal {}", sig);
  }
}

}  // namespace vigil::torch
