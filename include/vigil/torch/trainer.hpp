// Trainer: the fit/evaluate loop with Keras-style callbacks over any resumable data source and any
// batch type (a replaceable training step), with step cadence, gradient accumulation and clipping.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "vigil/monitor.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

class ProcessGroup;  // vigil/torch/distributed.hpp

/// A module and how to call it: any ModuleHolder (torch::nn::Sequential, a TORCH_MODULE type)
/// converts through Model::of().
struct Model {
  std::shared_ptr<::torch::nn::Module> module;
  std::function<::torch::Tensor(const ::torch::Tensor&)> forward;

  template <class Holder>
  static Model of(Holder holder) {
    return Model{holder.ptr(),
                 [holder](const ::torch::Tensor& x) mutable { return holder->forward(x); }};
  }
};

/// loss(outputs, targets) -> a scalar, averaged over the batch.
using LossFn = std::function<::torch::Tensor(const ::torch::Tensor&, const ::torch::Tensor&)>;

/// The default loss for `targets`: cross entropy for int64 class indices, MSE otherwise.
LossFn default_loss(const ::torch::Tensor& targets);

/// metric(outputs, targets) -> the batch's mean (e.g. accuracy); epoch values are the means over
/// batches weighted by their example counts.
using MetricFn = std::function<double(const ::torch::Tensor&, const ::torch::Tensor&)>;
/// Named metrics, logged as "<name>" in training and "val_<name>" in validation.
using Metrics = std::vector<std::pair<std::string, MetricFn>>;
/// Fraction of rows whose argmax is the target: outputs [N, C], targets [N].
MetricFn accuracy();
/// Fraction of tokens whose argmax is the target: outputs [N, T, C], targets [N, T].
MetricFn token_accuracy();
/// The default metrics for `targets`: {"accuracy"} for int64 class indices, none otherwise.
Metrics default_metrics(const ::torch::Tensor& targets);

/// What a training (or validation) step returns for one batch.
struct StepResult {
  /// The scalar loss, a mean over the batch; training calls backward() on it.
  ::torch::Tensor loss;
  /// Other metrics of the batch (means over its examples), logged under their names.
  Logs logs;
  /// Examples in the batch: the weight of this batch in epoch means and accumulated gradients.
  std::int64_t count = 1;
};

/// A training step: batch -> loss and logs. It runs the model's forward pass itself, so the
/// model may take several tensors or return a tuple. Validation calls the same step in eval mode
/// without gradients.
template <class Batch>
using StepFn = std::function<StepResult(const Batch&)>;

/// The step of fit(Model, ..., Dataset, Dataset): forward the features, `loss` (empty =
/// default_loss of the targets) and `metrics`. A shape mismatch is reported with the shapes.
StepFn<Batch> default_step(Model model, LossFn loss, Metrics metrics);

/// Options of Trainer.
struct TrainerOptions {
  /// Epochs to train (default 30), Keras's `epochs`: passes over the data when validating by
  /// epochs; with val_every_n_steps and no max_steps, training lasts epochs × steps per epoch.
  int epochs = 30;
  /// End after this many optimizer steps, even inside an epoch (which is then validated as
  /// it ends); 0 = no limit but `epochs` (default 0). Required for an endless data source.
  std::int64_t max_steps = 0;
  /// Validate (and let callbacks decide) every this many optimizer steps, Lightning's integer
  /// `val_check_interval`; 0 = at every epoch end (default 0). See TrainContext::val_every_n_steps.
  std::int64_t val_every_n_steps = 0;
  /// Micro-batches whose gradients are averaged (weighted by example count) into one optimizer
  /// step: the same step as one batch that many times larger, up to rounding (default 1).
  int accumulate = 1;
  /// Clip the gradients' global L2 norm to this value before each step, as
  /// torch::nn::utils::clip_grad_norm_; the norm before clipping is logged as "grad_norm";
  /// 0 = no clipping (default 0).
  double clip_grad_norm = 0;
  /// Metrics of fit(Model, ..., Dataset, Dataset); empty = default_metrics() of the training
  /// targets (default empty).
  Metrics metrics;
  /// Examples per training batch (micro-batch with accumulation) (default 64).
  std::int64_t batch_size = 64;
  /// Examples per batch when evaluating (default 1000; no gradients, so larger is fine).
  std::int64_t eval_batch_size = 1000;
  /// Seeds the data order: epoch e's order depends only on (seed, e) (default 0).
  std::uint64_t seed = 0;
  /// Shuffle the training data every epoch (default true).
  bool shuffle = true;
  /// Intra-op threads for libtorch; 0 leaves libtorch's default (default 0). One thread makes
  /// runs bit-reproducible.
  int threads = 0;
  /// The loss; empty = default_loss() of the training targets (default empty).
  LossFn loss;
  /// Polled before every optimizer step; returns a reason ("interrupted by SIGINT") to interrupt
  /// training after the current step, or nullopt to go on (default: never).
  std::function<std::optional<std::string>()> interrupt;
  /// Stored under "extra" in every checkpoint's state.json (default: empty object).
  nlohmann::json extra = nlohmann::json::object();
  /// Header metadata of the model file of every checkpoint, e.g. {"vigil.model": what to build}
  /// so that best/model.safetensors says what it holds; the tied names are added (default none).
  Metadata model_metadata;
  /// Options of the caller's that a resume must not change, by name, e.g. {"hidden": 128}; the
  /// Trainer adds "accumulate", "val_every_n_steps" and, in fit(Model, ..., Dataset, Dataset),
  /// "batch_size" (see TrainContext::run_options) (default: empty object).
  nlohmann::json run_options = nlohmann::json::object();
  /// Names of run_options (the Trainer's own included) this resume changes on purpose: the
  /// change is accepted, warned about and recorded in every later checkpoint (default none).
  std::set<std::string> resume_overrides;
  /// Data-parallel training (default null: this process trains alone). Every rank runs fit()
  /// with the same options, data and callbacks' decisions; each trains on its slice of every
  /// global batch of `batch_size` (gradients averaged over the group), validates its slice of
  /// the validation set (metrics summed over the group), starts from rank 0's restore point and
  /// weights, and stops when any rank's callbacks ask to. Only rank 0 should write files.
  std::shared_ptr<ProcessGroup> distributed;

  VIGIL_SETTER(epochs)
  VIGIL_SETTER(max_steps)
  VIGIL_SETTER(val_every_n_steps)
  VIGIL_SETTER(accumulate)
  VIGIL_SETTER(clip_grad_norm)
  VIGIL_SETTER(metrics)
  VIGIL_SETTER(batch_size)
  VIGIL_SETTER(eval_batch_size)
  VIGIL_SETTER(seed)
  VIGIL_SETTER(shuffle)
  VIGIL_SETTER(threads)
  VIGIL_SETTER(loss)
  VIGIL_SETTER(interrupt)
  VIGIL_SETTER(extra)
  VIGIL_SETTER(model_metadata)
  VIGIL_SETTER(run_options)
  VIGIL_SETTER(resume_overrides)
  VIGIL_SETTER(distributed)

  /// Throws OptionError naming the bad option.
  void validate() const;
};

/// What fit() returns.
struct FitResult {
  std::vector<EpochRecord> history;  ///< every epoch of the run, resumed ones included
  bool stopped_early = false;        ///< a callback stopped training before `epochs`
  bool interrupted = false;          ///< interrupted (signal); the run can resume
  std::string stop_reason;           ///< why training ended, a sentence
  int epochs_run = 0;                ///< epochs completed (history size)
  std::int64_t global_step = 0;      ///< optimizer steps taken
  std::optional<std::filesystem::path> resumed_from;  ///< the checkpoint resumed from, if any
  /// What the resume found doubtful or changed on purpose (TrainContext::warnings), to print.
  std::vector<std::string> warnings;
};

/// Metrics of `model` on `data` in eval mode without gradients: {"loss", "accuracy"} (accuracy
/// for int64 class targets only). `loss` empty = default_loss(data.targets).
Logs evaluate(const Model& model, const Dataset& data, std::int64_t batch_size = 1000,
              const LossFn& loss = {});

namespace detail {
/// The type-erased training data of a fit(): the Trainer's loop is not a template.
struct TrainSource {
  Resumable* resumable = nullptr;
  std::function<void(std::int64_t)> set_epoch;
  /// Fetches the next batch; false at the end of a pass.
  std::function<bool()> fetch;
  /// Runs the step on the fetched batch and calls backward() on its loss (times its count when
  /// `weighted`); returns {"loss": value, other logs} and the count.
  std::function<StepResult(bool weighted)> run;
  std::optional<std::int64_t> batches_per_epoch;
  /// For checkpoints without a data position: where the source stood (its epoch and batch).
  bool legacy_position = false;
  /// Run options this data implies (e.g. {"batch_size": 64}), added to the recorded ones.
  nlohmann::json run_options = nlohmann::json::object();
  /// Polled at every step boundary (empty = TrainerOptions::interrupt).
  std::function<std::optional<std::string>()> interrupt;
};
/// Metrics of one validation pass, without the "val_" prefix.
using ValidateFn = std::function<Logs()>;

/// Runs `step` on `batch` and calls backward() on its loss (times its count when `weighted`, so
/// that accumulated gradients are weighted by example count); returns it with "loss" logged.
template <class Batch>
StepResult train_step(const StepFn<Batch>& step, const Batch& batch, bool weighted);

/// Runs `step` over a whole pass of `source` (set_epoch(0) first) in eval mode without gradients.
template <class Batch>
Logs validate_source(::torch::nn::Module& module, DataSource<Batch>& source,
                     const StepFn<Batch>& step);
Logs weighted_means(const std::vector<std::pair<Logs, std::int64_t>>& parts);
}  // namespace detail

/// Trains a model with callbacks (Keras's Model.fit). Epoch logs hold loss, accuracy (class
/// targets), val_loss, val_accuracy (with validation data), lr (with an optimizer) and seconds.
class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {});

  const TrainerOptions& options() const { return options_; }
  /// Appends a callback (called in the order added).
  Trainer& add_callback(std::shared_ptr<Callback> callback);
  CallbackList& callbacks() { return callbacks_; }

  /// Runs training. `validation` may be empty (size 0): then no val_* metrics. Resumes wherever
  /// a callback's restore point (BackupAndRestore) says. Returns once training ends: epochs done,
  /// stopped by a callback, or interrupted.
  FitResult fit(const Model& model, ::torch::optim::Optimizer& optimizer, const Dataset& train,
                const Dataset& validation);

  /// Runs training on batches of any type: `step` computes each batch's loss (see StepFn);
  /// `validation` (may be null) is passed through whole at every validation with the same step.
  /// The options' batch_size, seed, shuffle, loss and metrics belong to the sources and the
  /// step here and are not used. Not data-parallel (use the Dataset overload).
  template <class Batch>
  FitResult fit(std::shared_ptr<::torch::nn::Module> module, ::torch::optim::Optimizer& optimizer,
                DataSource<Batch>& train, StepFn<Batch> step,
                DataSource<Batch>* validation = nullptr);

 private:
  FitResult run(const std::shared_ptr<::torch::nn::Module>& module,
                ::torch::optim::Optimizer& optimizer, detail::TrainSource& train,
                const detail::ValidateFn& validate);

  TrainerOptions options_;
  CallbackList callbacks_;
};

template <class Batch>
StepResult detail::train_step(const StepFn<Batch>& step, const Batch& batch, bool weighted) {
  StepResult r = step(batch);
  if (!r.loss.defined()) throw InputError("the training step returned no loss");
  if (weighted)
    (r.loss * static_cast<double>(r.count)).backward();
  else
    r.loss.backward();
  r.logs["loss"] = r.loss.template item<double>();
  return r;
}

template <class Batch>
Logs detail::validate_source(::torch::nn::Module& module, DataSource<Batch>& source,
                             const StepFn<Batch>& step) {
  const bool was_training = module.is_training();
  module.eval();
  ::torch::NoGradGuard no_grad;
  std::vector<std::pair<Logs, std::int64_t>> parts;
  source.set_epoch(0);
  while (auto batch = source.next()) {
    StepResult r = step(*batch);
    r.logs["loss"] = r.loss.template item<double>();
    parts.emplace_back(std::move(r.logs), r.count);
  }
  module.train(was_training);
  if (parts.empty()) throw InputError("the validation data yields no batches");
  return weighted_means(parts);
}

template <class Batch>
FitResult Trainer::fit(std::shared_ptr<::torch::nn::Module> module,
                       ::torch::optim::Optimizer& optimizer, DataSource<Batch>& train,
                       StepFn<Batch> step, DataSource<Batch>* validation) {
  if (!module) throw OptionError("fit: the model is empty");
  if (!step) throw OptionError("fit: the training step is empty");
  if (options_.distributed)
    throw OptionError(
        "fit: data-parallel training takes fit(Model, optimizer, Dataset, Dataset); a custom "
        "step runs in one process");
  std::optional<Batch> slot;
  detail::TrainSource source;
  source.resumable = &train;
  source.set_epoch = [&train](std::int64_t e) { train.set_epoch(e); };
  source.fetch = [&train, &slot] {
    slot = train.next();
    return slot.has_value();
  };
  source.run = [&step, &slot](bool weighted) { return detail::train_step(step, *slot, weighted); };
  source.batches_per_epoch = train.batches_per_epoch();
  detail::ValidateFn validate;
  if (validation != nullptr)
    validate = [&module, validation, &step] {
      return detail::validate_source(*module, *validation, step);
    };
  return run(module, optimizer, source, validate);
}

}  // namespace vigil::torch
