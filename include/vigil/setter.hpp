// VIGIL_SETTER: the chainable `with_<field>(value)` setter of an options struct, in one line.
#pragma once

#include <utility>

/// Declares `with_NAME(value)`, which sets the field NAME (declared above it) and returns the
/// struct, so options chain as `Options{}.with_a(1).with_b("x")`. NAME is a field's name, never
/// an expression: parenthesised, decltype((NAME)) would be a reference type.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define VIGIL_SETTER(name)                  \
  auto& with_##name(decltype(name) value) { \
    name = std::move(value);                \
    return *this;                           \
  }
// NOLINTEND(bugprone-macro-parentheses)
