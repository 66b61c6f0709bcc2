// ModelEma: the moving average, its checkpointed state, and swapping it in for validation.
#include "vigil/torch/ema.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "vigil/torch/module_state.hpp"

namespace vigil::torch {

ModelEma::ModelEma(ModelEmaOptions options) : options_(options) {
  if (!(options_.decay > 0 && options_.decay < 1))
    throw OptionError(fmt::format("ModelEma: decay must be in (0, 1), e.g. 0.999 or 0.9999, got {}",
                                  options_.decay));
  if (options_.update_every_n_steps < 1)
    throw OptionError(fmt::format("ModelEma: update_every_n_steps must be >= 1, got {}",
                                  options_.update_every_n_steps));
}

double ModelEma::decay_at(std::int64_t step) const {
  // timm ModelEmaV3.get_decay(step) with update_after_step = 0 and min_decay = 0.
  const std::int64_t k = std::max<std::int64_t>(0, step - 1);
  if (k <= 0) return 0.0;
  if (!options_.warmup) return options_.decay;
  const double d = 1.0 - std::pow(1.0 + static_cast<double>(k), -2.0 / 3.0);
  return std::clamp(d, 0.0, options_.decay);
}

void ModelEma::reset(const ::torch::nn::Module& model) {
  averaged_ = module_state(model).clone();
  updates_ = 0;
}

void ModelEma::update(const ::torch::nn::Module& model, std::int64_t step) {
  const NamedTensors now = module_state(model);
  if (now.names() != averaged_.names())
    throw OptionError(
        "ModelEma::update: the model's tensors are not the ones averaged (call reset() first)");
  const double decay = decay_at(step);
  ::torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < now.size(); ++i) {
    const auto& ema = averaged_.tensors()[i];
    const auto& w = now.tensors()[i];
    // As timm: floating tensors are interpolated, the others (counters) copied.
    if (ema.is_floating_point() && decay > 0)
      ema.lerp_(w, 1.0 - decay);
    else
      ema.copy_(w);
  }
  ++updates_;
}

void ModelEma::on_train_begin(TrainContext& ctx, const Logs&) {
  if (!ctx.model) throw OptionError("ModelEma: no model in the training context");
  reset(*ctx.model);
  training_ = NamedTensors{};
  swapped_ = false;
  loaded_ = false;
  ctx.validated_weights = nullptr;
}

void ModelEma::on_batch_end(TrainContext& ctx, std::int64_t, const Logs&) {
  if (ctx.global_step % options_.update_every_n_steps == 0) update(*ctx.model, ctx.global_step);
}

void ModelEma::on_validation_begin(TrainContext& ctx) {
  if (!options_.validate || swapped_) return;
  // A copy of the training weights, not a view: loading the average overwrites the model's.
  training_ = module_state(*ctx.model).clone();
  load_module_state(*ctx.model, averaged_.views());
  swapped_ = true;
  ctx.validated_weights = &averaged_;
}

void ModelEma::on_validation_end(TrainContext& ctx, const Logs&) {
  if (!options_.validate) return;
  if (!swapped_)
    throw Error(
        "ModelEma(validate): on_validation_end came without on_validation_begin, so validation "
        "ran on the training weights; this training loop must call on_validation_begin (or turn "
        "validate off)");
  load_module_state(*ctx.model, training_.views());
  training_ = NamedTensors{};
  swapped_ = false;
}

void ModelEma::on_resume(TrainContext& ctx) {
  // No ema.safetensors in the checkpoint: the average starts from the restored weights.
  if (!loaded_) reset(*ctx.model);
  loaded_ = false;
}

void ModelEma::on_train_end(TrainContext& ctx, const Logs&) {
  // An interrupted validation must not leave the average in the model.
  if (swapped_) {
    load_module_state(*ctx.model, training_.views());
    training_ = NamedTensors{};
    swapped_ = false;
  }
  if (ctx.validated_weights == &averaged_) ctx.validated_weights = nullptr;
}

nlohmann::json ModelEma::state() const {
  return {{"updates", updates_}, {"decay", options_.decay}};
}

void ModelEma::load_state(const nlohmann::json& state) {
  updates_ = state.at("updates").get<std::int64_t>();
}

void ModelEma::load_state_tensors(const NamedTensors& tensors) {
  if (averaged_.empty()) {
    averaged_ = tensors.clone();
    loaded_ = true;
    return;
  }
  // By name: a file lists its tensors in its own order, not the model's.
  bool same = tensors.size() == averaged_.size();
  for (std::size_t i = 0; same && i < averaged_.size(); ++i)
    same = tensors.find(averaged_.names()[i]) != nullptr;
  if (!same)
    throw InputError(
        "ema.safetensors does not hold the model's tensors (another model than this run's?)");
  ::torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < averaged_.size(); ++i) {
    const auto& name = averaged_.names()[i];
    auto dst = averaged_.tensors()[i];
    copy_into(view_of(tensors.at(name).contiguous(), name), dst);
  }
  loaded_ = true;
}

void ModelEma::copy_to(::torch::nn::Module& module) const {
  load_module_state(module, averaged_.views());
}

}  // namespace vigil::torch
