// EarlyStopping callback: the core EarlyStopper fed every epoch, with Keras 3's
// restore_best_weights (whatever ended training) and its state, best weights included,
// checkpointed so that a resumed run stops and restores exactly as an uninterrupted one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "vigil/early_stopping.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of the EarlyStopping callback: the stopper's options and Keras's restore_best_weights.
struct EarlyStoppingCallbackOptions {
  /// The rules and their settings (monitor, mode, patience, min_delta, baseline, ...)
  /// (default: EarlyStoppingOptions{}).
  EarlyStoppingOptions stopping;
  /// Keep an in-memory copy of the weights of the best epoch and load it into the model in
  /// on_train_end, whatever ended training (early stop, the last epoch, an interruption), as
  /// Keras 3 does. The copy is checkpointed with the callback (default false). When validation
  /// ran on other weights (TrainContext::validated_weights, e.g. ModelEma's average), those are
  /// the ones kept.
  bool restore_best_weights = false;

  VIGIL_SETTER(stopping)
  VIGIL_SETTER(restore_best_weights)
};

/// Keras's EarlyStopping as a callback. The stopping rules are the core EarlyStopper's
/// (EarlyStoppingOptions: monitor, mode, patience, min_delta, baseline, start_from_epoch, ...).
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingCallbackOptions options);
  /// The stopper alone, without restoring the best weights.
  explicit EarlyStopping(EarlyStoppingOptions options = {});

  std::string name() const override { return "early_stopping"; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  void on_train_end(TrainContext& ctx, const Logs& logs) override;

  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  NamedTensors state_tensors() const override;
  /// The best weights go to a file of their own, with the model's names and metadata: it is
  /// then byte for byte the model file of the checkpoint that was best, and the manager links
  /// the two rather than writing the weights twice (CheckpointManagerOptions::
  /// share_unchanged_files). Checkpoints that hold them in callbacks.safetensors still resume.
  std::string state_file() const override { return std::string(kBestWeightsStem); }
  void load_state_tensors(const NamedTensors& tensors) override;

  /// The stem of the best weights' checkpoint file, "best_weights".
  static constexpr std::string_view kBestWeightsStem = "best_weights";

  const EarlyStopper& stopper() const { return stopper_; }
  bool restore_best_weights() const { return restore_best_weights_; }
  /// True once on_train_end loaded the best weights into the model.
  bool restored() const { return restored_; }
  /// The last warning of the stopper (monitored metric missing with strict = false), or "".
  const std::string& last_warning() const { return warning_; }

 private:
  EarlyStopper stopper_;
  bool restore_best_weights_;
  NamedTensors best_weights_;
  bool restored_ = false;
  std::string warning_;
};

}  // namespace vigil::torch
