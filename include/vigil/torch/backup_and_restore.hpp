// BackupAndRestore callback: resumes a run from the newest intact checkpoint of a run directory
// (weights, optimizer, RNG, data position inside the epoch, every callback's state, history)
// and writes a checkpoint when training is interrupted.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of BackupAndRestore.
struct BackupAndRestoreOptions {
  /// Save a checkpoint at every epoch end, like Keras's save_freq="epoch" (default false: leave
  /// epoch checkpoints to a ModelCheckpoint on the same manager).
  bool save_every_epoch = false;
  /// Save a checkpoint (synchronously) when training is interrupted (default true).
  bool save_on_interrupt = true;

  VIGIL_SETTER(save_every_epoch)
  VIGIL_SETTER(save_on_interrupt)
};

/// Keras's BackupAndRestore on a CheckpointManager. In on_train_begin it picks the manager's
/// newest intact checkpoint (corrupt or half-written ones are skipped by the manager) and hands it
/// to the loop as ctx.pending_restore; the restore happens once every callback has begun.
/// Unlike Keras it never deletes the checkpoints when training ends: the run directory is the
/// record of the run, and running again with it finds the run finished.
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::shared_ptr<CheckpointManager> manager,
                            BackupAndRestoreOptions options = {});

  std::string name() const override { return "backup_and_restore"; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_interrupt(TrainContext& ctx) override;

  /// The checkpoint resumed from, if any.
  const std::optional<CheckpointInfo>& resumed_from() const { return resumed_from_; }
  /// The checkpoint written on interrupt, if any.
  const std::optional<CheckpointInfo>& interrupt_checkpoint() const {
    return interrupt_checkpoint_;
  }

 private:
  std::shared_ptr<CheckpointManager> manager_;
  BackupAndRestoreOptions options_;
  std::optional<CheckpointInfo> resumed_from_;
  std::optional<CheckpointInfo> interrupt_checkpoint_;
};

}  // namespace vigil::torch
