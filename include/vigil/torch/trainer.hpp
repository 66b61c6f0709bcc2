// Trainer: the fit/evaluate loop over an in-memory Dataset with Keras-style callbacks, seeded data
// order, resumable position inside an epoch, and a polled interrupt for signals.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vigil/monitor.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"
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

/// Options of Trainer.
struct TrainerOptions {
  /// Epochs to train (default 30), Keras's `epochs`.
  int epochs = 30;
  /// Examples per training batch (default 64).
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
  /// Polled before every batch; returns a reason ("interrupted by SIGINT") to interrupt training
  /// after the current batch, or nullopt to go on (default: never).
  std::function<std::optional<std::string>()> interrupt;
  /// Stored under "extra" in every checkpoint's state.json (default: empty object).
  nlohmann::json extra = nlohmann::json::object();
  /// Data-parallel training (default null: this process trains alone). Every rank runs fit()
  /// with the same options, data and callbacks' decisions; each trains on its slice of every
  /// global batch of `batch_size` (gradients averaged over the group), validates its slice of
  /// the validation set (metrics summed over the group), starts from rank 0's restore point and
  /// weights, and stops when any rank's callbacks ask to. Only rank 0 should write files.
  std::shared_ptr<ProcessGroup> distributed;

  VIGIL_SETTER(epochs)
  VIGIL_SETTER(batch_size)
  VIGIL_SETTER(eval_batch_size)
  VIGIL_SETTER(seed)
  VIGIL_SETTER(shuffle)
  VIGIL_SETTER(threads)
  VIGIL_SETTER(loss)
  VIGIL_SETTER(interrupt)
  VIGIL_SETTER(extra)
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
};

/// Metrics of `model` on `data` in eval mode without gradients: {"loss", "accuracy"} (accuracy
/// for int64 class targets only). `loss` empty = default_loss(data.targets).
Logs evaluate(const Model& model, const Dataset& data, std::int64_t batch_size = 1000,
              const LossFn& loss = {});

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

 private:
  TrainerOptions options_;
  CallbackList callbacks_;
};

}  // namespace vigil::torch
