// One checkpoint folder (model.safetensors, optimizer.safetensors, ..., state.json): written
// durably and atomically, verified file by file, and opened again for resuming.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/io.hpp"
#include "vigil/monitor.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// The JSON file every checkpoint folder holds (its presence marks a checkpoint folder).
inline constexpr std::string_view kStateFileName = "state.json";
/// Tensor files are "<stem>.safetensors", e.g. "model.safetensors".
inline constexpr std::string_view kTensorFileSuffix = ".safetensors";
/// The stem whose file is the model weights (copied to best/model.safetensors by the manager).
inline constexpr std::string_view kModelStem = "model";

/// Tensor files of one checkpoint: file stem ("model", "optimizer") -> its tensors.
using TensorFiles = std::map<std::string, std::vector<TensorView>, std::less<>>;

/// Where in the loop a checkpoint was taken.
enum class SavePoint {
  EpochEnd,  ///< after an epoch finished (validation metrics available)
  Step,      ///< in the middle of an epoch, after an optimizer step
};

struct CheckpointFileInfo;

/// A committed tensor file that a new checkpoint may share (a hard link) rather than write the
/// same bytes again. Committed files are never modified, so a link is as good as a copy, and
/// deleting either folder leaves the other whole.
struct ShareableFile {
  std::filesystem::path path;  ///< the committed file
  std::uint64_t bytes = 0;     ///< its size, as its state.json records it
  std::uint64_t xxh3 = 0;      ///< its whole-file XXH3-64, as its state.json records it
};

/// Everything written into one checkpoint folder. The views must stay valid during the write.
struct CheckpointContent {
  std::int64_t epoch = 0;  ///< 0-based epoch the checkpoint belongs to
  std::int64_t step = 0;   ///< optimizer steps taken so far
  SavePoint at = SavePoint::EpochEnd;
  Logs metrics;       ///< metrics at that point (non-finite values are kept, see monitor.hpp)
  TensorFiles files;  ///< stems must be plain names: [A-Za-z0-9_.-], not starting with '.'
  /// Header metadata of some of those files, by stem (default none), e.g. the tied names of a
  /// model (see module_state.hpp).
  std::map<std::string, Metadata, std::less<>> metadata;
  /// The caller's state (stopper state, RNG, data order, options); stored untouched under "state".
  nlohmann::json state = nlohmann::json::object();
  /// Orders the checkpoints of a run (the manager counts up); newer = larger.
  std::uint64_t sequence = 0;
  /// The run the checkpoint belongs to (default empty: none); written as "run_id" when set.
  std::string run_id;
  /// Optional (default empty). Called with the temporary folder once `files` are written and
  /// before state.json: writes more tensor files there (e.g. other processes' shards, each
  /// fsynced by its writer) and returns them to be listed and verified like the others. Files it
  /// does not return (e.g. an index) are kept unlisted. Throwing aborts the checkpoint: the
  /// temporary folder is removed and the error propagates.
  std::function<std::vector<CheckpointFileInfo>(const std::filesystem::path& tmp)> extra_files;
  /// Committed files that a file of `files` may share, preferred in this order (default none:
  /// every file is written). A file is shared when it would be byte for byte a listed one: the
  /// same size and the same header, which holds every tensor's XXH3-64. Files written earlier
  /// in this checkpoint are shared the same way. Where the file system refuses the link (no hard
  /// links, the link count is full, the file is gone) the file is written instead.
  std::vector<ShareableFile> shareable;
  /// Shard indexes, by stem (default none): written as "<stem>.safetensors.index.json" in
  /// Hugging Face's layout (see shard_index() in sharded_files.hpp), for a file given as shards
  /// among `files`. They are not listed in "files": opening the set checks an index against
  /// the shards it names.
  std::map<std::string, nlohmann::json, std::less<>> indexes;
};

/// One tensor file of a checkpoint as recorded in state.json.
struct CheckpointFileInfo {
  std::string file;         ///< "model.safetensors"
  std::uint64_t bytes = 0;  ///< its exact size
  std::uint64_t xxh3 = 0;   ///< XXH3-64 of the whole file
  /// Set by write_checkpoint() when it hard-linked an identical committed file instead of
  /// writing this one (not recorded: false when read back from state.json).
  bool linked = false;
};

/// What state.json says about a checkpoint (after verification, what is really on disk).
struct CheckpointInfo {
  std::string name;            ///< folder name, e.g. "epoch-0007"
  std::filesystem::path path;  ///< the folder
  std::int64_t epoch = 0;
  std::int64_t step = 0;
  SavePoint at = SavePoint::EpochEnd;
  std::uint64_t sequence = 0;
  Logs metrics;
  std::vector<CheckpointFileInfo> files;  ///< sorted by file name
  std::string run_id;  ///< the run it belongs to; empty when it records none (an older vigil)
  /// Sum of the tensor files' sizes.
  std::uint64_t total_bytes() const;
  /// True if there is a "<stem>.safetensors" file.
  bool has_file(std::string_view stem) const;
};

/// Every tensor file of a committed checkpoint, as files a new checkpoint may share.
[[nodiscard]] std::vector<ShareableFile> shareable_files(const CheckpointInfo& info);

/// Options of write_checkpoint().
struct CheckpointWriteOptions {
  /// The file layer; tests inject ENOSPC/EIO through it (default FileOps::real()).
  std::shared_ptr<FileOps> ops = FileOps::real();
  /// Largest single write when streaming tensor data from the caller's memory (default 8 MiB).
  std::size_t block_bytes = std::size_t{8} << 20;

  VIGIL_SETTER(ops)
  VIGIL_SETTER(block_bytes)
};

/// Writes the checkpoint folder `dir` (which must not exist) durably and atomically: a temporary
/// folder ".<name>.tmp-<pid>-<random>" in the same parent, every file written from the caller's
/// memory and fsynced, the folder fsynced, renamed to `dir`, the parent fsynced. On any failure
/// the temporary folder is removed, nothing else is touched, and the error (IoError,
/// OptionError) propagates; a failed write or fsync is never retried.
CheckpointInfo write_checkpoint(const std::filesystem::path& dir, const CheckpointContent& content,
                                const CheckpointWriteOptions& options = {});

/// Writes one tensor file `dir/name` of a checkpoint being assembled in a temporary folder
/// (fsynced, not renamed: the folder's commit makes it visible) and returns its size and
/// whole-file XXH3, hashed while it was written rather than read back. write_checkpoint() uses
/// it, and so does every rank of a sharded save for its shard.
CheckpointFileInfo write_checkpoint_file(const std::filesystem::path& dir, const std::string& name,
                                         std::span<const TensorView> tensors,
                                         const CheckpointWriteOptions& options = {},
                                         const Metadata& metadata = {});

/// Options of verify_checkpoint() and Checkpoint::open().
struct CheckpointVerifyOptions {
  /// Hash every file completely and compare with state.json (default true). false checks
  /// state.json, the sizes and the tensor files' headers only (fast, misses flipped data bytes).
  bool checksums = true;
  VIGIL_SETTER(checksums)
};

/// Checks a checkpoint folder: state.json parses and its own checksum matches; every file it
/// lists exists with the recorded size, is a valid safetensors file, and (with checksums) hashes
/// to the recorded XXH3-64; no listed file is missing. Throws CheckpointError naming the problem.
CheckpointInfo verify_checkpoint(const std::filesystem::path& dir,
                                 const CheckpointVerifyOptions& options = {});

/// A verified checkpoint folder opened for reading (resuming, evaluation).
class Checkpoint {
 public:
  /// Verifies `dir` (see verify_checkpoint) and reads its state. Throws CheckpointError.
  static Checkpoint open(const std::filesystem::path& dir,
                         const CheckpointVerifyOptions& options = {});

  const CheckpointInfo& info() const { return info_; }
  /// The caller's state exactly as given to write_checkpoint().
  const nlohmann::json& state() const { return state_; }
  /// True if the checkpoint has "<stem>.safetensors".
  bool has_file(std::string_view stem) const { return info_.has_file(stem); }
  /// Maps "<stem>.safetensors". Per-tensor checksums are checked again only if the folder was
  /// opened without checksums (a full verification already hashed every byte). Throws
  /// CheckpointError if there is no such file, FormatError/IoError if it cannot be read.
  SafetensorsFile open_file(std::string_view stem) const;
  /// Maps "<stem>.safetensors" checking no more than its header, for a reader that checks
  /// file_xxh3() while it reads the data (SafetensorsFile::read_into: one pass instead of two).
  [[nodiscard]] SafetensorsFile open_file_unchecked(std::string_view stem) const;
  /// The XXH3-64 state.json records for "<stem>.safetensors". Throws CheckpointError if the
  /// checkpoint has no such file.
  [[nodiscard]] std::uint64_t file_xxh3(std::string_view stem) const;
  /// True if the folder was opened with checksums (every file was hashed then).
  [[nodiscard]] bool verified() const { return verified_; }

 private:
  std::filesystem::path file_path(std::string_view stem) const;
  Checkpoint(CheckpointInfo info, nlohmann::json state, bool verified);
  CheckpointInfo info_;
  nlohmann::json state_;
  bool verified_ = false;
};

/// XXH3-64 of a whole file, read sequentially in 1 MiB blocks. Throws CheckpointError.
std::uint64_t xxh3_file(const std::filesystem::path& path);

/// "epoch_end" or "step" (as stored in state.json).
std::string_view save_point_name(SavePoint at);

}  // namespace vigil
