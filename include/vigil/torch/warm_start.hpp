// Warm start: a new run begins from another run's weights (a model file, a checkpoint folder or a
// run directory's best model), weights only, shapes checked, the source identified by its hash.
// This is the fine-tuning path; resuming a run is BackupAndRestore's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "vigil/torch/module_state.hpp"

namespace vigil::torch {

/// The weights file `path` stands for: a .safetensors file; a checkpoint folder or best/ (its
/// model.safetensors, or the index of its shards); a run directory (best/, else its final
/// model.safetensors, else its newest checkpoint's). Throws InputError naming the path.
std::filesystem::path resolve_weights_file(const std::filesystem::path& path);

/// Where a warm start's weights came from, as run.json records it.
struct WarmStartSource {
  std::filesystem::path file;  ///< the weights file (or shard index) actually read
  std::string xxh3;            ///< XXH3-64 of its bytes (of every shard's, in order), 16 hex digits
  std::size_t tensors = 0;     ///< tensors loaded
  /// {"path", "file", "xxh3", "tensors"} with `given` as the path.
  nlohmann::json to_json(const std::filesystem::path& given) const;
};

/// Loads the weights `path` stands for into `module` (strict by default: every parameter and
/// buffer must be there with its shape; `options` may relax it as PyTorch's strict=False). The
/// optimizer, schedules and data order are not touched: they start fresh. Throws StateDictError
/// listing every mismatch (nothing loaded), InputError for a path that holds no weights.
WarmStartSource warm_start(::torch::nn::Module& module, const std::filesystem::path& path,
                           const LoadStateOptions& options = {});

}  // namespace vigil::torch
