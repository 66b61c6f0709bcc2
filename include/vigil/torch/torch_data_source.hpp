// TorchDataSource: batches from a libtorch map-style data set (torch::data::datasets::MNIST, a
// user's Dataset subclass, or one .map()ped with transforms), shuffled per pass and resumable.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// Options of TorchDataSource.
struct TorchDataOptions {
  /// Examples per batch (default 32).
  std::int64_t batch_size = 32;
  /// Reorder the examples every pass by epoch_order(size, seed, epoch); false = index order
  /// every pass (default true).
  bool shuffle = true;
  /// Seeds the order (default 0).
  std::uint64_t seed = 0;
  /// Leave out the last batch of a pass when it is short (default false).
  bool drop_last = false;

  VIGIL_SETTER(batch_size)
  VIGIL_SETTER(shuffle)
  VIGIL_SETTER(seed)
  VIGIL_SETTER(drop_last)

  /// Throws OptionError for batch_size < 1.
  void validate() const {
    if (batch_size < 1)
      throw OptionError(fmt::format("torch data source: batch_size {} must be >= 1", batch_size));
  }
};

namespace detail {
/// The example types libtorch's transforms::Stack can collate.
template <class E>
inline constexpr bool kStackable =
    std::is_same_v<E, ::torch::data::Example<>> || std::is_same_v<E, ::torch::data::TensorExample>;

/// What get_batch() returns collated: Stack's result for a vector of stackable examples,
/// otherwise the raw batch itself (e.g. a data set already mapped with Stack<>()).
template <class Raw>
struct DefaultBatch {
  using type = Raw;
};
template <class E>
requires kStackable<E>
struct DefaultBatch<std::vector<E>> {
  using type = E;
};
}  // namespace detail

/// Batches of a sized, map-style libtorch data set, in an order that depends only on
/// (seed, epoch) (the same epoch_order as vigil's Trainer), so the state is (epoch, position).
///
/// Examples are fetched with the data set's get_batch(indices), so a data set mapped with
/// example transforms (Normalize, ...) works. Batches are collated by `collate`; by default
/// vectors of Example<> or TensorExample are stacked with transforms::Stack, and a batch that is
/// already collated (a data set mapped with Stack<>()) is passed on as it is.
///
/// Why not libtorch's samplers: RandomSampler draws its order from torch's global generator,
/// which weight init and dropout also consume, and saves its state only to binary archives;
/// an order from two integers resumes from JSON and is the same on every machine.
///
///     namespace td = ::torch::data;
///     auto mnist = td::datasets::MNIST("data/mnist")
///                      .map(td::transforms::Normalize<>(0.1307, 0.3081));
///     vigil::torch::TorchDataSource train(std::move(mnist),
///                                         vigil::torch::TorchDataOptions{}.with_batch_size(64));
///     train.set_epoch(0);
///     while (auto batch = train.next()) { /* batch->data [64,1,28,28], batch->target [64] */ }
template <class Dataset,
          class Batch = typename detail::DefaultBatch<typename Dataset::BatchType>::type>
class TorchDataSource : public DataSource<Batch> {
 public:
  using RawBatch = typename Dataset::BatchType;
  using Collate = std::function<Batch(RawBatch)>;

  /// Throws OptionError for bad options, an unsized data set, or (without a default) no
  /// collate function.
  explicit TorchDataSource(Dataset dataset, TorchDataOptions options = {}, Collate collate = {})
      : dataset_(std::move(dataset)), options_(options), collate_(std::move(collate)) {
    static_assert(std::is_same_v<typename Dataset::BatchRequestType, ::c10::ArrayRef<size_t>>,
                  "TorchDataSource needs a map-style data set (get_batch(ArrayRef<size_t>))");
    options_.validate();
    const auto size = dataset_.size();
    if (!size)
      throw OptionError(
          "torch data source: the data set has no size (a stream data set cannot "
          "be shuffled or resumed by position)");
    size_ = static_cast<std::int64_t>(*size);
    if (!collate_) {
      if constexpr (std::is_same_v<RawBatch, Batch>) {
        collate_ = [](RawBatch raw) { return raw; };
      } else if constexpr (std::is_same_v<RawBatch, std::vector<Batch>> &&
                           detail::kStackable<Batch>) {
        collate_ = [](RawBatch raw) {
          return ::torch::data::transforms::Stack<Batch>().apply_batch(std::move(raw));
        };
      } else {
        throw OptionError(
            "torch data source: give a collate function (this example type has "
            "no default collation)");
      }
    }
    set_epoch(0);
  }

  void set_epoch(std::int64_t epoch) override {
    if (epoch < 0) throw OptionError(fmt::format("epoch {} must be >= 0", epoch));
    epoch_ = epoch;
    position_ = 0;
    order_ = epoch_order(size_, options_.seed, epoch, options_.shuffle);
  }

  std::optional<Batch> next() override {
    if (position_ >= *batches_per_epoch()) return std::nullopt;
    const auto first = position_ * options_.batch_size;
    const auto last = std::min(first + options_.batch_size, size_);
    std::vector<size_t> indices;
    indices.reserve(static_cast<std::size_t>(last - first));
    for (auto i = first; i < last; ++i)
      indices.push_back(static_cast<size_t>(order_[static_cast<std::size_t>(i)]));
    ++position_;
    return collate_(dataset_.get_batch(indices));
  }

  std::optional<std::int64_t> batches_per_epoch() const override {
    const auto b = options_.batch_size;
    return options_.drop_last ? size_ / b : (size_ + b - 1) / b;
  }

  /// {"kind": "torch_data", "epoch", "position" (batches served in this pass), and the size and
  /// options that decide the order, which load_state() compares}.
  nlohmann::json state() const override {
    return {{"kind", "torch_data"},
            {"epoch", epoch_},
            {"position", position_},
            {"examples", size_},
            {"batch_size", options_.batch_size},
            {"shuffle", options_.shuffle},
            {"seed", fmt::format("{:016x}", options_.seed)},
            {"drop_last", options_.drop_last}};
  }

  /// Throws InputError naming the difference if `state` came from another data set size or
  /// other options.
  void load_state(const nlohmann::json& state) override {
    if (!state.is_object() || state.value("kind", std::string()) != "torch_data")
      throw InputError(fmt::format("torch data source: the saved data state is not one: {}",
                                   state.dump().substr(0, 200)));
    const auto mine = this->state();
    for (const char* key : {"examples", "batch_size", "shuffle", "seed", "drop_last"}) {
      if (!state.contains(key) || state[key] != mine[key])
        throw InputError(fmt::format(
            "torch data source: the saved data state has {} = {} but this source has {}; "
            "resume with the same data set and options",
            key, state.contains(key) ? state[key].dump() : "nothing", mine[key].dump()));
    }
    const auto e = state.value("epoch", nlohmann::json());
    const auto p = state.value("position", nlohmann::json());
    if (!e.is_number_integer() || !p.is_number_integer() || e.template get<std::int64_t>() < 0 ||
        p.template get<std::int64_t>() < 0 || p.template get<std::int64_t>() > *batches_per_epoch())
      throw InputError(fmt::format(
          "torch data source: the saved epoch/position {}/{} is not a position in a pass of {} "
          "batches",
          e.dump(), p.dump(), *batches_per_epoch()));
    set_epoch(e.template get<std::int64_t>());
    position_ = p.template get<std::int64_t>();
  }

  Dataset& dataset() { return dataset_; }
  const TorchDataOptions& options() const { return options_; }
  /// Examples in the data set.
  std::int64_t size() const { return size_; }

 private:
  Dataset dataset_;
  TorchDataOptions options_;
  Collate collate_;
  std::int64_t size_ = 0;
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;
};

}  // namespace vigil::torch
