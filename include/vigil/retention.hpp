// Retention: which checkpoints of a run to keep. Policies are pure functions over a plain
// description of each checkpoint, so they are tested without a disk; CheckpointManager builds the
// descriptions, asks retention_plan() and deletes what the plan removes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vigil/monitor.hpp"

namespace vigil {

struct CheckpointManagerOptions;

/// What a retention policy knows of one committed checkpoint.
struct CheckpointRecord {
  std::string name;            ///< folder name, unique in the run (default empty)
  std::uint64_t sequence = 0;  ///< save order of the run, newer = larger (default 0)
  std::int64_t epoch = 0;      ///< 0-based epoch (default 0)
  std::int64_t step = 0;       ///< optimizer steps taken (default 0)
  /// Taken at an epoch end (SavePoint::EpochEnd) rather than after a step (default true).
  bool epoch_end = true;
  /// The monitored metric, or none when the checkpoint lacks it (a mid-epoch save) or the run
  /// has no monitor (default none). May be NaN.
  std::optional<double> value;
  bool is_best = false;    ///< it is the run's best (best/ was copied from it) (default false)
  bool is_newest = false;  ///< it is the newest checkpoint (`last`) (default false)
};

/// Decides, for a list of checkpoints ordered oldest first (by sequence), which ones it keeps.
/// A policy never deletes: the manager removes a checkpoint only when no policy of the union
/// keeps it. Implementations must be pure (same records, same answer) and may be called from
/// the manager's background writer thread.
class RetentionPolicy {
 public:
  virtual ~RetentionPolicy() = default;
  /// One flag per record, in the same order: true = this policy keeps the record.
  [[nodiscard]] virtual std::vector<bool> keep(std::span<const CheckpointRecord> records) const = 0;
};

/// The k best checkpoints by their monitored value in `mode` (Lightning save_top_k). Ties rank
/// the newer first, NaN ranks last, and records without a value are never ranked (so never kept
/// by this policy).
class KeepTopK final : public RetentionPolicy {
 public:
  /// k: how many to keep, -1 = all ranked ones, 0 = none. mode: which way is better.
  KeepTopK(int k, Mode mode) : k_(k), mode_(mode) {}
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;

 private:
  int k_;
  Mode mode_;
};

/// The n newest checkpoints (HF save_total_limit, Orbax max_to_keep).
class KeepLastN final : public RetentionPolicy {
 public:
  /// n: how many to keep, -1 = all, 0 = none.
  explicit KeepLastN(int n) : n_(n) {}
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;

 private:
  int n_;
};

/// Every checkpoint taken at an epoch end with (epoch + 1) % n == 0, so periodic snapshots
/// survive for good (Orbax keep_period).
class KeepEveryNEpochs final : public RetentionPolicy {
 public:
  /// n: the period in epochs; 0 or less = keeps nothing.
  explicit KeepEveryNEpochs(int n) : n_(n) {}
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;

 private:
  int n_;
};

/// The record marked is_best.
class KeepBest final : public RetentionPolicy {
 public:
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;
};

/// The record marked is_newest.
class KeepNewest final : public RetentionPolicy {
 public:
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;
};

/// The union: a record is kept when any of the policies keeps it (none = keeps nothing).
class AnyOf final : public RetentionPolicy {
 public:
  /// policies: the members of the union; null entries are ignored.
  explicit AnyOf(std::vector<std::shared_ptr<const RetentionPolicy>> policies)
      : policies_(std::move(policies)) {}
  [[nodiscard]] std::vector<bool> keep(std::span<const CheckpointRecord> records) const override;

 private:
  std::vector<std::shared_ptr<const RetentionPolicy>> policies_;
};

/// The union the options describe: KeepBest, KeepNewest, and KeepTopK(save_top_k, mode),
/// KeepLastN(keep_last), KeepEveryNEpochs(keep_every_n_epochs) and `retention` where set.
/// Returns nullptr when none of save_top_k, keep_last and retention is set: then every
/// checkpoint is kept. Throws OptionError as resolve_mode() does for an unresolvable mode.
[[nodiscard]] std::shared_ptr<const RetentionPolicy> retention_policy(
    const CheckpointManagerOptions& options);

/// Names of the records to keep and to remove, each in record order.
struct RetentionPlan {
  std::vector<std::string> keep;
  std::vector<std::string> remove;
};

/// Applies retention_policy(options) to `records` (oldest first). Pure: reads no file.
[[nodiscard]] RetentionPlan retention_plan(const CheckpointManagerOptions& options,
                                           std::span<const CheckpointRecord> records);

/// Splits `records` by a policy's answer (nullptr keeps everything).
[[nodiscard]] RetentionPlan retention_plan(const RetentionPolicy* policy,
                                           std::span<const CheckpointRecord> records);

}  // namespace vigil
