// torch::optim state (per-parameter tensors, step counts, param-group options) to and from named
// tensors + JSON, for SGD, Adam, AdamW, RMSprop and Adagrad; and building those optimizers by name.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// The optimizers whose state vigil saves. LBFGS and user-defined optimizers are refused.
enum class OptimizerKind { SGD, Adam, AdamW, RMSprop, Adagrad };

/// "sgd", "adam", "adamw", "rmsprop", "adagrad" (the names --optimizer takes).
[[nodiscard]] std::string_view optimizer_name(OptimizerKind kind);
/// Parses a name (case-insensitive); throws OptionError listing the supported ones.
[[nodiscard]] OptimizerKind parse_optimizer(std::string_view name);
/// The kind of a live optimizer; throws OptionError for LBFGS or any other type.
[[nodiscard]] OptimizerKind optimizer_kind(const ::torch::optim::Optimizer& optimizer);

/// Builds an optimizer over `params` (one param group). `options` holds param-group options by
/// their PyTorch names; absent ones take PyTorch's defaults:
///   sgd:     lr (required here: 0.01 if absent), momentum 0, dampening 0, weight_decay 0,
///            nesterov false
///   adam:    lr 1e-3, betas [0.9, 0.999], eps 1e-8, weight_decay 0, amsgrad false
///   adamw:   lr 1e-3, betas [0.9, 0.999], eps 1e-8, weight_decay 1e-2, amsgrad false
///   rmsprop: lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered false
///   adagrad: lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10
/// Unknown option names and invalid values throw OptionError.
[[nodiscard]] std::unique_ptr<::torch::optim::Optimizer> make_optimizer(
    OptimizerKind kind, std::vector<::torch::Tensor> params, const nlohmann::json& options = {});

/// The whole state of an optimizer.
struct OptimizerState {
  /// Per-parameter state, named "state.<parameter's state_dict name>.<field>":
  ///   sgd: momentum_buffer (once momentum > 0 and a step was taken)
  ///   adam/adamw: step (I64 scalar), exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only)
  ///   rmsprop: step, square_avg, momentum_buffer (momentum > 0), grad_avg (centered)
  ///   adagrad: step, sum
  /// Parameters without state yet (no step taken) have no entries, as in PyTorch.
  NamedTensors tensors;
  /// {"optimizer": "adam", "param_groups": [{"params": ["0.weight", ...], "lr": 0.001,
  ///   "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0, "amsgrad": false}, ...]}
  nlohmann::json json;
};

/// Captures `optimizer`'s state; parameters are named by their state_dict names in `module`
/// (throws OptionError if the optimizer holds a tensor that is not a parameter of `module`).
/// Tensors are shared with the optimizer (zero copy); clone() them for a background write.
[[nodiscard]] OptimizerState optimizer_state(const ::torch::optim::Optimizer& optimizer,
                                             const ::torch::nn::Module& module);

/// Restores a state captured by optimizer_state() into a live optimizer of the same kind over the
/// same parameters of `module` (e.g. freshly built): param-group options (lr included, so a
/// reduced learning rate survives) and every per-parameter tensor, copied to the parameter's
/// device. Checks first, then changes anything: the optimizer kind, the number of groups, each
/// group's parameter names, and each state tensor's shape; on error (InputError, one line naming
/// every problem) the optimizer is untouched.
void load_optimizer_state(::torch::optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const nlohmann::json& json, std::span<const TensorView> tensors);

/// The metadata key under which save_optimizer_state() stores the JSON part.
inline constexpr std::string_view kOptimizerMetadataKey = "vigil.optimizer";

/// Writes the state into one safetensors file (JSON in the metadata under kOptimizerMetadataKey).
void save_optimizer_state(const std::filesystem::path& path,
                          const ::torch::optim::Optimizer& optimizer,
                          const ::torch::nn::Module& module);
/// Reads a file written by save_optimizer_state() into the optimizer.
void load_optimizer_state(::torch::optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const SafetensorsFile& file);
void load_optimizer_state(::torch::optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const std::filesystem::path& path);

/// Reads or sets the learning rate of every param group (for ReduceLROnPlateau and logs); the
/// reading is group 0's.
[[nodiscard]] double get_learning_rate(const ::torch::optim::Optimizer& optimizer);
void set_learning_rate(::torch::optim::Optimizer& optimizer, double lr);

}  // namespace vigil::torch
