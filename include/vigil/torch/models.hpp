// The models `vigil train` builds: a serializable ModelSpec and build_model(), which returns a
// torch::nn::Sequential whose state_dict names match the same nn.Sequential built in Python.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// What to build. Python equivalents (what python_code() prints), for the defaults:
///
/// "mlp" (input [1, 28, 28], hidden {256, 256}, outputs 10, dropout p):
///   nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), [nn.Dropout(p),]
///                 nn.Linear(256, 256), nn.ReLU(), [nn.Dropout(p),] nn.Linear(256, 10))
///   (the Dropout layers only when dropout > 0; the input is flattened whatever its shape)
///
/// "cnn" (input [C, H, W] = [1, 28, 28], channels {16, 32}, hidden {128}, outputs 10, dropout p,
///        batch_norm b):
///   nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), [nn.BatchNorm2d(16),] nn.ReLU(),
///   nn.MaxPool2d(2),
///                 nn.Conv2d(16, 32, 3, padding=1), [nn.BatchNorm2d(32),] nn.ReLU(),
///                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
///                 [nn.Dropout(p),] nn.Linear(128, 10))
///   (each MaxPool2d(2) halves H and W, rounding down; a spatial size reaching 0 is an error)
struct ModelSpec {
  /// "mlp" or "cnn" (default "mlp").
  std::string kind = "mlp";
  /// Shape of one example without the batch dimension (default {1, 28, 28}); cnn needs [C, H, W].
  std::vector<std::int64_t> input_shape = {1, 28, 28};
  /// Sizes of the hidden fully connected layers (default {256, 256}); may be empty for mlp
  /// (a linear model).
  std::vector<std::int64_t> hidden = {256, 256};
  /// cnn only: output channels of each conv block (default {16, 32}).
  std::vector<std::int64_t> channels = {16, 32};
  /// Classes (logits) or regression outputs (default 10).
  std::int64_t outputs = 10;
  /// Dropout probability after each hidden fully connected layer; 0 = no Dropout layers
  /// (default 0).
  double dropout = 0.0;
  /// cnn only: BatchNorm2d after each convolution (default false).
  bool batch_norm = false;

  VIGIL_SETTER(kind)
  VIGIL_SETTER(input_shape)
  VIGIL_SETTER(hidden)
  VIGIL_SETTER(channels)
  VIGIL_SETTER(outputs)
  VIGIL_SETTER(dropout)
  VIGIL_SETTER(batch_norm)

  /// Throws OptionError naming the problem (unknown kind listing the known ones, sizes < 1,
  /// dropout outside [0, 1), cnn input not [C, H, W], image too small for the pooling).
  void validate() const;

  /// {"kind", "input_shape", "hidden", "channels", "outputs", "dropout", "batch_norm"}.
  nlohmann::json to_json() const;
  /// Absent fields take the defaults above; wrong types or unknown fields throw InputError.
  static ModelSpec from_json(const nlohmann::json& json);

  bool operator==(const ModelSpec&) const = default;
};

/// The model kinds build_model() knows: {"mlp", "cnn"}.
const std::vector<std::string>& model_kinds();

/// Builds the model (validates first). Layers are the Sequential's children "0", "1", ..., so
/// parameters are named "1.weight", "1.bias", ... exactly as in Python. Weights are initialised
/// by libtorch from the default CPU generator (seed it for reproducible runs).
::torch::nn::Sequential build_model(const ModelSpec& spec);

/// The Python lines that build the same model, e.g. "nn.Sequential(nn.Flatten(), ...)".
std::string python_code(const ModelSpec& spec);

}  // namespace vigil::torch
