// Formatting shared by the CLI's human-readable outputs.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace vigil::cli {

/// "512 B", "1.5 MiB", ... for a byte count.
inline std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace vigil::cli
