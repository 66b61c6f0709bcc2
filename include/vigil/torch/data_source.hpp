// Resumable data sources: where a training loop gets its batches, in the user's own batch type,
// with a state that every checkpoint saves so that a resumed run sees the same next batch.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace vigil::torch {

/// Anything whose position can be saved in a checkpoint's state.json and restored.
class Resumable {
 public:
  virtual ~Resumable() = default;
  /// The position (and whatever else decides what comes next) as JSON.
  virtual nlohmann::json state() const = 0;
  /// Goes back to a position state() gave; throws InputError if it does not fit this source.
  virtual void load_state(const nlohmann::json& state) = 0;
  /// Called before load_state() on a resume with the options the caller changes on purpose
  /// (TrainContext::resume_overrides, e.g. "batch_size"). A source that can follow such a change
  /// (DatasetSource repositions by examples served) accepts it; every other one keeps refusing a
  /// saved state that does not fit. Does nothing by default.
  virtual void accept_overrides(const std::set<std::string>& options) { (void)options; }
};

/// Batches of type `Batch` for training or validation, streamed, sampled or generated.
///
/// Epochs follow PyTorch's DistributedSampler.set_epoch: the loop calls set_epoch(e) before the
/// first batch of pass e over the data (never after load_state(), which restores the position
/// inside a pass), then next() until it returns nullopt, which ends the pass. An endless source
/// never returns nullopt; training from it ends by max_steps.
template <class Batch>
class DataSource : public Resumable {
 public:
  using batch_type = Batch;

  /// Starts pass `epoch` over the data from its beginning (e.g. reshuffled from (seed, epoch)).
  virtual void set_epoch(std::int64_t epoch) = 0;
  /// The next batch of the current pass, or nullopt at its end.
  virtual std::optional<Batch> next() = 0;
  /// Batches in one pass if known (for progress bars and schedules); nullopt = endless/unknown.
  virtual std::optional<std::int64_t> batches_per_epoch() const { return std::nullopt; }
};

}  // namespace vigil::torch
