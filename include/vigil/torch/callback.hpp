// The Callback interface (Keras hooks), TrainContext (the loop state callbacks read and steer) and
// CallbackList, which drives the hooks from the Trainer or from a hand-written training loop.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/checkpoint.hpp"
#include "vigil/error.hpp"
#include "vigil/monitor.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

class CallbackList;

/// One finished epoch: its index, the optimizer steps taken so far, and its metrics.
struct EpochRecord {
  int epoch = 0;
  std::int64_t step = 0;
  Logs logs;
};

/// A checkpoint opened for resuming: its tensor files (mapped, verified) and its state.json.
/// Produced by BackupAndRestore (or by hand) and applied by CallbackList::on_train_begin.
struct RestorePoint {
  std::filesystem::path path;            ///< the checkpoint folder (for messages)
  std::optional<SafetensorsFile> model;  ///< model.safetensors
  /// Set when model.safetensors was not hashed yet (the folder was opened without checksums):
  /// state.json's XXH3-64 of it, which restoring checks while it reads the weights in.
  std::optional<std::uint64_t> model_xxh3;
  std::optional<SafetensorsFile> optimizer;  ///< optimizer.safetensors (may be absent)
  std::optional<SafetensorsFile> callbacks;  ///< callbacks.safetensors (may be absent)
  /// A checkpoint may hold the model or the optimizer as shards found through their index files
  /// (Hugging Face's layout: saved by data-parallel ranks, see sharded_checkpoint.hpp, or with
  /// frozen parameters in a shard of their own): then these are set instead.
  std::vector<SafetensorsFile> model_shards;
  std::vector<SafetensorsFile> optimizer_shards;
  /// The files of callbacks with a state_file(), by stem (e.g. "ema" -> ema.safetensors), as
  /// state.json's "callback_files" lists them: the file, or its shards.
  std::map<std::string, std::vector<SafetensorsFile>, std::less<>> callback_files;
  nlohmann::json state;  ///< the parsed state.json

  /// Stems of the tensor files in a checkpoint folder besides "model" (kModelStem).
  static constexpr const char* kOptimizerStem = "optimizer";
  static constexpr const char* kCallbacksStem = "callbacks";

  /// Opens the files of a verified checkpoint; throws InputError if it has no model file.
  static RestorePoint from(const Checkpoint& checkpoint);
  /// Opens and verifies the checkpoint folder `dir` (CheckpointError if it is not intact).
  static RestorePoint open(const std::filesystem::path& dir);
};

/// Everything needed to resume exactly, captured from a live loop. Tensors are shared with the
/// model and optimizer (zero copy): clone() before writing it while training goes on.
struct TrainingSnapshot {
  NamedTensors model;      ///< state_dict of the model
  NamedTensors optimizer;  ///< optimizer state tensors ("state.<param>.<field>")
  NamedTensors callbacks;  ///< tensors callbacks keep (e.g. best weights), "<callback>/<name>"
  /// Tensors of callbacks with a state_file(), one file each: stem -> tensors (unprefixed).
  std::map<std::string, NamedTensors, std::less<>> callback_files;
  /// {"epoch", "batch", "global_step", "epoch_complete", "history", "stop_training",
  ///  "stop_reason", "optimizer", "rng", "callbacks", "required_callbacks", "lr_callbacks",
  ///  "callback_files", "loop", "extra", "metrics", "run_options", "overrides"}
  nlohmann::json state;
  /// Header metadata of some tensor files, by stem ("model", a callback file's).
  std::map<std::string, Metadata, std::less<>> metadata;
  /// Names of the model's parameters that do not train (requires_grad false), in state order.
  /// ModelCheckpoint writes them as a shard of their own, which checkpoints then share.
  std::vector<std::string> frozen;

  /// A deep copy that later training steps cannot change.
  TrainingSnapshot clone() const;
  /// The tensor files of a checkpoint: "model", "optimizer" and "callbacks" (when not empty),
  /// and each of callback_files under its stem.
  /// Views on this snapshot's tensors: keep it alive while they are written.
  TensorFiles files() const;
};

/// What a training loop exposes to callbacks: Keras's `callback.model` and `callback.params`,
/// plus the position in the run. The Trainer fills it; a hand-written loop fills it itself.
struct TrainContext {
  /// The model being trained (its parameters change in place).
  std::shared_ptr<::torch::nn::Module> model;
  /// The optimizer, not owned; may be null in a loop without one (then no optimizer state).
  ::torch::optim::Optimizer* optimizer = nullptr;
  /// The callback list driving this loop, not owned (set by CallbackList).
  CallbackList* callbacks = nullptr;

  int epochs = 0;                    ///< epochs planned (validation periods, see below)
  int epoch = 0;                     ///< current epoch, 0-based
  std::int64_t steps_per_epoch = 0;  ///< optimizer steps in one epoch; 0 = not known (endless data)
  std::int64_t batch = 0;            ///< optimizer steps of the current epoch already done
  std::int64_t global_step = 0;      ///< optimizer steps since the run began
  /// Training ends after this many optimizer steps; 0 = no limit but `epochs` (default 0).
  std::int64_t max_steps = 0;
  /// Validate every this many optimizer steps; 0 = at every epoch end. When > 0, what callbacks
  /// see as an epoch (ctx.epoch, on_epoch_end, history, patience) is one validation period of
  /// that many steps, as with Keras's steps_per_epoch; data_epoch counts passes over the data.
  std::int64_t val_every_n_steps = 0;
  /// Passes over the training data begun, 0-based (equals `epoch` when validating by epochs).
  std::int64_t data_epoch = 0;
  /// Micro-batches whose gradients make one optimizer step (1 = no accumulation).
  int accumulate = 1;

  /// Optimizer steps the run will take if nothing stops it: max_steps if set, else epochs ×
  /// steps_per_epoch; 0 when unknown (endless data without max_steps).
  std::int64_t planned_steps() const;
  /// What one epoch of the callbacks is, for messages: "epoch", or "validation" when validating
  /// every n steps.
  const char* period_name() const { return val_every_n_steps > 0 ? "validation" : "epoch"; }
  /// True after the step that reaches max_steps: the current epoch ends (and is validated) now.
  bool at_max_steps() const { return max_steps > 0 && global_step >= max_steps; }
  /// True inside on_epoch_end and later until the next epoch begins: the current epoch is done.
  bool epoch_complete = false;

  /// Finished epochs, appended by CallbackList::on_epoch_end (restored on resume).
  std::vector<EpochRecord> history;

  /// Set through request_stop(). Asked in on_epoch_end, the loop ends after that epoch; asked in
  /// on_batch_end, the epoch ends after that batch but still validates and calls on_epoch_end
  /// with the partial epoch's metrics (as Keras); an interruption ends it after the batch at once.
  bool stop_training = false;
  std::string stop_reason;
  /// True when a signal or the user interrupted training: the run is not finished, it can resume.
  bool interrupted = false;
  /// The folder resumed from, if the run was resumed (set when a RestorePoint is applied).
  std::optional<std::filesystem::path> resumed_from;

  /// The training data source, not owned; may be null. Its state() is saved as "data" in every
  /// snapshot and restore() hands it back through load_state().
  Resumable* data = nullptr;
  /// True after restore() gave `data` its saved position (false for checkpoints without one).
  bool data_restored = false;

  /// The weights the last validation measured when they are not the model's own, not owned;
  /// null = the model's. Set by a callback that validates on other weights (ModelEma with
  /// validate: its averaged weights); whoever keeps "the best weights" (EarlyStopping's
  /// restore_best_weights) keeps these, since they are what the metrics judged.
  const NamedTensors* validated_weights = nullptr;

  /// The loop's own resumable state (e.g. partial epoch sums); saved and restored verbatim.
  nlohmann::json loop = nlohmann::json::object();
  /// Anything the program wants in every checkpoint's state.json (e.g. the run's options).
  nlohmann::json extra = nlohmann::json::object();
  /// Header metadata of the model file of every snapshot (the tied names are added to it), and
  /// of any callback file holding the model's tensor names (e.g. ema.safetensors).
  Metadata model_metadata;

  /// The options a resume must not change, by name (e.g. {"batch_size": 64, "hidden": 128}),
  /// saved as "run_options" in every snapshot. restore() refuses a checkpoint that recorded
  /// another value for one of them, naming it, before it changes anything, unless the name is in
  /// resume_overrides. Names only one side has are not compared (an older checkpoint).
  nlohmann::json run_options = nlohmann::json::object();
  /// Names in run_options that this resume changes on purpose: accepted, told in `warnings`,
  /// handed to the data source (Resumable::accept_overrides) and recorded in `overrides`.
  std::set<std::string> resume_overrides;
  /// Every override accepted in this run so far, [{"option", "from", "to", "step"}], saved as
  /// "overrides" in every snapshot and restored, so a checkpoint says how it came to be.
  nlohmann::json overrides = nlohmann::json::array();
  /// The names in resume_overrides whose value did change at the last restore().
  std::set<std::string> overridden;

  /// Set by a callback (BackupAndRestore) in on_train_begin; applied by CallbackList once every
  /// callback's on_train_begin has run, so that restored states are not reset afterwards.
  std::optional<RestorePoint> pending_restore;

  /// What restore() found doubtful but not wrong enough to refuse (e.g. the checkpoint's lr had
  /// changed while no learning-rate callback state was in it), for the program to print.
  std::vector<std::string> warnings;

  /// Asks the loop to stop; the first reason given is kept.
  void request_stop(std::string reason);

  /// Captures the full training state (see TrainingSnapshot). `metrics` are the logs to record
  /// with it (e.g. the epoch's), kept under "metrics".
  TrainingSnapshot snapshot(const Logs& metrics = {}) const;
  /// Applies a restore point now: model, optimizer, torch RNG, position, history, stop state,
  /// the loop state and every callback's state. Throws InputError if it does not fit.
  void restore(const RestorePoint& point);
};

/// A training callback with Keras's hooks. Every hook does nothing by default. `logs` carry the
/// metrics known at that moment (batch hooks: the batch's; epoch end: the epoch's, with val_*).
class Callback {
 public:
  virtual ~Callback() = default;

  /// The key under which this callback's state is checkpointed; unique within a CallbackList.
  virtual std::string name() const = 0;

  virtual void on_train_begin(TrainContext& ctx, const Logs& logs) { (void)ctx, (void)logs; }
  virtual void on_train_end(TrainContext& ctx, const Logs& logs) { (void)ctx, (void)logs; }
  virtual void on_epoch_begin(TrainContext& ctx, int epoch, const Logs& logs) {
    (void)ctx, (void)epoch, (void)logs;
  }
  virtual void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
    (void)ctx, (void)epoch, (void)logs;
  }
  virtual void on_batch_begin(TrainContext& ctx, std::int64_t batch, const Logs& logs) {
    (void)ctx, (void)batch, (void)logs;
  }
  virtual void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) {
    (void)ctx, (void)batch, (void)logs;
  }
  /// After loss.backward() of every micro-batch (with accumulation, several per step).
  virtual void on_after_backward(TrainContext& ctx) { (void)ctx; }
  /// Once the gradients of a whole optimizer step are in place (averaged over its micro-batches),
  /// before gradient clipping and optimizer.step(): the place to set this step's learning rate.
  /// ctx.global_step is the number of steps taken before this one.
  virtual void on_before_optimizer_step(TrainContext& ctx) { (void)ctx; }
  /// Before a validation pass (e.g. to swap averaged weights in).
  virtual void on_validation_begin(TrainContext& ctx) { (void)ctx; }
  /// After a validation pass, with the val_* metrics only.
  virtual void on_validation_end(TrainContext& ctx, const Logs& logs) { (void)ctx, (void)logs; }
  /// After a RestorePoint was applied (on_train_begin has run for everyone).
  virtual void on_resume(TrainContext& ctx) { (void)ctx; }
  /// Training is being interrupted (signal) and will end with on_train_end right after: the place
  /// to write a resumable checkpoint before anything (restore_best_weights) changes the model.
  virtual void on_interrupt(TrainContext& ctx) { (void)ctx; }

  /// State to checkpoint as JSON (null = nothing) and to get back on resume.
  virtual nlohmann::json state() const { return nullptr; }
  virtual void load_state(const nlohmann::json& state) { (void)state; }
  /// True when resuming without this callback's state would silently change training (a
  /// learning-rate schedule): a resume with this callback from a checkpoint without its state,
  /// or without it from a checkpoint that has its state, is refused with an InputError.
  virtual bool state_required_on_resume() const { return false; }
  /// True when this callback sets the optimizer's learning rate (a schedule, ReduceLROnPlateau):
  /// restore() warns when the checkpoint's lr had changed and no such callback's state is in it.
  virtual bool changes_learning_rate() const { return false; }

  /// Tensors to checkpoint (stored in callbacks.safetensors under "<name()>/<tensor>", or in a
  /// file of their own, see state_file()).
  virtual NamedTensors state_tensors() const { return {}; }
  /// Non-empty: state_tensors() are checkpointed unprefixed as their own file
  /// "<stem>.safetensors" beside model.safetensors (e.g. "ema": weights with the model's names,
  /// loadable into the model), and not in callbacks.safetensors. A plain name ([A-Za-z0-9_-]),
  /// not "model", "optimizer" or "callbacks", unique within a CallbackList (default "").
  virtual std::string state_file() const { return {}; }
  /// Gets back what state_tensors() gave, without the prefix; called after load_state().
  virtual void load_state_tensors(const NamedTensors& tensors) { (void)tensors; }
};

/// An ordered list of callbacks, called in order for every hook. Also the owner of the rules a
/// hand-written loop must follow: on_epoch_end appends to ctx.history, and on_train_begin
/// applies a pending restore after every callback has begun.
class CallbackList {
 public:
  CallbackList() = default;
  explicit CallbackList(std::vector<std::shared_ptr<Callback>> callbacks);

  /// Appends a callback; throws OptionError if its name() or its state_file() is already taken
  /// (or the stem is reserved or not a plain name).
  CallbackList& add(std::shared_ptr<Callback> callback);
  const std::vector<std::shared_ptr<Callback>>& callbacks() const { return callbacks_; }
  /// The first callback of type T, or nullptr.
  template <class T>
  std::shared_ptr<T> find() const {
    for (const auto& c : callbacks_)
      if (auto p = std::dynamic_pointer_cast<T>(c)) return p;
    return nullptr;
  }

  /// Sets ctx.callbacks, calls every on_train_begin, then applies ctx.pending_restore (if any)
  /// and calls every on_resume. After it, ctx.epoch/ctx.batch say where the loop must start.
  void on_train_begin(TrainContext& ctx, const Logs& logs = {});
  void on_train_end(TrainContext& ctx, const Logs& logs = {});
  /// Sets ctx.epoch, clears ctx.epoch_complete and calls every on_epoch_begin.
  void on_epoch_begin(TrainContext& ctx, int epoch, const Logs& logs = {});
  /// Sets ctx.epoch_complete, appends {epoch, global_step, logs} to ctx.history, then calls every
  /// on_epoch_end.
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs);
  void on_batch_begin(TrainContext& ctx, std::int64_t batch, const Logs& logs = {});
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs);
  void on_after_backward(TrainContext& ctx);
  void on_before_optimizer_step(TrainContext& ctx);
  void on_validation_begin(TrainContext& ctx);
  void on_validation_end(TrainContext& ctx, const Logs& logs);
  /// Sets ctx.interrupted and calls every on_interrupt.
  void on_interrupt(TrainContext& ctx);

  /// {name: state} of every callback whose state is not null.
  nlohmann::json states() const;
  /// Names of the callbacks whose state_required_on_resume() (saved as "required_callbacks").
  std::vector<std::string> required_states() const;
  /// Names of the callbacks that changes_learning_rate() (saved as "lr_callbacks").
  std::vector<std::string> lr_callbacks() const;
  /// Hands each callback its entry of `states` (callbacks without one keep theirs). Throws
  /// InputError when a callback whose state is required has no entry, or when `required` (the
  /// checkpoint's required_states()) names a callback this list lacks.
  void load_states(const nlohmann::json& states, const std::vector<std::string>& required = {});
  /// Every callback's tensors, prefixed "<name>/" (callbacks with a state_file() excepted).
  NamedTensors state_tensors() const;
  /// Hands each callback the tensors under its prefix (prefix removed), if any; callbacks with
  /// a state_file() too, for checkpoints written before they had one.
  void load_state_tensors(const NamedTensors& tensors);
  /// {name: stem} of the callbacks with a state_file().
  nlohmann::json state_file_names() const;
  /// The tensors of the callbacks with a state_file(): stem -> tensors (empty sets left out).
  std::map<std::string, NamedTensors, std::less<>> state_files() const;
  /// Hands each callback with a state_file() the tensors of its file in `point` (callbacks whose
  /// file is absent keep theirs).
  void load_state_files(const RestorePoint& point);

 private:
  std::vector<std::shared_ptr<Callback>> callbacks_;
};

/// JSON of one epoch's logs (non-finite values as "nan"/"inf" strings) and back.
nlohmann::json logs_to_json(const Logs& logs);
Logs logs_from_json(const nlohmann::json& json);

}  // namespace vigil::torch
