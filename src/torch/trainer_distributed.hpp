// The Trainer's data-parallel steps (private to src/torch): how a rank trains on its shard of a
// global batch, validates its shard, and agrees with the others on where to start and when to stop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "vigil/torch/callback.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/trainer.hpp"

namespace vigil::torch::detail {

/// After CallbackList::on_train_begin: every rank takes rank 0's restore point (the folder rank 0
/// resumed from, opened and verified by each rank; none = a fresh start), then rank 0's weights,
/// and checks that all ranks stand at the same epoch, batch and step.
void agree_on_start(ProcessGroup& group, TrainContext& ctx, CallbackList& callbacks);

/// One optimizer step's worth of work on this rank's shard of global batch `b`, with the
/// gradients all-reduced (weighted by shard size, so they are the global batch's) and the batch's
/// metrics summed over ranks. `interrupt` is polled here and its answer agreed. The gradients are
/// those of the global batch's mean loss times `loss_scale` (added to any already accumulated).
struct DataParallelStep {
  double loss = 0;           ///< mean loss over the global batch
  std::int64_t count = 0;    ///< examples in the global batch
  std::int64_t correct = 0;  ///< classification: correct predictions in the global batch
  std::optional<std::string> interrupt;  ///< set on every rank when any rank was interrupted
};
DataParallelStep data_parallel_step(ProcessGroup& group, const Model& model, const LossFn& loss,
                                    const Batch& b, bool classification,
                                    const std::function<std::optional<std::string>()>& interrupt,
                                    double loss_scale = 1.0);

/// evaluate() over this rank's shard of `data`, with the sums all-reduced: every rank gets the
/// metrics of the whole data set.
Logs evaluate_sharded(ProcessGroup& group, const Model& model, const Dataset& data,
                      std::int64_t batch_size, const LossFn& loss);

/// After the epoch-end callbacks: if any rank asked to stop, every rank stops, with the reason
/// of the lowest such rank.
void agree_on_stop(ProcessGroup& group, TrainContext& ctx);

}  // namespace vigil::torch::detail
