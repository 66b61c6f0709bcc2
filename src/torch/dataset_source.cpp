// DatasetSource: seeded per-pass order over an in-memory data set, resumable at any batch.
#include "vigil/torch/dataset_source.hpp"

#include <fmt/core.h>

#include <algorithm>

#include "vigil/error.hpp"
#include "vigil/torch/rng_state.hpp"

namespace vigil::torch {

DatasetSource::DatasetSource(Dataset data, DatasetSourceOptions options)
    : data_(std::move(data)), options_(options) {
  if (options_.batch_size < 1)
    throw OptionError(fmt::format("batch_size must be >= 1, got {}", options_.batch_size));
  if (data_.size() == 0) throw InputError("the data set has no examples");
  start(0, 0);
}

void DatasetSource::start(std::int64_t epoch, std::int64_t batch) {
  epoch_ = epoch;
  batches_.emplace(data_, epoch_order(data_.size(), options_.seed, epoch, options_.shuffle),
                   options_.batch_size, std::min(batch * options_.batch_size, data_.size()),
                   options_.drop_last);
}

void DatasetSource::set_epoch(std::int64_t epoch) {
  if (epoch < 0) throw OptionError(fmt::format("epoch must be >= 0, got {}", epoch));
  start(epoch, 0);
}

std::optional<Batch> DatasetSource::next() {
  if (batches_->done()) return std::nullopt;
  return batches_->next();
}

std::optional<std::int64_t> DatasetSource::batches_per_epoch() const {
  return batches_->num_batches();
}

nlohmann::json DatasetSource::state() const {
  // Batches served so far: after a final short batch the position is not a multiple of the
  // batch size, and next_index() would point back at that batch.
  const std::int64_t bs = options_.batch_size;
  return {{"epoch", epoch_},
          {"batch", (batches_->position() + bs - 1) / bs},
          {"size", data_.size()},
          {"batch_size", options_.batch_size}};
}

void DatasetSource::load_state(const nlohmann::json& state) {
  if (!state.is_object() || !state.contains("epoch") || !state.contains("batch"))
    throw InputError("the data position in the checkpoint is not {\"epoch\", \"batch\"}");
  const auto epoch = state.at("epoch").get<std::int64_t>();
  const auto batch = state.at("batch").get<std::int64_t>();
  // Older checkpoints carry no size: their batch index is still checked against this pass.
  if (state.contains("batch_size") &&
      state.at("batch_size").get<std::int64_t>() != options_.batch_size)
    throw InputError(fmt::format("it was trained with batch size {}, this run uses {}",
                                 state.at("batch_size").get<std::int64_t>(), options_.batch_size));
  if (state.contains("size") && state.at("size").get<std::int64_t>() != data_.size())
    throw InputError(fmt::format("it was trained on {} examples, this run has {}",
                                 state.at("size").get<std::int64_t>(), data_.size()));
  const std::int64_t batches = options_.drop_last
                                   ? data_.size() / options_.batch_size
                                   : (data_.size() + options_.batch_size - 1) / options_.batch_size;
  if (epoch < 0 || batch < 0 || batch > batches)
    throw InputError(fmt::format(
        "it stopped at batch {} of an epoch that now has {} batches (the training data or batch "
        "size changed)",
        batch, batches));
  start(epoch, batch);
}

}  // namespace vigil::torch
