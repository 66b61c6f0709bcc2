// DatasetSource: an in-memory Dataset as a resumable DataSource, shuffled per epoch from a seed,
// so that pass e's order depends only on (seed, e) and a resume continues at the same batch.
#pragma once

#include <cstdint>
#include <optional>

#include "vigil/setter.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/datasets.hpp"

namespace vigil::torch {

/// Options of DatasetSource.
struct DatasetSourceOptions {
  /// Examples per batch (default 64).
  std::int64_t batch_size = 64;
  /// Seeds the order: pass e's order is epoch_order(size, seed, e, shuffle) (default 0).
  std::uint64_t seed = 0;
  /// Shuffle every pass; false = the data set's order (default true).
  bool shuffle = true;
  /// Skip a final batch smaller than batch_size (default false).
  bool drop_last = false;

  VIGIL_SETTER(batch_size)
  VIGIL_SETTER(seed)
  VIGIL_SETTER(shuffle)
  VIGIL_SETTER(drop_last)
};

/// Batches of an in-memory Dataset. State: {"epoch", "batch", "position"} (the next batch's
/// index in the pass, the examples served), checked against the data set's size and batch size
/// on load; a batch size changed on purpose (accept_overrides with "batch_size") goes on after
/// the examples already served.
class DatasetSource : public DataSource<Batch> {
 public:
  /// Throws OptionError for batch_size < 1 and InputError for an empty data set.
  explicit DatasetSource(Dataset data, DatasetSourceOptions options = {});

  void set_epoch(std::int64_t epoch) override;
  std::optional<Batch> next() override;
  std::optional<std::int64_t> batches_per_epoch() const override;
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  void accept_overrides(const std::set<std::string>& options) override;

  const Dataset& data() const { return data_; }
  const DatasetSourceOptions& options() const { return options_; }

 private:
  void start(std::int64_t epoch, std::int64_t position);
  Dataset data_;
  DatasetSourceOptions options_;
  std::int64_t epoch_ = 0;
  std::optional<BatchIterator> batches_;
  bool batch_size_may_change_ = false;
};

}  // namespace vigil::torch
