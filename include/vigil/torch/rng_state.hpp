// Random-number state for exact resume: libtorch's default CPU generator (dropout, init) and
// ShuffleRng, vigil's own small seeded generator for the data order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// A copy of the default CPU generator's state (a U8 tensor, as torch.get_rng_state() returns),
/// read under the generator's mutex.
::torch::Tensor get_torch_rng_state();
/// Restores a state from get_torch_rng_state() (under the generator's mutex); throws InputError
/// if it is not a U8 tensor of the size libtorch expects.
void set_torch_rng_state(const ::torch::Tensor& state);
/// The same state as JSON: {"torch_cpu": "<base64 of the bytes>"}.
nlohmann::json torch_rng_state_json();
/// Restores from torch_rng_state_json(); throws InputError on malformed input.
void set_torch_rng_state_json(const nlohmann::json& json);

/// Seeds the default CPU generator (torch::manual_seed).
void seed_torch(std::uint64_t seed);

/// xoshiro256** seeded through splitmix64: 32 bytes of state, the same sequence on every
/// platform and standard library (unlike std::uniform_int_distribution), serializable as JSON.
class ShuffleRng {
 public:
  explicit ShuffleRng(std::uint64_t seed = 0);

  /// Next 64 random bits.
  std::uint64_t next();
  /// Uniform in [0, bound) without modulo bias (Lemire's method); bound must be > 0.
  std::uint64_t below(std::uint64_t bound);
  /// Fisher-Yates shuffle in place.
  void shuffle(std::span<std::int64_t> values);
  /// A uniformly random permutation of 0..n-1.
  std::vector<std::int64_t> permutation(std::int64_t n);

  /// {"algorithm": "xoshiro256**", "state": ["<16 hex>", x4]} (hex: JSON numbers lose 64-bit
  /// integers in many readers).
  nlohmann::json to_json() const;
  /// Throws InputError on malformed input (wrong algorithm, bad hex, all-zero state).
  static ShuffleRng from_json(const nlohmann::json& json);

  bool operator==(const ShuffleRng&) const = default;

 private:
  std::uint64_t s_[4] = {};
};

/// The data order of epoch `epoch` (0-based) for a run seeded with `seed`: a permutation of
/// 0..n-1 that depends only on (seed, epoch), so resuming needs no generator state; identity
/// when `shuffle` is false.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch,
                                      bool shuffle = true);

}  // namespace vigil::torch
