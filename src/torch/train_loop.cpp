// TrainLoopState: the TrainContext bookkeeping of a hand-written loop.
#include "vigil/torch/train_loop.hpp"

#include <fmt/core.h>

#include "epochs_reason.hpp"

namespace vigil::torch {

TrainLoopState::TrainLoopState(CallbackList& callbacks, std::shared_ptr<::torch::nn::Module> model,
                               ::torch::optim::Optimizer* optimizer, Resumable& data,
                               std::optional<std::int64_t> batches_per_epoch,
                               TrainLoopOptions options)
    : callbacks_(callbacks), options_(std::move(options)) {
  if (!model) throw OptionError("TrainLoop: the model is empty");
  if (options_.epochs < 0)
    throw OptionError(fmt::format("epochs must be >= 0, got {}", options_.epochs));
  if (!batches_per_epoch)
    throw OptionError(
        "TrainLoop: the data source does not know its batches per epoch (an endless source): "
        "use the Trainer with max_steps and val_every_n_steps");
  ctx_.model = std::move(model);
  ctx_.optimizer = optimizer;
  ctx_.data = &data;
  ctx_.epochs = options_.epochs;
  ctx_.steps_per_epoch = *batches_per_epoch;
  ctx_.extra = options_.extra;
  ctx_.model_metadata = options_.model_metadata;
  if (!options_.run_options.is_object())
    throw OptionError(
        fmt::format("run_options must be a JSON object, got {}", options_.run_options.dump()));
  ctx_.run_options = options_.run_options;
  ctx_.resume_overrides = options_.resume_overrides;
  ctx_.loop = {{"sums", nlohmann::json::object()}, {"seen", 0}};
}

nlohmann::json TrainLoopState::loop_state() const {
  nlohmann::json j{{"sums", logs_to_json(sums_)}, {"seen", seen_}};
  if (until_pass_end_) j["until_pass_end"] = true;
  return j;
}

void TrainLoopState::begin() {
  callbacks_.on_train_begin(ctx_);
  if (ctx_.resumed_from && !ctx_.data_restored && ctx_.batch > 0)
    throw InputError(fmt::format("cannot resume from {}: it holds no position of the data",
                                 ctx_.resumed_from->string()));
  if (ctx_.batch > 0) {
    // Resumed in the middle of an epoch: the running means go on from the saved sums.
    sums_ = logs_from_json(ctx_.loop.at("sums"));
    seen_ = ctx_.loop.at("seen").get<std::int64_t>();
    until_pass_end_ =
        ctx_.loop.value("until_pass_end", false) || ctx_.overridden.count("batch_size") > 0;
    in_epoch_ = true;  // the source stands inside this epoch: no new pass
  }
}

bool TrainLoopState::start_epoch(const std::function<void(std::int64_t)>& set_epoch) {
  if (ctx_.stop_training || ctx_.interrupted || ctx_.epoch >= ctx_.epochs) return false;
  if (!in_epoch_) {
    set_epoch(ctx_.epoch);
    sums_.clear();
    seen_ = 0;
  }
  in_epoch_ = true;
  ctx_.data_epoch = ctx_.epoch;
  callbacks_.on_epoch_begin(ctx_, ctx_.epoch);
  return true;
}

bool TrainLoopState::interrupted() {
  if (!options_.interrupt || ctx_.interrupted) return ctx_.interrupted;
  if (auto reason = options_.interrupt()) {
    ctx_.request_stop(*reason);
    callbacks_.on_interrupt(ctx_);
    return true;
  }
  return false;
}

void TrainLoopState::begin_batch() {
  callbacks_.on_batch_begin(ctx_, ctx_.batch);
}

void TrainLoopState::end_batch(const Logs& logs, std::int64_t count) {
  if (count < 1) throw OptionError(fmt::format("end_batch: count must be >= 1, got {}", count));
  for (const auto& [k, v] : logs) sums_[k] += v * static_cast<double>(count);
  seen_ += count;
  const std::int64_t index = ctx_.batch;
  ctx_.batch = index + 1;
  ++ctx_.global_step;
  ctx_.loop = loop_state();
  callbacks_.on_batch_end(ctx_, index, logs);
}

Logs TrainLoopState::epoch_means() const {
  Logs out;
  for (const auto& [k, v] : sums_) out[k] = seen_ > 0 ? v / static_cast<double>(seen_) : 0.0;
  return out;
}

void TrainLoopState::end_epoch(const Logs& logs) {
  const int epoch = ctx_.epoch;
  callbacks_.on_epoch_end(ctx_, epoch, logs);
  ctx_.epoch = epoch + 1;
  ctx_.batch = 0;
  ctx_.epoch_complete = false;
  ctx_.loop = {{"sums", nlohmann::json::object()}, {"seen", 0}};
  sums_.clear();
  seen_ = 0;
  in_epoch_ = false;
  until_pass_end_ = false;
}

void TrainLoopState::end() {
  if (!ctx_.stop_training)
    ctx_.stop_reason = detail::completed_epochs_reason(ctx_.epoch, ctx_.epochs);
  const Logs last = ctx_.history.empty() ? Logs{} : ctx_.history.back().logs;
  callbacks_.on_train_end(ctx_, last);
}

}  // namespace vigil::torch
