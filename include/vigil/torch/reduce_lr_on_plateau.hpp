// ReduceLROnPlateau callback with Keras's semantics: multiply the learning rate by `factor` once
// the monitored metric has not improved for `patience` epochs, then wait `cooldown` epochs.
#pragma once

#include <string>
#include <string_view>

#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// Options of ReduceLROnPlateau (Keras's names and defaults).
struct ReduceLROnPlateauOptions {
  /// The metric to watch (default "val_loss").
  std::string monitor = "val_loss";
  /// Min, Max or Auto (from the metric's name, see resolve_mode) (default Auto).
  ModeSetting mode = ModeSetting::Auto;
  /// New lr = lr * factor; must be in (0, 1) (default 0.1).
  double factor = 0.1;
  /// Epochs without improvement before reducing (default 10).
  int patience = 10;
  /// Smallest change that counts as an improvement (default 1e-4).
  double min_delta = 1e-4;
  /// Epochs to wait after a reduction before counting again (default 0).
  int cooldown = 0;
  /// The learning rate never goes below this (default 0).
  double min_lr = 0.0;

  VIGIL_SETTER(monitor)
  VIGIL_SETTER(mode)
  VIGIL_SETTER(factor)
  VIGIL_SETTER(patience)
  VIGIL_SETTER(min_delta)
  VIGIL_SETTER(cooldown)
  VIGIL_SETTER(min_lr)

  /// Throws OptionError for factor outside (0, 1), negative patience/cooldown/min_lr.
  void validate() const;
};

/// Keras's ReduceLROnPlateau on the context's optimizer (every param group). Its counters are
/// checkpointed; the learning rate itself travels with the optimizer state.
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  std::string name() const override { return "reduce_lr_on_plateau"; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  bool changes_learning_rate() const override { return true; }

  double best() const { return best_; }
  int wait() const { return wait_; }
  int cooldown_counter() const { return cooldown_counter_; }
  /// Reductions made so far (for reports).
  int reductions() const { return reductions_; }

 private:
  void reset();
  ReduceLROnPlateauOptions options_;
  Mode mode_;
  double best_ = 0;
  int wait_ = 0;
  int cooldown_counter_ = 0;
  int reductions_ = 0;
};

}  // namespace vigil::torch
