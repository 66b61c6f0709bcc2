// Warm start: finding the weights a path stands for, loading them, and hashing their source.
#include "vigil/torch/warm_start.hpp"

#include <fmt/core.h>

#include <fstream>

#include "vigil/checkpoint.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil::torch {

namespace fs = std::filesystem;

fs::path resolve_weights_file(const fs::path& path) {
  if (!fs::exists(path))
    throw InputError(fmt::format("{}: no such file or directory", path.string()));
  if (fs::is_regular_file(path)) return path;
  if (fs::is_regular_file(path / "run.json")) {
    for (const auto& f : {CheckpointManager::best_model_path(path), path / "model.safetensors"})
      if (fs::is_regular_file(f)) return f;
    std::ifstream last(CheckpointManager::last_path(path));
    std::string name;
    if (last && std::getline(last, name) && !name.empty()) {
      const auto dir = CheckpointManager::checkpoints_dir(path) / name;
      for (const auto& f : {dir / "model.safetensors", dir / shard_index_file_name(kModelStem)})
        if (fs::is_regular_file(f)) return f;
    }
    throw InputError(fmt::format("run directory {} holds no saved model yet", path.string()));
  }
  if (fs::is_regular_file(path / "model.safetensors")) return path / "model.safetensors";
  // A sharded checkpoint (data-parallel, or frozen parameters): its index stands for the shards.
  if (fs::is_regular_file(path / shard_index_file_name(kModelStem)))
    return path / shard_index_file_name(kModelStem);
  throw InputError(
      fmt::format("{}: expected a model.safetensors file, a checkpoint folder or a run directory",
                  path.string()));
}

nlohmann::json WarmStartSource::to_json(const fs::path& given) const {
  return {{"path", given.string()}, {"file", file.string()}, {"xxh3", xxh3}, {"tensors", tensors}};
}

WarmStartSource warm_start(::torch::nn::Module& module, const fs::path& path,
                           const LoadStateOptions& options) {
  WarmStartSource source;
  source.file = resolve_weights_file(path);
  std::uint64_t hash = 0;
  if (source.file.filename() == shard_index_file_name(kModelStem)) {
    auto shards = open_sharded(source.file.parent_path(), kModelStem);
    if (!shards) throw InputError(fmt::format("{}: no shards found", source.file.string()));
    source.tensors = load_module_state(module, *shards, options).loaded;
    // Order-dependent combination of every shard file's own hash.
    for (const auto& f : shards->files)
      hash = hash * 0x100000001B3ULL ^ xxh3_file(source.file.parent_path() / f);
  } else {
    source.tensors = load_module_state(module, source.file, options).loaded;
    hash = xxh3_file(source.file);
  }
  source.xxh3 = fmt::format("{:016x}", hash);
  return source;
}

}  // namespace vigil::torch
