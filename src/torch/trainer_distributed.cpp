// The Trainer's data-parallel steps: shard, all-reduce, agree.
#include "trainer_distributed.hpp"

#include <fmt/core.h>

#include <cmath>

namespace vigil::torch::detail {

void agree_on_start(ProcessGroup& group, TrainContext& ctx, CallbackList& callbacks) {
  const std::string local = ctx.resumed_from ? ctx.resumed_from->string() : std::string();
  const std::string chosen = group.broadcast_string(local);
  std::string problem;
  if (!group.is_main() && chosen != local) {
    if (chosen.empty()) {
      problem =
          fmt::format("rank {} resumed from {} but rank 0 started afresh", group.rank(), local);
    } else {
      try {
        ctx.restore(RestorePoint::open(chosen));
        for (const auto& c : callbacks.callbacks()) c->on_resume(ctx);
      } catch (const std::exception& e) {
        problem = fmt::format("rank {} cannot resume from rank 0's checkpoint: {}", group.rank(),
                              e.what());
      }
    }
  }
  // Every rank reports before any throws, so that no rank is left waiting in a collective.
  if (group.any(!problem.empty())) {
    if (problem.empty()) problem = "another rank could not take rank 0's starting point";
    throw InputError(problem +
                     " (a sharded or multi-host run needs the run directory on every "
                     "rank, e.g. on shared storage)");
  }
  group.broadcast_module(*ctx.model);
  const std::vector<double> at = {static_cast<double>(ctx.epoch), static_cast<double>(ctx.batch),
                                  static_cast<double>(ctx.global_step)};
  const auto hi = group.all_reduce_max(at);
  const auto lo = group.all_reduce_max({-at[0], -at[1], -at[2]});
  if (hi[0] != -lo[0] || hi[1] != -lo[1] || hi[2] != -lo[2])
    throw InputError(
        fmt::format("the ranks start at different points (rank {}: epoch {}, batch {}, step {})",
                    group.rank(), ctx.epoch, ctx.batch, ctx.global_step));
}

DataParallelStep data_parallel_step(ProcessGroup& group, const Model& model, const LossFn& loss,
                                    const Batch& b, bool classification,
                                    const std::function<std::optional<std::string>()>& interrupt,
                                    double loss_scale) {
  group.broadcast_buffers(*model.module);
  const std::int64_t global = b.features.size(0);
  const ShardRange shard = shard_range(global, group.rank(), group.world_size());
  double loss_sum = 0;
  std::int64_t correct = 0;
  if (shard.size() > 0) {
    auto x = b.features.slice(0, shard.begin, shard.end);
    auto y = b.targets.slice(0, shard.begin, shard.end);
    auto out = model.forward(x);
    auto l = loss(out, y);
    if (loss_scale == 1.0)
      l.backward();
    else
      (l * loss_scale).backward();
    loss_sum = l.item<double>() * static_cast<double>(shard.size());
    if (classification) correct = out.detach().argmax(1).eq(y).sum().item<std::int64_t>();
  }
  std::optional<std::string> reason = interrupt ? interrupt() : std::nullopt;
  group.all_reduce_gradients(*model.module,
                             static_cast<double>(shard.size()) / static_cast<double>(global));
  const auto sums =
      group.all_reduce_sum({loss_sum, static_cast<double>(correct), reason ? 1.0 : 0.0});
  DataParallelStep r;
  r.loss = sums[0] / static_cast<double>(global);
  r.count = global;
  r.correct = std::llround(sums[1]);
  if (sums[2] > 0) {
    // Every rank takes this branch, so the extra collectives are safe: the reason is the one the
    // lowest rank that saw the interrupt gave ("interrupted by SIGINT"), whichever rank that is,
    // not "another rank" on the ones the signal reached a moment later.
    const int n = group.world_size();
    const double mine = reason ? static_cast<double>(n - group.rank()) : 0.0;
    const int root = n - static_cast<int>(group.all_reduce_max({mine})[0]);
    r.interrupt = group.broadcast_string(reason ? *reason : std::string(), root);
  }
  return r;
}

Logs evaluate_sharded(ProcessGroup& group, const Model& model, const Dataset& data,
                      std::int64_t batch_size, const LossFn& loss) {
  const ShardRange shard = shard_range(data.size(), group.rank(), group.world_size());
  double loss_sum = 0;
  double correct = 0;
  bool has_accuracy = false;
  if (shard.size() > 0) {
    const Dataset mine{data.features.slice(0, shard.begin, shard.end),
                       data.targets.slice(0, shard.begin, shard.end)};
    const Logs local = evaluate(model, mine, batch_size, loss);
    const auto n = static_cast<double>(shard.size());
    loss_sum = local.at("loss") * n;
    if (auto it = local.find("accuracy"); it != local.end()) {
      has_accuracy = true;
      correct = std::round(it->second * n);
    }
  }
  const auto sums = group.all_reduce_sum({loss_sum, correct, has_accuracy ? 1.0 : 0.0});
  const auto n = static_cast<double>(data.size());
  Logs logs{{"loss", sums[0] / n}};
  if (sums[2] > 0) logs["accuracy"] = sums[1] / n;
  return logs;
}

void agree_on_stop(ProcessGroup& group, TrainContext& ctx) {
  // The lowest rank that asked wins: max of (world - rank) over the ranks that asked.
  const double mine =
      ctx.stop_training ? static_cast<double>(group.world_size() - group.rank()) : 0;
  const double top = group.all_reduce_max({mine})[0];
  if (top <= 0) return;
  const int who = group.world_size() - static_cast<int>(top);
  const std::string reason = group.broadcast_string(ctx.stop_reason, who);
  if (!ctx.stop_training) ctx.request_stop(reason);
}

}  // namespace vigil::torch::detail
