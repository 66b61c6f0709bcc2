// The built-in retention policies and the plan the manager applies. No I/O here.
#include "vigil/retention.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include "vigil/checkpoint_manager.hpp"

namespace vigil {

namespace {

// How many of `available` a count setting keeps: -1 (any negative) = all.
std::size_t count_of(int setting, std::size_t available) {
  return setting < 0 ? available : std::min(static_cast<std::size_t>(setting), available);
}

// policy.keep(records), refused when it answers for a different number of records: such an
// answer (a bug in a user's policy) cannot say which checkpoint it meant, so nothing is removed.
std::vector<bool> checked_keep(const RetentionPolicy& policy,
                               std::span<const CheckpointRecord> records) {
  auto kept = policy.keep(records);
  if (kept.size() != records.size()) {
    throw Error(fmt::format(
        "a retention policy answered for {} checkpoints instead of {}; nothing was removed",
        kept.size(), records.size()));
  }
  return kept;
}

}  // namespace

std::vector<bool> KeepTopK::keep(std::span<const CheckpointRecord> records) const {
  std::vector<std::size_t> ranked;  // indices of the records with a value
  for (std::size_t i = 0; i < records.size(); ++i)
    if (records[i].value) ranked.push_back(i);
  // Better first; NaN last; equal values (and NaN among themselves): the newer first.
  std::stable_sort(ranked.begin(), ranked.end(), [&](std::size_t ia, std::size_t ib) {
    const auto& a = records[ia];
    const auto& b = records[ib];
    const double va = *a.value, vb = *b.value;
    const bool an = std::isnan(va), bn = std::isnan(vb);
    if (an != bn) return bn;
    if (!an && va != vb) return mode_ == Mode::Min ? va < vb : va > vb;
    return a.sequence > b.sequence;
  });
  std::vector<bool> out(records.size(), false);
  const std::size_t k = count_of(k_, ranked.size());
  for (std::size_t i = 0; i < k; ++i) out[ranked[i]] = true;
  return out;
}

std::vector<bool> KeepLastN::keep(std::span<const CheckpointRecord> records) const {
  std::vector<bool> out(records.size(), false);
  const std::size_t n = count_of(n_, records.size());
  std::fill(out.end() - static_cast<std::ptrdiff_t>(n), out.end(), true);
  return out;
}

std::vector<bool> KeepEveryNEpochs::keep(std::span<const CheckpointRecord> records) const {
  std::vector<bool> out(records.size(), false);
  if (n_ <= 0) return out;
  for (std::size_t i = 0; i < records.size(); ++i)
    out[i] = records[i].epoch_end && (records[i].epoch + 1) % n_ == 0;
  return out;
}

std::vector<bool> KeepBest::keep(std::span<const CheckpointRecord> records) const {
  std::vector<bool> out(records.size(), false);
  for (std::size_t i = 0; i < records.size(); ++i) out[i] = records[i].is_best;
  return out;
}

std::vector<bool> KeepNewest::keep(std::span<const CheckpointRecord> records) const {
  std::vector<bool> out(records.size(), false);
  for (std::size_t i = 0; i < records.size(); ++i) out[i] = records[i].is_newest;
  return out;
}

std::vector<bool> AnyOf::keep(std::span<const CheckpointRecord> records) const {
  std::vector<bool> out(records.size(), false);
  for (const auto& policy : policies_) {
    if (!policy) continue;
    const auto kept = checked_keep(*policy, records);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = out[i] || kept[i];
  }
  return out;
}

std::shared_ptr<const RetentionPolicy> retention_policy(const CheckpointManagerOptions& options) {
  if (!options.save_top_k && !options.keep_last && !options.retention) return nullptr;
  std::vector<std::shared_ptr<const RetentionPolicy>> parts;
  parts.push_back(std::make_shared<KeepBest>());
  parts.push_back(std::make_shared<KeepNewest>());
  if (options.save_top_k) {
    const Mode mode =
        options.monitor.empty() ? Mode::Min : resolve_mode(options.monitor, options.mode);
    parts.push_back(std::make_shared<KeepTopK>(*options.save_top_k, mode));
  }
  if (options.keep_last) parts.push_back(std::make_shared<KeepLastN>(*options.keep_last));
  if (options.keep_every_n_epochs > 0)
    parts.push_back(std::make_shared<KeepEveryNEpochs>(options.keep_every_n_epochs));
  if (options.retention) parts.push_back(options.retention);
  return std::make_shared<AnyOf>(std::move(parts));
}

RetentionPlan retention_plan(const RetentionPolicy* policy,
                             std::span<const CheckpointRecord> records) {
  RetentionPlan plan;
  if (!policy) {
    for (const auto& r : records) plan.keep.push_back(r.name);
    return plan;
  }
  const auto kept = checked_keep(*policy, records);
  for (std::size_t i = 0; i < records.size(); ++i)
    (kept[i] ? plan.keep : plan.remove).push_back(records[i].name);
  return plan;
}

RetentionPlan retention_plan(const CheckpointManagerOptions& options,
                             std::span<const CheckpointRecord> records) {
  const auto policy = retention_policy(options);
  return retention_plan(policy.get(), records);
}

}  // namespace vigil
