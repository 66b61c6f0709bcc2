// TrainLoop: the bookkeeping of a hand-written training loop (the TrainContext, the callbacks'
// hooks, the data source's position, the epoch's running means, interrupts), so that a loop that
// does not use the Trainer resumes in the middle of an epoch exactly as the Trainer does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/data_source.hpp"

namespace vigil::torch {

/// Options of TrainLoop.
struct TrainLoopOptions {
  /// Passes over the data (default 30).
  int epochs = 30;
  /// Polled by next_batch() before every batch; returns a reason to interrupt training (for
  /// instance StopSignals::interrupt()), or nullopt to go on (default: never).
  std::function<std::optional<std::string>()> interrupt;
  /// Stored under "extra" in every checkpoint's state.json (default: empty object).
  nlohmann::json extra = nlohmann::json::object();
  /// TrainerOptions::model_metadata: header metadata of every checkpoint's model file.
  Metadata model_metadata;
  /// Options a resume must not change, by name, e.g. {"batch_size": 32, "hidden": 128} (see
  /// TrainContext::run_options) (default: empty object).
  nlohmann::json run_options = nlohmann::json::object();
  /// Names of run_options this resume changes on purpose (see TrainContext::resume_overrides);
  /// with "batch_size", a resumed epoch lasts to the end of its pass (default none).
  std::set<std::string> resume_overrides;

  VIGIL_SETTER(epochs)
  VIGIL_SETTER(interrupt)
  VIGIL_SETTER(extra)
  VIGIL_SETTER(model_metadata)
  VIGIL_SETTER(run_options)
  VIGIL_SETTER(resume_overrides)
};

/// The non-template part of TrainLoop.
class TrainLoopState {
 public:
  TrainLoopState(CallbackList& callbacks, std::shared_ptr<::torch::nn::Module> model,
                 ::torch::optim::Optimizer* optimizer, Resumable& data,
                 std::optional<std::int64_t> batches_per_epoch, TrainLoopOptions options);

  /// What the callbacks see; ctx.epoch and ctx.batch say where the loop stands.
  TrainContext& context() { return ctx_; }
  const TrainContext& context() const { return ctx_; }

  /// After optimizer.step(): counts the step, adds `logs` (the batch's means over `count`
  /// examples) to the epoch's running means, and calls on_batch_end.
  void end_batch(const Logs& logs, std::int64_t count);
  /// The running means of the epoch's batches so far (a resumed epoch's earlier batches too).
  Logs epoch_means() const;
  /// Calls on_epoch_end with `logs` (the epoch's, e.g. epoch_means() plus validation metrics).
  void end_epoch(const Logs& logs);
  /// Calls on_train_end (EarlyStopping may load the best weights back).
  void end();
  /// Training ended by a callback's request (not by an interruption or the last epoch).
  bool stopped() const { return ctx_.stop_training && !ctx_.interrupted; }

 protected:
  void begin();
  bool start_epoch(const std::function<void(std::int64_t)>& set_epoch);
  /// Polls the interrupt; true (after on_interrupt) if training must stop now.
  bool interrupted();
  void begin_batch();
  /// The epoch's running sums as ctx.loop keeps them.
  nlohmann::json loop_state() const;

  CallbackList& callbacks_;
  TrainLoopOptions options_;
  TrainContext ctx_;
  Logs sums_;
  std::int64_t seen_ = 0;
  bool in_epoch_ = false;
  // A resume changed the batch size inside this epoch: its step count is in the old batches.
  bool until_pass_end_ = false;
};

/// A hand-written loop over a DataSource<Batch>:
///
///     vt::TrainLoop loop(callbacks, model.ptr(), optimizer.get(), source, {.epochs = 10});
///     while (loop.next_epoch()) {                 // resumes mid-epoch after a restart
///       while (auto batch = loop.next_batch()) {  // on_batch_begin; nullopt at the end
///         optimizer->zero_grad();
///         auto loss = ...; loss.backward(); optimizer->step();
///         loop.end_batch({{"loss", loss.item<double>()}}, batch_examples);
///       }
///       if (loop.context().interrupted) break;
///       auto logs = loop.epoch_means(); /* + validation */ loop.end_epoch(logs);
///     }
///     loop.end();
///
/// The constructor calls on_train_begin, which may resume (BackupAndRestore); the data source
/// then stands where the checkpoint left it. Every checkpoint saves the source's state.
template <class Batch>
class TrainLoop : public TrainLoopState {
 public:
  TrainLoop(CallbackList& callbacks, std::shared_ptr<::torch::nn::Module> model,
            ::torch::optim::Optimizer* optimizer, DataSource<Batch>& data,
            TrainLoopOptions options = {})
      : TrainLoopState(callbacks, std::move(model), optimizer, data, data.batches_per_epoch(),
                       std::move(options)),
        data_(data) {
    begin();
  }

  /// Calls on_epoch_begin for the next epoch (a fresh pass over the data, unless a resume left
  /// the source inside this one); false when training is over: all epochs run, a stop asked, or
  /// interrupted.
  bool next_epoch() {
    return start_epoch([this](std::int64_t e) { data_.set_epoch(e); });
  }
  /// The next batch of the epoch, after on_batch_begin; nullopt at the end of the pass or when
  /// the interrupt asked to stop (then on_interrupt has run and context().interrupted is set).
  std::optional<Batch> next_batch() {
    // The interrupt is polled before every batch, not after the last one.
    if ((ctx_.batch >= ctx_.steps_per_epoch && !until_pass_end_) || interrupted())
      return std::nullopt;
    auto batch = data_.next();
    if (batch) begin_batch();
    return batch;
  }

 private:
  DataSource<Batch>& data_;
};

}  // namespace vigil::torch
