// Sharded checkpoints: the shard plan, the index, reading shards back, and the save protocol in
// which every rank writes into rank 0's temporary folder and rank 0 commits.
#include "vigil/torch/sharded_checkpoint.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>
#include <span>

namespace vigil::torch {

namespace fs = std::filesystem;

namespace {

struct Report {
  bool ok = true;
  std::string error;
  std::vector<CheckpointFileInfo> files;
};

nlohmann::json to_json(const Report& r) {
  auto files = nlohmann::json::array();
  for (const auto& f : r.files)
    files.push_back({{"file", f.file}, {"bytes", f.bytes}, {"xxh3", f.xxh3}});
  return {{"ok", r.ok}, {"error", r.error}, {"files", files}};
}

Report report_from(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  Report r;
  r.ok = j.at("ok").get<bool>();
  r.error = j.at("error").get<std::string>();
  for (const auto& f : j.at("files"))
    r.files.push_back(CheckpointFileInfo{f.at("file").get<std::string>(),
                                         f.at("bytes").get<std::uint64_t>(),
                                         f.at("xxh3").get<std::uint64_t>()});
  return r;
}

using ShardedFiles = std::map<std::string, std::vector<TensorView>>;

// This rank's shard of every file, written durably into `tmp`.
std::vector<CheckpointFileInfo> write_my_shards(
    const fs::path& tmp, const ShardedFiles& files,
    const std::map<std::string, Metadata, std::less<>>& metadata, int rank, int world,
    const std::shared_ptr<FileOps>& ops) {
  std::vector<CheckpointFileInfo> out;
  for (const auto& [stem, views] : files) {
    const auto plan = plan_shards(views, world);
    std::vector<TensorView> mine;
    for (std::size_t i = 0; i < views.size(); ++i)
      if (plan[i] == rank) mine.push_back(views[i]);
    // Every shard carries the file's metadata (the model's ties), so merging them loses none.
    // Hashed while written, not read back; the commit of the folder makes the shard visible.
    const auto meta = metadata.find(stem);
    out.push_back(write_checkpoint_file(tmp, shard_file_name(stem, rank, world), mine,
                                        CheckpointWriteOptions{}.with_ops(ops),
                                        meta == metadata.end() ? Metadata{} : meta->second));
  }
  return out;
}

}  // namespace

ShardedModelCheckpoint::ShardedModelCheckpoint(std::shared_ptr<ProcessGroup> group,
                                               std::shared_ptr<CheckpointManager> manager,
                                               ShardedCheckpointOptions options)
    : group_(std::move(group)), manager_(std::move(manager)), options_(std::move(options)) {
  if (!group_) throw OptionError("ShardedModelCheckpoint needs a process group");
  if (group_->is_main() && !manager_)
    throw OptionError("ShardedModelCheckpoint: rank 0 needs the CheckpointManager");
  if (manager_ && manager_->options().async)
    throw OptionError(
        "sharded checkpoints are written synchronously by every rank: turn async saving off");
  if (!options_.ops) options_.ops = FileOps::real();
}

void ShardedModelCheckpoint::on_batch_end(TrainContext& ctx, std::int64_t, const Logs& logs) {
  if (!options_.step_saves || ctx.batch >= ctx.steps_per_epoch || ctx.at_max_steps()) return;
  const bool want =
      manager_ && manager_->should_save(ctx.epoch, ctx.global_step,
                                        std::chrono::steady_clock::now(), SavePoint::Step);
  if (group_->any(want)) save(ctx, SavePoint::Step, logs);
}

void ShardedModelCheckpoint::on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
  last_.reset();
  const bool want =
      manager_ && manager_->should_save(epoch, ctx.global_step, std::chrono::steady_clock::now(),
                                        SavePoint::EpochEnd);
  if (group_->any(want)) last_ = save(ctx, SavePoint::EpochEnd, logs);
}

SaveResult ShardedModelCheckpoint::save(TrainContext& ctx, SavePoint at, const Logs& metrics) {
  ProcessGroup& g = *group_;
  const int world = g.world_size();
  // Every rank holds the same state (same averaged gradients): each writes a disjoint part of it.
  const TrainingSnapshot snap = ctx.snapshot(metrics);
  ShardedFiles sharded;
  sharded[std::string(kModelStem)] = snap.model.views();
  if (!snap.optimizer.empty()) sharded[RestorePoint::kOptimizerStem] = snap.optimizer.views();

  // Writes this rank's shards (rank 0: and the indexes), then every rank learns every report.
  auto exchange = [&](const fs::path& tmp) {
    Report mine;
    try {
      mine.files = write_my_shards(tmp, sharded, snap.metadata, g.rank(), world, options_.ops);
      if (g.is_main())
        for (const auto& [stem, views] : sharded)
          atomic_write_file(
              tmp / shard_index_file_name(stem),
              shard_index(stem, views, plan_shards(views, world), world).dump(2) + "\n");
      if (options_.after_shards_written) options_.after_shards_written();
    } catch (const DistributedError&) {
      throw;
    } catch (const std::exception& e) {
      mine.ok = false;
      mine.error = e.what();
    }
    const std::string text = to_json(mine).dump();
    std::vector<CheckpointFileInfo> all;
    std::string failure;
    for (int r = 0; r < world; ++r) {
      const Report rep = report_from(g.broadcast_string(r == g.rank() ? text : "", r));
      if (!rep.ok && failure.empty())
        failure = fmt::format("rank {} could not write its shards: {}", r, rep.error);
      all.insert(all.end(), rep.files.begin(), rep.files.end());
    }
    return std::make_pair(all, failure);
  };

  if (!g.is_main()) {
    const std::string tmp = g.broadcast_string("");
    if (!tmp.empty()) exchange(tmp);
    const std::string outcome = g.broadcast_string("");
    if (!outcome.empty())
      throw CheckpointError(
          fmt::format("rank {}: the checkpoint was aborted: {}", g.rank(), outcome));
    SaveResult r;
    r.saved = !tmp.empty();
    return r;
  }

  SaveRequest request;
  request.epoch = ctx.epoch;
  request.step = ctx.global_step;
  request.at = at;
  request.metrics = metrics;
  request.state = snap.state;
  // The indexes are kept in state.json too, where its checksum covers them.
  auto indexes = nlohmann::json::object();
  for (const auto& [stem, views] : sharded)
    indexes[stem] = shard_index(stem, views, plan_shards(views, world), world);
  request.state["shards"] = {{"world_size", world}, {"indexes", indexes}};
  // Written whole by rank 0 while the others write their shards: callbacks.safetensors and the
  // callbacks' own files (ema.safetensors, model-sized, keeps the model's names so it loads).
  if (!snap.callbacks.empty()) request.files[RestorePoint::kCallbacksStem] = snap.callbacks.views();
  for (const auto& [stem, tensors] : snap.callback_files) {
    request.files[stem] = tensors.views();
    if (const auto m = snap.metadata.find(stem); m != snap.metadata.end())
      request.metadata[stem] = m->second;
  }
  bool announced = false;
  request.extra_files = [&](const fs::path& tmp) {
    announced = true;
    g.broadcast_string(tmp.string());
    auto [files, failure] = exchange(tmp);
    if (!failure.empty()) throw CheckpointError("checkpoint aborted: " + failure);
    return files;
  };
  SaveResult result;
  std::exception_ptr error;
  std::string outcome;
  try {
    result = manager_->save(request);
  } catch (const DistributedError&) {
    throw;  // the group is gone: nobody is left to tell
  } catch (const std::exception& e) {
    error = std::current_exception();
    outcome = e.what();
    if (outcome.empty()) outcome = "unknown error";
  }
  if (!announced) g.broadcast_string("");
  g.broadcast_string(outcome);
  if (error) std::rethrow_exception(error);
  // best/ is the manager's: one plain file, the committed shards merged.
  return result;
}

}  // namespace vigil::torch
