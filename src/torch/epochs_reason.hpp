// The stop reason of a training that ran out of epochs (private to vigil's training loops).
#pragma once

#include <string>

#include <fmt/core.h>

namespace vigil::torch::detail {

/// Resumed with fewer epochs than the run had already done, it did not "complete all 2 epochs".
inline std::string completed_epochs_reason(long done, long asked) {
  if (done > asked)
    return fmt::format("it had already run {} epochs, more than the {} asked", done, asked);
  return fmt::format("it completed all {} epochs", asked);
}

}  // namespace vigil::torch::detail
