// ReduceLROnPlateau: Keras's on_epoch_end, step for step.
#include "vigil/torch/reduce_lr_on_plateau.hpp"

#include <fmt/core.h>

#include <cmath>
#include <limits>

#include "vigil/torch/optimizer_state.hpp"

namespace vigil::torch {

void ReduceLROnPlateauOptions::validate() const {
  if (!(factor > 0.0 && factor < 1.0))
    throw OptionError(fmt::format("ReduceLROnPlateau factor must be in (0, 1), got {}", factor));
  if (patience < 0) throw OptionError("ReduceLROnPlateau patience must be >= 0");
  if (cooldown < 0) throw OptionError("ReduceLROnPlateau cooldown must be >= 0");
  if (!(min_lr >= 0.0)) throw OptionError("ReduceLROnPlateau min_lr must be >= 0");
  if (monitor.empty()) throw OptionError("ReduceLROnPlateau needs a monitor");
}

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : options_(std::move(options)) {
  options_.validate();
  mode_ = resolve_mode(options_.monitor, options_.mode);
  reset();
}

void ReduceLROnPlateau::reset() {
  best_ = mode_ == Mode::Min ? std::numeric_limits<double>::infinity()
                             : -std::numeric_limits<double>::infinity();
  wait_ = 0;
  cooldown_counter_ = 0;
  reductions_ = 0;
}

void ReduceLROnPlateau::on_train_begin(TrainContext&, const Logs&) {
  reset();
}

void ReduceLROnPlateau::on_epoch_end(TrainContext& ctx, int, const Logs& logs) {
  const double* current = find_metric(logs, options_.monitor, /*strict=*/false);
  if (current == nullptr || ctx.optimizer == nullptr) return;
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (is_improvement(mode_, *current, best_, options_.min_delta)) {
    best_ = *current;
    wait_ = 0;
  } else if (cooldown_counter_ == 0) {
    ++wait_;
    if (wait_ >= options_.patience) {
      const double old_lr = get_learning_rate(*ctx.optimizer);
      // Keras compares against float32(min_lr) so that a float lr equal to min_lr stops here.
      if (old_lr > static_cast<double>(static_cast<float>(options_.min_lr))) {
        set_learning_rate(*ctx.optimizer, std::max(old_lr * options_.factor, options_.min_lr));
        ++reductions_;
        cooldown_counter_ = options_.cooldown;
        wait_ = 0;
      }
    }
  }
}

nlohmann::json ReduceLROnPlateau::state() const {
  return {{"best", number_to_json(best_)},
          {"wait", wait_},
          {"cooldown_counter", cooldown_counter_},
          {"reductions", reductions_}};
}

void ReduceLROnPlateau::load_state(const nlohmann::json& state) {
  try {
    best_ = number_from_json(state.at("best"));
    wait_ = state.at("wait").get<int>();
    cooldown_counter_ = state.at("cooldown_counter").get<int>();
    reductions_ = state.value("reductions", 0);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("ReduceLROnPlateau state is malformed ({})", e.what()));
  }
}

}  // namespace vigil::torch
