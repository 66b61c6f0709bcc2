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

void DatasetSource::start(std::int64_t epoch, std::int64_t position) {
  epoch_ = epoch;
  batches_.emplace(data_, epoch_order(data_.size(), options_.seed, epoch, options_.shuffle),
                   options_.batch_size, std::min(position, data_.size()), options_.drop_last);
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
  // batch size, and next_index() would point back at that batch. "position" (examples served)
  // is what a resume with another batch size continues from.
  const std::int64_t bs = options_.batch_size;
  return {{"epoch", epoch_},
          {"batch", (batches_->position() + bs - 1) / bs},
          {"position", batches_->position()},
          {"size", data_.size()},
          {"batch_size", options_.batch_size}};
}

void DatasetSource::accept_overrides(const std::set<std::string>& options) {
  batch_size_may_change_ = options.count("batch_size") > 0;
}

void DatasetSource::load_state(const nlohmann::json& state) {
  if (!state.is_object() || !state.contains("epoch") || !state.contains("batch"))
    throw InputError("the data position in the checkpoint is not {\"epoch\", \"batch\"}");
  const auto epoch = state.at("epoch").get<std::int64_t>();
  const auto batch = state.at("batch").get<std::int64_t>();
  if (state.contains("size") && state.at("size").get<std::int64_t>() != data_.size())
    throw InputError(fmt::format("it was trained on {} examples, this run has {}",
                                 state.at("size").get<std::int64_t>(), data_.size()));
  // Older checkpoints carry no batch size: their batch index is checked against this pass.
  const std::int64_t saved_bs = state.value("batch_size", options_.batch_size);
  if (saved_bs != options_.batch_size && !batch_size_may_change_)
    throw InputError(fmt::format(
        "it was trained with batch size {}, this run uses {} (name \"batch_size\" in the resume "
        "overrides to change it on purpose)",
        saved_bs, options_.batch_size));
  if (epoch < 0 || batch < 0)
    throw InputError(
        fmt::format("the data position (epoch {}, batch {}) is negative", epoch, batch));
  const std::int64_t batches = options_.drop_last
                                   ? data_.size() / options_.batch_size
                                   : (data_.size() + options_.batch_size - 1) / options_.batch_size;
  if (saved_bs == options_.batch_size && batch > batches)
    throw InputError(fmt::format(
        "it stopped at batch {} of an epoch that now has {} batches (the training data or batch "
        "size changed)",
        batch, batches));
  // The examples served: with another batch size (on purpose) the pass goes on after them, none
  // twice; after a resume with another size they need not be a multiple of the batch size.
  // Older checkpoints say only the batch, past a final short one at the end of a pass.
  const std::int64_t position = state.value("position", std::min(batch * saved_bs, data_.size()));
  if (position < 0 || position > data_.size())
    throw InputError(
        fmt::format("it stopped after {} examples of a pass of {}", position, data_.size()));
  start(epoch, position);
}

}  // namespace vigil::torch
