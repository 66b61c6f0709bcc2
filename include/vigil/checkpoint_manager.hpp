// CheckpointManager: the checkpoint policy of one run directory (when to save, which checkpoints
// to keep, best/ and last, the manifest) and resuming from what is really on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/checkpoint.hpp"
#include "vigil/io.hpp"
#include "vigil/monitor.hpp"
#include "vigil/option_table.hpp"
#include "vigil/retention.hpp"
#include "vigil/run_lock.hpp"
#include "vigil/setter.hpp"

namespace vigil {

class AsyncSaver;

/// Options of CheckpointManager, in the vocabulary of Keras/Lightning ModelCheckpoint, the
/// Hugging Face Trainer and Orbax CheckpointManager. Retention rules combine as a union (see
/// retention_policy() in retention.hpp): a checkpoint is removed only when no rule keeps it, and
/// the best and the newest checkpoint are never removed. With none of save_top_k, keep_last and
/// retention set, every checkpoint is kept. JSON in and out: to_json(), from_json() and
/// checkpoint_manager_option_fields().
struct CheckpointManagerOptions {
  /// Metric that ranks checkpoints (default "val_loss"); empty = none (then save_top_k,
  /// save_best_only and best/ are unavailable). A checkpoint whose metrics lack it (e.g. a
  /// mid-epoch save) is never ranked, never best, and skipped under save_best_only.
  std::string monitor = "val_loss";
  /// Which way `monitor` is better; Auto infers it from the name (see resolve_mode); "min",
  /// "max" or "auto" in JSON (default Auto).
  ModeSetting mode = ModeSetting::Auto;
  /// Keep the k best checkpoints by `monitor`; ties keep the newer; NaN ranks last;
  /// -1 = all (Lightning) (default unset: no rank rule).
  std::optional<int> save_top_k;
  /// Keep the n newest checkpoints (HF save_total_limit, Orbax max_to_keep); -1 = all
  /// (default unset: no recency rule).
  std::optional<int> keep_last;
  /// Keep permanently every checkpoint taken at the end of an epoch with (epoch + 1) % n == 0,
  /// like Orbax keep_period; 0 = off (default 0).
  int keep_every_n_epochs = 0;
  /// Save only when `monitor` improves on the best so far (strictly, Keras) (default false).
  bool save_best_only = false;
  /// should_save() at an epoch end is true when (epoch + 1) % n == 0; 0 = never (default 1).
  int save_every_n_epochs = 1;
  /// should_save() after a step is true when step % n == 0 (step = optimizer steps taken);
  /// 0 = never (default 0).
  std::int64_t save_every_n_steps = 0;
  /// should_save() is also true (at epoch ends and steps) once this many seconds passed since
  /// the last save or since the manager was opened; 0 = off (default 0).
  double save_every_seconds = 0;
  /// A checkpoint becomes best (and is saved under save_best_only) only if it is better than
  /// this value, Keras' initial_value_threshold (default unset).
  std::optional<double> initial_value_threshold;
  /// Folder name of a checkpoint, with fields {epoch}, {step} and any metric, each with an
  /// optional format spec such as {epoch:04d} or {val_loss:.4f}; see template.hpp
  /// (default "epoch-{epoch:04d}"). A name already taken gets "-v1", "-v2", ... appended.
  std::string filename = "epoch-{epoch:04d}";
  /// submit() saves with save_async() instead of save() (default false).
  bool async = false;
  /// When save_async() is called while a save is in flight: true = keep only the newest waiting
  /// request and return at once (older waiting ones are dropped); false = block until the save
  /// in flight finished (default false).
  bool async_coalesce = false;
  /// Hash every file of every checkpoint when the manager opens (default true); false checks
  /// state.json, sizes and headers only (fast for huge checkpoints).
  bool verify_on_open = true;
  /// The stem of the checkpoint file that best/model.safetensors is a copy of (default "model").
  /// "ema" keeps the averaged weights when validation ran on them (ModelEma with validate): they
  /// have the model's tensor names. Recorded in the manifest as "best_file". Not in JSON.
  std::string best_stem = std::string(kModelStem);
  /// The run's identity (default empty: none). When set, every checkpoint records it and
  /// opening the run throws InputError if a kept checkpoint records another one: a checkpoint
  /// copied in from another run is never resumed. Checkpoints that record none (written before
  /// runs had ids) are adopted. Recorded in the manifest as "run_id". Not in JSON.
  std::string run_id;
  /// A tensor file that would be byte for byte a file of a kept checkpoint (frozen weights, the
  /// best-weights copy, an unchanged shard) is hard-linked to it instead of written again; see
  /// CheckpointContent::shareable (default true). Every folder still holds all its files and
  /// loads alone; removing a checkpoint frees only what no other one links. Not in JSON.
  bool share_unchanged_files = true;
  /// The file layer (tests inject faults through it) (default FileOps::real()). Not in JSON.
  std::shared_ptr<FileOps> ops = FileOps::real();
  /// A policy of the caller's own, added to the union of the rules above; setting it turns
  /// rotation on even without save_top_k and keep_last (default none). Not in JSON.
  std::shared_ptr<const RetentionPolicy> retention;

  VIGIL_SETTER(monitor)
  VIGIL_SETTER(mode)
  /// "min", "max" or "auto"; throws OptionError for anything else.
  CheckpointManagerOptions& with_mode(std::string_view v) {
    mode = parse_mode_setting(v);
    return *this;
  }
  VIGIL_SETTER(save_top_k)
  VIGIL_SETTER(keep_last)
  VIGIL_SETTER(keep_every_n_epochs)
  VIGIL_SETTER(save_best_only)
  VIGIL_SETTER(save_every_n_epochs)
  VIGIL_SETTER(save_every_n_steps)
  VIGIL_SETTER(save_every_seconds)
  VIGIL_SETTER(initial_value_threshold)
  VIGIL_SETTER(filename)
  VIGIL_SETTER(async)
  VIGIL_SETTER(async_coalesce)
  VIGIL_SETTER(verify_on_open)
  VIGIL_SETTER(best_stem)
  VIGIL_SETTER(run_id)
  VIGIL_SETTER(share_unchanged_files)
  VIGIL_SETTER(ops)
  VIGIL_SETTER(retention)

  /// Throws OptionError naming the bad option (negative counts, unknown mode, a bad template,
  /// save_top_k/save_best_only without a monitor).
  void validate() const;

  /// The fields of checkpoint_manager_option_fields() as one JSON object (ops and retention are
  /// not options in JSON).
  [[nodiscard]] nlohmann::json to_json() const;
  /// `defaults` with the keys of `j` read over it; throws OptionError for a non-object, an
  /// unknown key (listing the known ones) or a value of the wrong type. Does not validate().
  [[nodiscard]] static CheckpointManagerOptions from_json(const nlohmann::json& j,
                                                          const CheckpointManagerOptions& defaults);
  /// from_json(j, CheckpointManagerOptions{}).
  [[nodiscard]] static CheckpointManagerOptions from_json(const nlohmann::json& j);
};

/// One entry per serializable field of CheckpointManagerOptions (its JSON key and help line), in
/// declaration order.
[[nodiscard]] std::span<const OptionField<CheckpointManagerOptions>>
checkpoint_manager_option_fields();

/// One save: where in training, the metrics, the tensor files and the caller's state.
struct SaveRequest {
  std::int64_t epoch = 0;  ///< 0-based
  std::int64_t step = 0;   ///< optimizer steps taken so far
  SavePoint at = SavePoint::EpochEnd;
  Logs metrics;
  /// Stem -> tensors; "model" becomes best/model.safetensors. Views must stay valid until save()
  /// returns (save_async() copies them before returning).
  TensorFiles files;
  /// Written as "state" in state.json (stopper state, RNG, data order, options, ...).
  nlohmann::json state = nlohmann::json::object();
  /// CheckpointContent::extra_files, passed through (default empty; save() only: save_async()
  /// refuses a request with it, since the hook would run on the writer thread).
  std::function<std::vector<CheckpointFileInfo>(const std::filesystem::path& tmp)> extra_files;
  /// CheckpointContent::metadata: header metadata of some files, by stem (default none).
  std::map<std::string, Metadata, std::less<>> metadata;
  /// CheckpointContent::indexes: the shard indexes of files given as shards (default none).
  /// With best_stem among them, best/model.safetensors is the shards merged into one file.
  std::map<std::string, nlohmann::json, std::less<>> indexes;
};

/// What one save did.
struct SaveResult {
  bool saved = false;                        ///< false: skipped (save_best_only), see reason
  std::string reason;                        ///< why it was skipped, a sentence
  std::optional<CheckpointInfo> checkpoint;  ///< the committed checkpoint
  bool is_best = false;                      ///< it became best/ (improved on the best)
  std::vector<std::string> removed;          ///< checkpoints rotated out by this save
};

/// What opening a run directory found and did.
struct OpenReport {
  std::vector<std::string> removed_leftovers;  ///< temporary folders/files of interrupted writes
  /// Folders in checkpoints/ that failed verification: name -> the problem. They are skipped
  /// (never read, never deleted), so resume picks the newest intact checkpoint.
  std::vector<std::pair<std::string, std::string>> skipped;
  /// Set when `last` is missing, unreadable or names no intact checkpoint (the manager rewrites
  /// it on the next save).
  std::optional<std::string> last_problem;
};

/// Manages `DIR/checkpoints/<name>/`, DIR/best/model.safetensors, DIR/last (a pointer file holding
/// the newest checkpoint's name: replaced atomically by rename, unlike a symlink it survives
/// copying to file systems and archives without symlinks) and DIR/checkpoints/manifest.json.
/// Holds the run lock (DIR/.vigil.lock) while open. Not copyable or movable; one thread at a
/// time calls it (save_async's writer thread is internal).
class CheckpointManager {
 public:
  /// Creates DIR if needed, takes the run lock (LockError if another process holds it), removes
  /// leftovers of interrupted writes, and lists and verifies the checkpoints on disk.
  explicit CheckpointManager(std::filesystem::path run_dir, CheckpointManagerOptions options = {});
  /// The same, taking over `lock`, which the caller already holds on `run_dir`: nothing else
  /// can get into the run between the caller's own changes (moving a run aside, writing its
  /// data) and the manager's opening. Throws OptionError if `lock` is not held on `run_dir`.
  CheckpointManager(std::filesystem::path run_dir, CheckpointManagerOptions options, RunLock lock);
  /// Waits for the save in flight; an error of it is logged to stderr (never thrown).
  ~CheckpointManager();
  CheckpointManager(const CheckpointManager&) = delete;
  CheckpointManager& operator=(const CheckpointManager&) = delete;

  [[nodiscard]] const std::filesystem::path& run_dir() const { return run_dir_; }
  [[nodiscard]] const CheckpointManagerOptions& options() const { return options_; }
  /// The resolved direction of `monitor` (Min when there is no monitor).
  [[nodiscard]] Mode mode() const { return mode_; }
  [[nodiscard]] const OpenReport& open_report() const { return report_; }

  /// The every-n policies: at an epoch end, save_every_n_epochs; after a step,
  /// save_every_n_steps; at both, save_every_seconds since the last save.
  [[nodiscard]] bool should_save(
      std::int64_t epoch, std::int64_t step,
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now(),
      SavePoint at = SavePoint::EpochEnd) const;

  /// Saves synchronously: applies save_best_only, commits the checkpoint, updates best/ and
  /// last, rotates, rewrites the manifest. Waits for a save in flight first (and rethrows its
  /// error). On failure nothing committed is lost and the next save may succeed.
  [[nodiscard]] SaveResult save(const SaveRequest& request);
  /// Copies the request's tensors into reused host buffers, returns, and saves in the
  /// background (at most one save in flight; see async_coalesce). Rethrows the error of an
  /// earlier background save.
  void save_async(const SaveRequest& request);
  /// Returns at once and, on the background writer's thread, maps and touches the snapshot
  /// memory that save_async() of requests like `request` will copy into (only its tensor sizes
  /// count): the first save_async() then only copies instead of paying the first touch of a
  /// state-sized buffer (about 1.8 s a GiB on the project's VM). Optional; ModelCheckpoint
  /// calls it after the first training step.
  void reserve_async(const SaveRequest& request);
  /// Bytes of snapshot memory held for background saves, and how often it was mapped.
  [[nodiscard]] std::size_t async_buffer_bytes() const;
  [[nodiscard]] std::size_t async_buffer_allocations() const;
  /// save_async() if options().async, else save() (the result is then dropped).
  void submit(const SaveRequest& request);
  /// Waits for background saves; returns the results finished since the last call. Rethrows a
  /// background error (once). Not [[nodiscard]]: flushing and dropping the results is a normal
  /// use (before reading checkpoints(), at the end of training).
  std::vector<SaveResult> wait();

  /// Committed, intact checkpoints, oldest first. Waits for a save in flight.
  [[nodiscard]] std::vector<CheckpointInfo> checkpoints();
  /// The newest intact checkpoint (the one to resume from).
  [[nodiscard]] std::optional<CheckpointInfo> latest();
  /// The checkpoint best/model.safetensors was copied from.
  [[nodiscard]] std::optional<CheckpointInfo> best();
  /// The best monitored value so far (only from checkpoints that beat initial_value_threshold).
  [[nodiscard]] std::optional<double> best_value();
  /// Opens a checkpoint by name (already verified when the manager opened or saved it).
  [[nodiscard]] Checkpoint open(std::string_view name);

  /// The manifest's content: options, best, last, next sequence, kept checkpoints with metrics.
  /// The manager rebuilds all of it from the disk on open, so a resumed run rotates exactly as
  /// an uninterrupted one.
  [[nodiscard]] nlohmann::json manifest();

  [[nodiscard]] static std::filesystem::path checkpoints_dir(const std::filesystem::path& run_dir);
  [[nodiscard]] static std::filesystem::path best_model_path(const std::filesystem::path& run_dir);
  [[nodiscard]] static std::filesystem::path last_path(const std::filesystem::path& run_dir);
  [[nodiscard]] static std::filesystem::path manifest_path(const std::filesystem::path& run_dir);

 private:
  SaveResult save_now(const SaveRequest& request);
  AsyncSaver& async_saver();  // created on first use
  std::vector<CheckpointRecord> retention_records() const;
  void rotate(SaveResult& result);
  void write_manifest();
  nlohmann::json manifest_json() const;
  void load();
  std::optional<double> metric_of(const CheckpointInfo& info) const;
  void drain();

  std::filesystem::path run_dir_;
  CheckpointManagerOptions options_;
  Mode mode_ = Mode::Min;
  RunLock lock_;
  OpenReport report_;
  std::vector<CheckpointInfo> entries_;  // oldest first
  std::optional<std::string> best_name_;
  std::optional<double> best_value_;
  bool best_published_ = true;  // false while best/ lags behind best_name_ (a failed copy)
  std::optional<CheckpointFileInfo> best_copy_;  // what best/ holds, as far as this manager knows
  std::vector<SaveResult> finished_;             // results collected by save()/drain() for wait()
  std::uint64_t next_sequence_ = 1;
  std::chrono::steady_clock::time_point last_save_time_;
  std::unique_ptr<AsyncSaver> saver_;
};

}  // namespace vigil
