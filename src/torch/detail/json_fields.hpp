// The field check of the JSON objects the adapter reads (model specs): an unknown field is
// refused by name, with the known ones listed.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "vigil/error.hpp"

namespace vigil::torch::detail {

/// Throws InputError "unknown WHAT field 'KEY' (known: ...)" for the first key of the object
/// `j` that `known` lacks.
inline void refuse_unknown_fields(const nlohmann::json& j, const std::set<std::string>& known,
                                  std::string_view what) {
  for (const auto& [key, value] : j.items())
    if (!known.count(key))
      throw InputError(
          fmt::format("unknown {} field '{}' (known: {})", what, key, fmt::join(known, ", ")));
}

}  // namespace vigil::torch::detail
