// ModelCheckpoint and BackupAndRestore: TrainContext snapshots in and out of a CheckpointManager.
#include <fmt/core.h>

#include <array>
#include <set>
#include <string_view>

#include "vigil/sharded_files.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/model_checkpoint.hpp"

namespace vigil::torch {

namespace {

std::string shard_stem(const std::string& stem, int k) {
  auto name = shard_file_name(stem, k, 2);
  name.resize(name.size() - kTensorFileSuffix.size());
  return name;
}

// With some parameters frozen, every file of the model's tensors (the model, the best weights,
// averaged weights) is written as two shards in Hugging Face's layout: the frozen tensors, the
// same bytes in every checkpoint, which the manager then links rather than writes, and the rest.
void split_frozen(SaveRequest& r, const TrainingSnapshot& snap) {
  if (snap.frozen.empty()) return;
  const std::set<std::string_view> frozen(snap.frozen.begin(), snap.frozen.end());
  std::vector<std::string> stems = {std::string(kModelStem)};
  for (const auto& [stem, tensors] : snap.callback_files)
    if (tensors.same_names(snap.model)) stems.push_back(stem);
  for (const auto& stem : stems) {
    const auto it = r.files.find(stem);
    if (it == r.files.end()) continue;
    std::vector<int> plan;
    std::array<std::vector<TensorView>, 2> shards;
    for (const auto& v : it->second) {
      plan.push_back(frozen.count(v.name) ? 0 : 1);
      shards[plan.back()].push_back(v);
    }
    if (shards[0].empty() || shards[1].empty()) continue;  // nothing, or everything, frozen
    const auto views = std::move(it->second);
    r.files.erase(it);
    const auto meta = r.metadata.extract(stem);
    for (int k = 0; k < 2; ++k) {
      r.files[shard_stem(stem, k)] = std::move(shards[k]);
      if (!meta.empty()) r.metadata[shard_stem(stem, k)] = meta.mapped();
    }
    r.indexes[stem] = shard_index(stem, views, plan, 2);
  }
}

SaveRequest request_for(const TrainContext& ctx, const TrainingSnapshot& snap, SavePoint at,
                        const Logs& metrics) {
  SaveRequest r;
  r.epoch = ctx.epoch;
  r.step = ctx.global_step;
  r.at = at;
  r.metrics = metrics;
  r.files = snap.files();
  r.metadata = snap.metadata;
  r.state = snap.state;
  split_frozen(r, snap);
  return r;
}

}  // namespace

SaveResult save_training_checkpoint(CheckpointManager& manager, const TrainContext& ctx,
                                    SavePoint at, const Logs& metrics) {
  const TrainingSnapshot snap = ctx.snapshot(metrics);
  return manager.save(request_for(ctx, snap, at, metrics));
}

ModelCheckpoint::ModelCheckpoint(std::shared_ptr<CheckpointManager> manager)
    : manager_(std::move(manager)) {
  if (!manager_) throw OptionError("ModelCheckpoint needs a CheckpointManager");
}

void ModelCheckpoint::save(TrainContext& ctx, SavePoint at, const Logs& metrics) {
  // The snapshot shares the live tensors: save() writes them before returning and save_async()
  // copies them before returning, so training cannot change them under the writer.
  const TrainingSnapshot snap = ctx.snapshot(metrics);
  const SaveRequest request = request_for(ctx, snap, at, metrics);
  if (manager_->options().async) {
    manager_->save_async(request);
    last_.reset();
  } else {
    last_ = manager_->save(request);
    results_.push_back(*last_);
  }
}

void ModelCheckpoint::on_batch_end(TrainContext& ctx, std::int64_t, const Logs& logs) {
  if (!reserved_ && manager_->options().async) {
    // After the first step the optimizer's state exists, so the request has its final size.
    reserved_ = true;
    const TrainingSnapshot snap = ctx.snapshot(logs);
    manager_->reserve_async(request_for(ctx, snap, SavePoint::Step, logs));
  }
  // The end of an epoch is saved in on_epoch_end with the validation metrics; a step save at the
  // same place would only duplicate it.
  if (ctx.batch >= ctx.steps_per_epoch || ctx.at_max_steps()) return;
  if (manager_->should_save(ctx.epoch, ctx.global_step, std::chrono::steady_clock::now(),
                            SavePoint::Step))
    save(ctx, SavePoint::Step, logs);
}

void ModelCheckpoint::on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
  last_.reset();
  if (manager_->should_save(epoch, ctx.global_step, std::chrono::steady_clock::now(),
                            SavePoint::EpochEnd))
    save(ctx, SavePoint::EpochEnd, logs);
}

void ModelCheckpoint::on_train_end(TrainContext&, const Logs&) {
  for (auto& r : manager_->wait()) results_.push_back(std::move(r));
}

BackupAndRestore::BackupAndRestore(std::shared_ptr<CheckpointManager> manager,
                                   BackupAndRestoreOptions options)
    : manager_(std::move(manager)), options_(options) {
  if (!manager_) throw OptionError("BackupAndRestore needs a CheckpointManager");
}

void BackupAndRestore::on_train_begin(TrainContext& ctx, const Logs&) {
  resumed_from_.reset();
  interrupt_checkpoint_.reset();
  auto latest = manager_->latest();
  if (!latest) return;
  ctx.pending_restore = RestorePoint::from(manager_->open(latest->name));
  resumed_from_ = latest;
}

void BackupAndRestore::on_epoch_end(TrainContext& ctx, int, const Logs& logs) {
  if (options_.save_every_epoch)
    save_training_checkpoint(*manager_, ctx, SavePoint::EpochEnd, logs);
}

void BackupAndRestore::on_interrupt(TrainContext& ctx) {
  if (!options_.save_on_interrupt) return;
  manager_->wait();  // a background save in flight is committed first, then ours is the newest
  const auto at = ctx.epoch_complete ? SavePoint::EpochEnd : SavePoint::Step;
  const Logs metrics =
      ctx.epoch_complete && !ctx.history.empty() ? ctx.history.back().logs : Logs{};
  auto result = save_training_checkpoint(*manager_, ctx, at, metrics);
  if (result.checkpoint) interrupt_checkpoint_ = result.checkpoint;
}

}  // namespace vigil::torch
