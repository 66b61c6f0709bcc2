// Sharded checkpoints of data-parallel runs: every rank writes its share of the model and
// optimizer tensors into the same temporary checkpoint folder, rank 0 commits it only when all
// succeeded. Files and index follow Hugging Face's layout (model-00001-of-00002.safetensors +
// model.safetensors.index.json), so such a folder loads with any number of ranks.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/setter.hpp"
#include "vigil/sharded_files.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/distributed.hpp"

namespace vigil::torch {

/// Options of ShardedModelCheckpoint.
struct ShardedCheckpointOptions {
  /// Also consider saving after every optimizer step (default false: epoch ends only). Must be
  /// the same on every rank; set it when the manager saves every n steps or every n seconds.
  bool step_saves = false;
  /// The file layer this rank writes its shards through (default FileOps::real(); tests inject
  /// ENOSPC/EIO with it).
  std::shared_ptr<FileOps> ops = FileOps::real();
  /// Fault injection for tests: called after this rank's shards are written and fsynced, before
  /// it reports success (default empty).
  std::function<void()> after_shards_written;

  VIGIL_SETTER(step_saves)
  VIGIL_SETTER(ops)
  ShardedCheckpointOptions& with_after_shards_written(std::function<void()> v) {
    after_shards_written = std::move(v);
    return *this;
  }
};

/// ModelCheckpoint for data-parallel runs; every rank adds one. Rank 0 holds the
/// CheckpointManager (the others pass null) and decides when to save; then every rank writes
/// its shards of model.safetensors and optimizer.safetensors into rank 0's temporary folder in
/// parallel, rank 0 writes the indexes, callbacks.safetensors, the callbacks' own files (e.g.
/// ema.safetensors, whole) and state.json, and commits (fsync,
/// rename, fsync) only once every rank reported success. A failure on any rank aborts that
/// checkpoint on every rank (CheckpointError, the temporary folder removed, committed checkpoints
/// untouched). When the checkpoint is the new best, rank 0's manager merges its model shards into
/// best/model.safetensors, a single file. The run directory must be reachable by every rank (one
/// host, or shared storage).
class ShardedModelCheckpoint : public Callback {
 public:
  ShardedModelCheckpoint(std::shared_ptr<ProcessGroup> group,
                         std::shared_ptr<CheckpointManager> manager,
                         ShardedCheckpointOptions options = {});

  std::string name() const override { return "model_checkpoint"; }
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;

  /// Saves now on every rank (all must call it together); returns rank 0's result (on other
  /// ranks: saved/skipped as rank 0 reported, without the checkpoint info).
  SaveResult save(TrainContext& ctx, SavePoint at, const Logs& metrics);

  /// Rank 0: the result of the last save of the epoch that just ended, if any.
  const std::optional<SaveResult>& last_result() const { return last_; }

 private:
  std::shared_ptr<ProcessGroup> group_;
  std::shared_ptr<CheckpointManager> manager_;
  ShardedCheckpointOptions options_;
  std::optional<SaveResult> last_;
};

}  // namespace vigil::torch
