// Small string helpers shared by vigil::core's parsers (not part of the public API).
#pragma once

#include <cctype>
#include <string_view>

namespace vigil::detail {

/// `s` without leading and trailing white space.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace vigil::detail
