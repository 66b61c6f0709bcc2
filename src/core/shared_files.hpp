// Sharing committed tensor files rather than writing their bytes again: a planned file compared
// with one on disk, hard links with their fallbacks, and best/model.safetensors made from the
// best checkpoint's file (a link) or its shards (merged). Private to the core.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "vigil/checkpoint.hpp"
#include "vigil/io.hpp"
#include "vigil/safetensors.hpp"

namespace vigil::detail {

/// True if `path` is a regular file of `bytes` bytes that starts with `header`. Any trouble
/// reading it (gone, unreadable) makes it no match.
[[nodiscard]] bool starts_with_header(const std::filesystem::path& path, std::uint64_t bytes,
                                      const std::string& header);

/// Links `dir/name` to the first of `candidates` that `plan` would reproduce byte for byte and
/// returns its entry (linked = true); nullopt when none matches, the plan has no checksums, or
/// the file system refuses the link. Other link errors (ENOSPC, EIO) throw IoError.
[[nodiscard]] std::optional<CheckpointFileInfo> share_file(
    const std::filesystem::path& dir, const std::string& name, const SafetensorsPlan& plan,
    std::span<const ShareableFile> candidates, FileOps& ops);

/// Makes `dst` the committed, immutable file `src`: a hard link (no second write) where the file
/// system allows one, else a durable copy. Either way `dst` appears by one rename, and it
/// outlives the checkpoint it came from (the link keeps the data).
void publish_file(const std::filesystem::path& src, const std::filesystem::path& dst,
                  const std::shared_ptr<FileOps>& ops);

/// Makes `best_path` the `stem` file of checkpoint `best`: publish_file() of "<stem>.safetensors",
/// or, for a file the checkpoint holds as shards, the shards merged into one file written
/// durably. `memory` may hold the shards' tensors still in memory (the save that just wrote
/// them): the merge then copies from there instead of reading the shards back. Returns what
/// best/ holds now; nullopt when the checkpoint has neither.
std::optional<CheckpointFileInfo> publish_best(const CheckpointInfo& best, const std::string& stem,
                                               const std::filesystem::path& best_path,
                                               const std::shared_ptr<FileOps>& ops,
                                               std::span<const TensorView> memory = {});

/// publish_best() unless `best_path` already holds that file (its size, and with `verify` its
/// hash; for shards, the merged header, and with `verify` every tensor's checksum).
std::optional<CheckpointFileInfo> repair_best_copy(const std::filesystem::path& best_path,
                                                   const CheckpointInfo& best,
                                                   const std::string& stem, bool verify,
                                                   const std::shared_ptr<FileOps>& ops);

}  // namespace vigil::detail
