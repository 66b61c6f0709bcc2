// Small string helpers shared by vigil's parsers and messages (not part of the public API).
#pragma once

#include <cctype>
#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace vigil::detail {

/// `s` without leading and trailing white space.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

/// The shortest text that reads back to the same double; non-finite values as "nan", "inf" and
/// "-inf" (the spellings vigil's JSON and CSV readers accept).
inline std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

/// "1 epoch", "3 epochs".
inline std::string plural(long n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

}  // namespace vigil::detail
