// Sharded tensor files as Hugging Face lays them out: "<stem>-00001-of-00004.safetensors" shards
// and a "<stem>.safetensors.index.json" mapping every tensor to its shard; planning a split,
// writing the index, and opening such a set again (checked against its shards).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/safetensors.hpp"

namespace vigil {

/// "model-00002-of-00004.safetensors" for shard k (0-based) of n: Hugging Face's names (1-based).
std::string shard_file_name(std::string_view stem, int k, int n);
/// The end of an index file's name: "<stem>" + kShardIndexSuffix.
inline constexpr std::string_view kShardIndexSuffix = ".safetensors.index.json";
/// "model.safetensors.index.json".
std::string shard_index_file_name(std::string_view stem);

/// The shard (rank) that writes each tensor: largest first to the least loaded shard (by bytes;
/// ties to the lower shard), so shards are balanced and every rank computes the same plan.
std::vector<int> plan_shards(std::span<const TensorView> tensors, int n);

/// The index Hugging Face writes beside sharded weights: {"metadata": {"total_size": bytes of
/// tensor data}, "weight_map": {tensor name: shard file}}.
nlohmann::json shard_index(std::string_view stem, std::span<const TensorView> tensors,
                           const std::vector<int>& plan, int n);

/// The tensors of a sharded file set opened for reading: every shard named by the index, mapped
/// and validated. The index must name exactly the tensors the shards hold.
struct ShardedTensors {
  std::vector<SafetensorsFile> shards;
  std::vector<std::string> files;  ///< the shards' file names, in the order of `shards`
  /// Every tensor of every shard, in the index's order (names sorted).
  std::vector<TensorView> views() const;
};
/// Opens `dir/<stem>.safetensors.index.json` and its shards; nullopt when there is no index.
/// Throws CheckpointError (checkpoint.hpp) for an index that does not match its shards.
std::optional<ShardedTensors> open_sharded(const std::filesystem::path& dir, std::string_view stem,
                                           const SafetensorsReadOptions& options = {});
/// The plan (header and size) of the one file the shards of `set` merge into, with the first
/// shard's metadata, every tensor's checksum taken from the shards' headers: nothing is hashed.
/// nullopt when a shard records no checksum for one of its tensors.
[[nodiscard]] std::optional<SafetensorsPlan> merged_plan(const ShardedTensors& set);
/// The stems of the index files in `dir` ("model" for model.safetensors.index.json), sorted.
std::vector<std::string> shard_index_stems(const std::filesystem::path& dir);

}  // namespace vigil
