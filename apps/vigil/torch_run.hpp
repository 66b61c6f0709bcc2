// The parts of a `vigil train` run that every model kind shares (torch_train.cpp): its trainer
// options, run directory, callbacks and messages. The language model (torch_lm.cpp) uses them
// with its own data and step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "torch_train.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/ema.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/trainer.hpp"

namespace vigil::cli {

/// Rank 0's run directory and the callbacks the report reads.
struct MainRun {
  std::shared_ptr<CheckpointManager> manager;
  std::shared_ptr<CheckpointManager> backup;  ///< where resume state lives: manager, or backup/
  std::shared_ptr<vigil::torch::BackupAndRestore> restore;
  std::shared_ptr<vigil::torch::EarlyStopping> stopping;
  std::shared_ptr<vigil::torch::ModelCheckpoint> checkpoints;
  std::shared_ptr<vigil::torch::ModelEma> ema;  ///< null without --ema
  std::string period = "epoch";  ///< what one row of metrics.csv is: "epoch" or "validation"
  std::string length_flag = "--epochs";  ///< the flag that says how long the run lasts
};

/// The Trainer's options for `config`, interrupted by SIGINT/SIGTERM.
vigil::torch::TrainerOptions trainer_options(const RunConfig& config);

/// The checkpoint manager's options for `config` (validated).
CheckpointManagerOptions checkpoint_options(const RunConfig& config);

/// Before anything changes `run_dir` (if it exists): refuses (OptionError) a folder that is
/// neither empty nor a vigil run, and a run another process holds (LockError naming it); for
/// `fresh` moves the run aside while holding its lock. Returns the run's lock, held until the
/// checkpoint manager takes it over (empty when `run_dir` does not exist yet).
[[nodiscard]] RunLock prepare_run_dir(const std::filesystem::path& run_dir, bool fresh);

/// Gives `config` its run id: a new one for a new run; on resume run.json's, or a new one (with
/// a note) for a run made before run ids.
void assign_run_id(RunConfig& config, const std::filesystem::path& run_dir, bool resuming);

/// Opens the run directory under `lock` (taken here when empty; the manager cleans up
/// incomplete writes and refuses checkpoints of another run), records run.json and makes the
/// callbacks the report reads.
MainRun open_run(const std::filesystem::path& run_dir, const RunConfig& config,
                 const CheckpointManagerOptions& options, RunLock lock);

/// The test set's metrics ("loss", and "accuracy" or "perplexity") of the model as it is now.
using TestEvaluator = std::function<Logs()>;

/// Refuses (OptionError) what --eval-test-every-epoch cannot go with: a --monitor on the test set.
void check_eval_test(const RunConfig& config);

/// --eval-test-every-epoch: after every period, `evaluate` on the weights validation measured,
/// written into that period's history record as "test_<metric>" (so metrics.csv and every
/// checkpoint's history have it) but not into the logs the other callbacks decide on. It must
/// come before every callback that reads or saves the history.
std::shared_ptr<vigil::torch::Callback> make_test_curve(TestEvaluator evaluate);

/// Adds rank 0's callbacks: the test curve (when config.eval_test_every_epoch, from `test`),
/// restore, EMA, early stopping, lr changes, checkpoints, logs, progress and the test hooks.
/// `group` is null when training alone.
void add_main_callbacks(vigil::torch::Trainer& trainer, const MainRun& r, const RunConfig& config,
                        const std::shared_ptr<vigil::torch::ProcessGroup>& group,
                        const TrainArgs& a, const TestEvaluator& test);

/// Says whether the run starts over or resumes, and from which checkpoint.
void announce_start(const std::filesystem::path& run_dir, bool resuming, const MainRun& r);

/// Says where the interrupted run stands and how to resume it; returns 128 + the signal.
/// `batches_per_epoch` is 0 for an endless source.
int report_interrupt(const std::filesystem::path& run_dir, const vigil::torch::FitResult& fit,
                     const MainRun& r, std::int64_t batches_per_epoch, const RunConfig& config);

/// The "stopped: ...", "best validation: ..." and "checkpoints: ..." lines of the report.
void print_stop_lines(const std::filesystem::path& run_dir, const vigil::torch::FitResult& fit,
                      const MainRun& r, bool already_finished);

/// The "model: ...", "best model: ...", "checkpoints: ..." and "metrics: ..." lines.
void print_run_files(const std::filesystem::path& run_dir, const MainRun& r);

/// The optimizer --optimizer, --lr, --momentum and --weight-decay describe, over `params`
/// (distinct tensors: a tied weight once).
std::unique_ptr<::torch::optim::Optimizer> build_optimizer(const RunConfig& config,
                                                           std::vector<::torch::Tensor> params);

/// --init-from: a fresh run starts from those weights (recorded with their hash in run.json); a
/// resumed run takes its checkpoint's, unless it has none yet and must start over the same way.
/// --freeze: stops the parameters whose names match config.freeze from training (nothing when
/// it is empty) and says how many values that leaves training. Throws OptionError for a pattern
/// that is invalid or matches nothing.
void apply_freeze(const RunConfig& config, ::torch::nn::Module& net);
void apply_init_from(RunConfig& config, ::torch::nn::Module& net,
                     const std::filesystem::path& run_dir, bool resuming);

/// --reference-runs: for the median and percentile rules, the curves of the earlier runs the
/// glob matches (the run's own folder left out), read at the first start and recorded in
/// run.json, or on resume the recorded ones. OptionError for a glob without such a rule or such
/// a rule without a glob; InputError when nothing matches.
void apply_reference_runs(RunConfig& config, const std::filesystem::path& run_dir, bool resuming);

/// result.json's fields that do not depend on the model kind.
nlohmann::json result_json(const vigil::torch::FitResult& fit, const MainRun& r,
                           double fit_seconds);

}  // namespace vigil::cli
