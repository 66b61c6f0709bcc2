// Helpers of the in-process Trainer tests: a tiny MLP, weight comparison, an interrupt at a
// chosen poll, and a checkpoint of a training context written by hand.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "vigil/checkpoint.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::test {

/// Linear(4, 8), ReLU, Linear(8, 3), its initial weights from `seed`.
inline ::torch::nn::Sequential tiny_mlp(std::uint64_t seed) {
  ::torch::manual_seed(seed);
  return ::torch::nn::Sequential(::torch::nn::Linear(4, 8), ::torch::nn::ReLU(),
                                 ::torch::nn::Linear(8, 3));
}

/// The two sets hold the same names and bitwise equal tensors.
inline bool same_weights(const vigil::torch::NamedTensors& a, const vigil::torch::NamedTensors& b) {
  if (a.names() != b.names()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!::torch::equal(a.tensors()[i], b.tensors()[i])) return false;
  return true;
}

/// An interrupt poll that asks to stop at its n-th call (polls come before every optimizer step).
inline std::function<std::optional<std::string>()> interrupt_at_poll(int n) {
  auto polls = std::make_shared<int>(0);
  return [polls, n]() -> std::optional<std::string> {
    if (++*polls == n) return "interrupted by test";
    return std::nullopt;
  };
}

/// Writes ctx's training snapshot to `dir` as a checkpoint taken at its current step.
inline void write_step_checkpoint(const vigil::torch::TrainContext& ctx,
                                  const std::filesystem::path& dir) {
  const vigil::torch::TrainingSnapshot s = ctx.snapshot();
  CheckpointContent c;
  c.epoch = ctx.epoch;
  c.step = ctx.global_step;
  c.at = SavePoint::Step;
  c.files = s.files();
  c.state = s.state;
  write_checkpoint(dir, c);
}

}  // namespace vigil::test
