// Small string helpers shared by vigil's parsers and messages (not part of the public API).
#pragma once

#include <cctype>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

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

/// A value for people to read: 6 significant digits, which tell the learning curves of training
/// apart, where the 17 of format_number() bury them (JSON and CSV keep every digit).
inline std::string human_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.6g}", v);
}

/// The names joined by ", ", or the first `shown` of them and how many there are in all: a
/// message listing what exists stays one readable line when there are thousands.
inline std::string name_list(const std::vector<std::string>& names, std::size_t shown = 8) {
  if (names.empty()) return "none";
  if (names.size() <= shown) return fmt::format("{}", fmt::join(names, ", "));
  const std::vector<std::string> head(names.begin(),
                                      names.begin() + static_cast<std::ptrdiff_t>(shown));
  return fmt::format("{}, ... ({} in all)", fmt::join(head, ", "), names.size());
}

/// `s` with the five XML special characters as entities, for SVG text and attributes.
inline std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// "1 epoch", "3 epochs".
inline std::string plural(long n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

}  // namespace vigil::detail
