// Freezing parameters whose names match a regular expression.
#include "vigil/torch/freeze.hpp"

#include <regex>

#include <fmt/core.h>

#include "detail/text.hpp"
#include "vigil/error.hpp"

namespace vigil::torch {

std::vector<std::string> freeze_parameters(::torch::nn::Module& module,
                                           const std::string& pattern) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw OptionError(fmt::format("freeze pattern '{}' is not a valid regular expression: {}",
                                  pattern, e.what()));
  }
  std::vector<std::string> frozen;
  std::vector<std::string> names;
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    names.push_back(p.key());
    if (!std::regex_search(p.key(), re)) continue;
    p.value().requires_grad_(false);
    frozen.push_back(p.key());
  }
  if (frozen.empty())
    throw OptionError(fmt::format("freeze pattern '{}' matches none of the model's parameters ({})",
                                  pattern, vigil::detail::name_list(names)));
  return frozen;
}

}  // namespace vigil::torch
