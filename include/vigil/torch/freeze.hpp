// Freezing parameters by name, as fine-tuning a pretrained backbone does: they keep their values
// while the rest of the model trains.
#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace vigil::torch {

/// Stops every parameter whose state_dict name ("0.weight", "transformer.h.1.attn.c_attn.bias")
/// matches `pattern` from training: requires_grad_(false), so that backward gives it no
/// gradient and no optimizer step, weight decay included, changes it. `pattern` is an ECMAScript
/// regular expression searched anywhere in the name (anchor it, e.g. "^(1|3)\\.", to match from
/// the start). Returns the names frozen, in state_dict order. Throws OptionError for an invalid
/// expression, or one that matches no parameter (the error lists some names).
std::vector<std::string> freeze_parameters(::torch::nn::Module& module, const std::string& pattern);

}  // namespace vigil::torch
