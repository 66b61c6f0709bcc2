// ModelEma callback: an exponential moving average of the model's weights (timm's ModelEmaV3),
// checkpointed as ema.safetensors beside model.safetensors and optionally validated instead of
// the training weights.
#pragma once

#include <cstdint>
#include <string>

#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of ModelEma.
struct ModelEmaOptions {
  /// The average's decay d: after an update, ema = d * ema + (1 - d) * weights; in (0, 1)
  /// (default 0.9999, as timm).
  double decay = 0.9999;
  /// Update the average after every n-th optimizer step (global_step % n == 0); >= 1 (default 1).
  std::int64_t update_every_n_steps = 1;
  /// timm ModelEmaV3's warm-up: the decay of the update after optimizer step s is
  /// min(decay, 1 - s^(-2/3)) (timm's 1 - (1 + (s - 1) / gamma)^-power with gamma 1, power 2/3),
  /// so that the average follows the fast-changing early weights closely (default false: `decay`
  /// from the second step on). See decay_at().
  bool warmup = false;
  /// Validate the averaged weights instead of the training ones: they are swapped into the model
  /// in on_validation_begin and the training weights back in on_validation_end, and
  /// TrainContext::validated_weights points at them, so that the best weights kept
  /// (EarlyStopping's restore_best_weights) are averaged ones (default false).
  bool validate = false;

  VIGIL_SETTER(decay)
  VIGIL_SETTER(update_every_n_steps)
  VIGIL_SETTER(warmup)
  VIGIL_SETTER(validate)
};

/// Keeps an exponential moving average of the model's state_dict, as timm's ModelEmaV3 (with
/// update_after_step 0, min_decay 0, warmup_gamma 1, warmup_power 2/3) called from timm's train.py
/// with step = optimizer steps taken: floating tensors (parameters and floating buffers such as
/// BatchNorm's running statistics) are averaged, the others (num_batches_tracked) copied from the
/// model. Initialised from the model in on_train_begin (a fresh start); updated in on_batch_end,
/// i.e. after the optimizer step. Its state is checkpointed unprefixed in ema.safetensors
/// (state_file() "ema"), with the model's tensor names, so either file loads into the model with
/// load_module_state(); a resume gives the average back exactly. A checkpoint without
/// ema.safetensors (EMA added on resume) starts the average from the restored model.
class ModelEma : public Callback {
 public:
  /// Throws OptionError for a decay outside (0, 1) or update_every_n_steps < 1.
  explicit ModelEma(ModelEmaOptions options = {});

  std::string name() const override { return "ema"; }
  std::string state_file() const override { return "ema"; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_validation_begin(TrainContext& ctx) override;
  /// With validate: puts the training weights back (exact bytes). Throws Error if
  /// on_validation_begin did not run before it (a loop that does not call it would have
  /// validated the training weights and kept them as "best").
  void on_validation_end(TrainContext& ctx, const Logs& logs) override;
  void on_resume(TrainContext& ctx) override;
  void on_train_end(TrainContext& ctx, const Logs& logs) override;

  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  NamedTensors state_tensors() const override { return averaged_; }
  /// Takes the averaged tensors back; throws InputError if they do not match the average kept
  /// (names, dtypes, shapes) once on_train_begin has set it up from the model.
  void load_state_tensors(const NamedTensors& tensors) override;

  const ModelEmaOptions& options() const { return options_; }
  /// The averaged tensors, with the model's state_dict names and order (empty before
  /// on_train_begin).
  const NamedTensors& averaged() const { return averaged_; }
  /// Copies the averaged tensors into `module` (which must have the model's structure; throws
  /// StateDictError otherwise).
  void copy_to(::torch::nn::Module& module) const;
  /// Folds `model`'s current weights into the average as the update after `step` optimizer steps
  /// (what on_batch_end does); the average must have been set up (on_train_begin or reset()).
  void update(const ::torch::nn::Module& model, std::int64_t step);
  /// Starts the average from `model`'s current weights.
  void reset(const ::torch::nn::Module& model);
  /// The decay of the update after `step` optimizer steps: 0 at step 1 (the average becomes the
  /// weights, as timm), then `decay`, or with warm-up min(decay, 1 - step^(-2/3)).
  double decay_at(std::int64_t step) const;
  /// Updates made since the fresh start (resumed runs included).
  std::int64_t updates() const { return updates_; }

 private:
  ModelEmaOptions options_;
  NamedTensors averaged_;
  NamedTensors training_;  // the training weights while the average is swapped in
  bool swapped_ = false;
  bool loaded_ = false;  // load_state_tensors() ran during this restore
  std::int64_t updates_ = 0;
};

}  // namespace vigil::torch
