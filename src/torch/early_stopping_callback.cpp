// EarlyStopping callback: EarlyStopper + restore_best_weights + checkpointed state.
#include "vigil/torch/early_stopping.hpp"

#include "vigil/torch/module_state.hpp"

namespace vigil::torch {

EarlyStopping::EarlyStopping(EarlyStoppingCallbackOptions options)
    : stopper_(std::move(options.stopping)), restore_best_weights_(options.restore_best_weights) {}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options)
    : EarlyStopping(EarlyStoppingCallbackOptions{}.with_stopping(std::move(options))) {}

void EarlyStopping::on_train_begin(TrainContext& ctx, const Logs&) {
  stopper_.reset();
  stopper_.set_period_name(ctx.period_name());
  best_weights_ = NamedTensors{};
  restored_ = false;
  warning_.clear();
}

void EarlyStopping::on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
  // The time budget counts training time recorded in the history, which survives a resume
  // (wall-clock time since this process started would not).
  double elapsed = 0;
  for (const auto& r : ctx.history) {
    auto it = r.logs.find("seconds");
    if (it != r.logs.end()) elapsed += it->second;
  }
  const StopDecision d = stopper_.on_epoch_end(epoch, logs, elapsed);
  warning_ = d.warning;
  // The weights the metrics judged: the model's, or those validated in their place (ModelEma).
  if (restore_best_weights_ && stopper_.improved_this_epoch() && ctx.model)
    best_weights_ = ctx.validated_weights != nullptr ? ctx.validated_weights->clone()
                                                     : module_state(*ctx.model).clone();
  if (d.stop) ctx.request_stop(d.reason);
}

void EarlyStopping::on_train_end(TrainContext& ctx, const Logs&) {
  if (!restore_best_weights_ || best_weights_.empty() || !ctx.model) return;
  load_module_state(*ctx.model, best_weights_.views());
  restored_ = true;
}

nlohmann::json EarlyStopping::state() const {
  return {{"stopper", stopper_.state()}, {"has_best_weights", !best_weights_.empty()}};
}

void EarlyStopping::load_state(const nlohmann::json& state) {
  stopper_.load_state(state.at("stopper"));
  best_weights_ = NamedTensors{};
}

NamedTensors EarlyStopping::state_tensors() const {
  return best_weights_;
}

void EarlyStopping::load_state_tensors(const NamedTensors& tensors) {
  if (restore_best_weights_) best_weights_ = tensors.clone();
}

}  // namespace vigil::torch
