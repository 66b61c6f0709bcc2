// ModelCheckpoint callback: saves the full training state through a CheckpointManager (its
// policies: top-k, keep-last, every-n epochs/steps, best-only, name templates, async writes).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Keras/Lightning ModelCheckpoint on a run directory. Each checkpoint holds model.safetensors
/// (plain weights), optimizer.safetensors, callbacks.safetensors (e.g. EarlyStopping's best
/// weights) and the TrainContext snapshot as state, so that BackupAndRestore can resume exactly
/// from any of them. Put it after EarlyStopping and ReduceLROnPlateau in the callback list so
/// that the decisions they take at an epoch end are part of that epoch's checkpoint.
class ModelCheckpoint : public Callback {
 public:
  /// Saves when the manager's should_save() says so: at epoch ends (save_every_n_epochs) and
  /// after optimizer steps (save_every_n_steps), through submit() (async if the manager is).
  /// With an async manager, the snapshot memory is reserved in the background after the first
  /// training step (when the optimizer's state exists), so the first save only copies.
  explicit ModelCheckpoint(std::shared_ptr<CheckpointManager> manager);

  std::string name() const override { return "model_checkpoint"; }
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  /// Waits for background saves (rethrowing their errors) so that training never ends with a
  /// checkpoint half written.
  void on_train_end(TrainContext& ctx, const Logs& logs) override;

  const std::shared_ptr<CheckpointManager>& manager() const { return manager_; }
  /// Results of synchronous saves and of finished async ones, in order (skipped ones included).
  const std::vector<SaveResult>& results() const { return results_; }
  /// The result of the last save of the epoch that just ended, if one was made synchronously.
  const std::optional<SaveResult>& last_result() const { return last_; }

 private:
  void save(TrainContext& ctx, SavePoint at, const Logs& metrics);
  std::shared_ptr<CheckpointManager> manager_;
  std::vector<SaveResult> results_;
  std::optional<SaveResult> last_;
  bool reserved_ = false;
};

/// Writes one checkpoint of `ctx` now through `manager` (synchronously) and returns the result.
SaveResult save_training_checkpoint(CheckpointManager& manager, const TrainContext& ctx,
                                    SavePoint at, const Logs& metrics);

}  // namespace vigil::torch
