// GeneratorSource: batches made by a function of (step, seed), e.g. synthetic data or a
// procedurally generated task; resumable because the step count is the whole state.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/data_source.hpp"

namespace vigil::torch {

/// Options of GeneratorSource.
struct GeneratorOptions {
  /// Passed to the function with every step (default 0).
  std::uint64_t seed = 0;
  /// Batches per pass (default: endless, next() never ends a pass).
  std::optional<std::int64_t> batches_per_epoch;

  VIGIL_SETTER(seed)
  VIGIL_SETTER(batches_per_epoch)

  /// Throws OptionError for batches_per_epoch < 1.
  void validate() const {
    if (batches_per_epoch && *batches_per_epoch < 1)
      throw OptionError(fmt::format(
          "generator source: batches_per_epoch {} must be >= 1 (or unset)", *batches_per_epoch));
  }
};

/// Calls `generate(step, seed)` for each batch; step counts batches over all passes (0, 1, ...),
/// so passes never repeat a batch. The function must depend on nothing but its arguments (seed
/// a local generator from them, not torch's global one) for a resumed run to see the same data.
///
///     vigil::torch::GeneratorSource<vigil::torch::TokenBatch> data(
///         [](std::int64_t step, std::uint64_t seed) {
///           auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003 + step);
///           auto x = ::torch::randint(10, {32, 16}, gen, ::torch::kLong);
///           return vigil::torch::TokenBatch{x, x.flip(1)};  // learn to reverse
///         });
///     data.set_epoch(0);
///     auto batch = data.next();  // endless: never nullopt
template <class Batch>
class GeneratorSource : public DataSource<Batch> {
 public:
  using Generate = std::function<Batch(std::int64_t step, std::uint64_t seed)>;

  /// Throws OptionError for bad options or an empty function.
  explicit GeneratorSource(Generate generate, GeneratorOptions options = {})
      : generate_(std::move(generate)), options_(options) {
    options_.validate();
    if (!generate_) throw OptionError("generator source: the generating function is empty");
  }

  void set_epoch(std::int64_t epoch) override {
    if (epoch < 0) throw OptionError(fmt::format("epoch {} must be >= 0", epoch));
    epoch_ = epoch;
    position_ = 0;
  }

  std::optional<Batch> next() override {
    if (options_.batches_per_epoch && position_ >= *options_.batches_per_epoch) return std::nullopt;
    auto batch = generate_(step_, options_.seed);
    ++step_;
    ++position_;
    return batch;
  }

  std::optional<std::int64_t> batches_per_epoch() const override {
    return options_.batches_per_epoch;
  }

  /// {"kind": "generator", "step" (batches made so far), "epoch", "position" (batches made in
  /// this pass), "seed", "batches_per_epoch"}.
  nlohmann::json state() const override {
    return {{"kind", "generator"},
            {"step", step_},
            {"epoch", epoch_},
            {"position", position_},
            {"seed", fmt::format("{:016x}", options_.seed)},
            {"batches_per_epoch", options_.batches_per_epoch
                                      ? nlohmann::json(*options_.batches_per_epoch)
                                      : nlohmann::json(nullptr)}};
  }

  /// Throws InputError for a state of another kind, seed or pass length.
  void load_state(const nlohmann::json& state) override {
    const auto mine = this->state();
    if (!state.is_object() || state.value("kind", std::string()) != "generator")
      throw InputError(fmt::format("generator source: the saved data state is not one: {}",
                                   state.dump().substr(0, 200)));
    for (const char* key : {"seed", "batches_per_epoch"}) {
      if (!state.contains(key) || state[key] != mine[key])
        throw InputError(fmt::format(
            "generator source: the saved data state has {} = {} but this source has {}", key,
            state.contains(key) ? state[key].dump() : "nothing", mine[key].dump()));
    }
    for (const char* key : {"step", "epoch", "position"}) {
      if (!state.contains(key) || !state[key].is_number_integer() ||
          state[key].template get<std::int64_t>() < 0)
        throw InputError(
            fmt::format("generator source: the saved data state needs an integer {} >= 0", key));
    }
    step_ = state["step"].template get<std::int64_t>();
    epoch_ = state["epoch"].template get<std::int64_t>();
    position_ = state["position"].template get<std::int64_t>();
  }

  /// Batches made so far, over all passes.
  std::int64_t step() const { return step_; }

 private:
  Generate generate_;
  GeneratorOptions options_;
  std::int64_t step_ = 0;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;
};

}  // namespace vigil::torch
