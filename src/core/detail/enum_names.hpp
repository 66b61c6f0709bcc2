// Enums written as names (options, JSON, messages): one table of (value, name) pairs serves
// both directions, so that a name is spelt once (not part of the public API).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace vigil::detail {

/// A value and the name it is written as.
template <class E>
using EnumName = std::pair<E, std::string_view>;

/// The name of `value` in `table`; `unknown` if the table lacks it.
template <class E, std::size_t N>
constexpr std::string_view name_of(const EnumName<E> (&table)[N], E value,
                                   std::string_view unknown = "?") {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return unknown;
}

/// The value named `name` in `table`; nullopt if none is.
template <class E, std::size_t N>
constexpr std::optional<E> value_named(const EnumName<E> (&table)[N], std::string_view name) {
  for (const auto& [v, n] : table)
    if (n == name) return v;
  return std::nullopt;
}

}  // namespace vigil::detail
