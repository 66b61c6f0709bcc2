// `vigil train`: trains a model on Fashion-MNIST (or a CSV table) with early
// stopping, checkpoints with rotation, automatic resume from --run-dir, and
// clean SIGINT/SIGTERM handling (vigil/torch/signals.hpp). Its flags: torch_train_flags.cpp.
#include <fmt/core.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "torch_lm.hpp"
#include "torch_run.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/io.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/ema.hpp"
#include "vigil/torch/learning_curve_plot.hpp"
#include "vigil/torch/lr_schedule.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/progress_bar.hpp"
#include "vigil/torch/reduce_lr_on_plateau.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"
#include "vigil/torch/signals.hpp"
#include "vigil/torch/trainer.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;
namespace vt = vigil::torch;

// What the checkpoint callback and early stopping did at an epoch end, appended to the epoch's
// progress line.
std::string epoch_note(const vt::ModelCheckpoint& checkpoints, const vt::EarlyStopping& stopping) {
  std::string note;
  if (const auto& r = checkpoints.last_result(); r && r->saved && r->checkpoint)
    note = fmt::format("saved {}{}", r->checkpoint->name, r->is_best ? " (best)" : "");
  if (!stopping.last_warning().empty())
    note += (note.empty() ? "" : "  ") + ("warning: " + stopping.last_warning());
  return note;
}

// "epoch 6 (7 of 30)": the 0-based index used in checkpoint names, metrics.csv and reports, and
// the 1-based count, so that neither reading is ambiguous.
std::string epoch_label(long epoch, long total, const char* period = "epoch") {
  return fmt::format("{} {} ({} of {})", period, epoch, epoch + 1, total);
}

// Hidden test hook: raise SIGKILL on ourselves after N optimizer steps or N
// finished epochs (after every other callback of that epoch, so its checkpoint
// is committed): a real kill.
class DebugKill : public vt::Callback {
 public:
  DebugKill(std::int64_t after_batches, int after_epochs,
            std::shared_ptr<CheckpointManager> manager)
      : after_batches_(after_batches), after_epochs_(after_epochs), manager_(std::move(manager)) {}
  std::string name() const override { return "debug_kill"; }
  void on_batch_end(vt::TrainContext& ctx, std::int64_t, const Logs&) override {
    if (after_batches_ > 0 && ctx.global_step == after_batches_) kill_now();
  }
  void on_epoch_end(vt::TrainContext&, int epoch, const Logs&) override {
    if (after_epochs_ > 0 && epoch + 1 == after_epochs_) {
      if (manager_) manager_->wait();
      kill_now();
    }
  }

 private:
  static void kill_now() {
    std::fflush(stdout);
    ::raise(SIGKILL);
  }
  std::int64_t after_batches_;
  int after_epochs_;
  std::shared_ptr<CheckpointManager> manager_;
};

}  // namespace

vt::TrainerOptions trainer_options(const RunConfig& config) {
  return vt::TrainerOptions{}
      .with_epochs(config.epochs)
      .with_batch_size(config.batch_size)
      .with_seed(config.seed)
      .with_threads(config.threads)
      .with_max_steps(config.max_steps)
      .with_val_every_n_steps(config.val_every_n_steps)
      .with_accumulate(config.accumulate)
      .with_clip_grad_norm(config.clip_grad_norm)
      .with_extra({{"run", config.to_json()}})
      .with_interrupt([]() -> std::optional<std::string> {
        const int sig = vt::received_stop_signal();
        if (sig == 0) return std::nullopt;
        return "interrupted by " + vt::signal_name(sig);
      });
}

namespace {

std::shared_ptr<vt::Callback> make_reduce_lr(const RunConfig& config) {
  if (config.reduce_lr_patience < 0) return nullptr;
  return std::make_shared<vt::ReduceLROnPlateau>(vt::ReduceLROnPlateauOptions{}
                                                     .with_monitor(config.early_stopping.monitor)
                                                     .with_mode(config.early_stopping.mode)
                                                     .with_patience(config.reduce_lr_patience)
                                                     .with_factor(config.reduce_lr_factor)
                                                     .with_min_lr(config.min_lr)
                                                     .with_cooldown(config.cooldown));
}

// The lr schedule of --lr-schedule/--warmup-steps/--final-lr; throws OptionError naming the flag
// for a bad value (checked before any work). Null when the lr never changes (constant without a
// warm-up): runs started before the schedule existed resume as they were.
std::shared_ptr<vt::LRSchedule> make_lr_schedule(const RunConfig& config) {
  vt::LRScheduleOptions o;
  try {
    o.with_schedule(vt::parse_lr_schedule(config.lr_schedule));
  } catch (const OptionError& e) {
    throw OptionError(fmt::format("--lr-schedule: {}", e.what()));
  }
  if (config.warmup_steps < 0)
    throw OptionError(fmt::format("--warmup-steps must be >= 0, got {}", config.warmup_steps));
  if (!(config.final_lr >= 0.0) || !std::isfinite(config.final_lr))
    throw OptionError(fmt::format("--final-lr must be >= 0, got {}", config.final_lr));
  o.with_warmup_steps(config.warmup_steps).with_final_lr(config.final_lr);
  if (o.schedule.kind == vt::LRScheduleKind::Constant && o.warmup_steps == 0) return nullptr;
  // The schedule sets the lr before every step, which would undo every reduction.
  if (config.reduce_lr_patience >= 0)
    throw OptionError(
        fmt::format("--lr-schedule {}{} and --reduce-lr-patience both set the lr: use one of them",
                    config.lr_schedule, config.warmup_steps > 0 ? " with --warmup-steps" : ""));
  return std::make_shared<vt::LRSchedule>(o);
}

// Prints what a resume found doubtful (TrainContext::warnings) once the checkpoint is applied.
class ResumeWarnings : public vt::Callback {
 public:
  std::string name() const override { return "resume_warnings"; }
  void on_resume(vt::TrainContext& ctx) override {
    for (const auto& w : ctx.warnings) fmt::print(stderr, "vigil: warning: {}\n", w);
  }
};

// --ema DECAY (and --ema-validate), refused before any work when out of range.
void check_ema(const RunConfig& config) {
  if (config.ema && !(*config.ema > 0 && *config.ema < 1))
    throw OptionError(fmt::format(
        "--ema takes a decay in (0, 1) such as 0.999 (about the last 1000 steps), not {}",
        *config.ema));
  if (config.ema_validate && !config.ema)
    throw OptionError("--ema-validate validates the averaged weights: it needs --ema DECAY");
}

std::shared_ptr<vt::ModelEma> make_ema(const RunConfig& config) {
  if (!config.ema) return nullptr;
  return std::make_shared<vt::ModelEma>(
      vt::ModelEmaOptions{}.with_decay(*config.ema).with_validate(config.ema_validate));
}

// Data-parallel runs save sharded checkpoints: every rank writes its part (sharded_checkpoint.hpp).
std::shared_ptr<vt::Callback> make_sharded_checkpoint(const RunConfig& config,
                                                      std::shared_ptr<vt::ProcessGroup> group,
                                                      std::shared_ptr<CheckpointManager> manager,
                                                      const TrainArgs& a) {
  vt::ShardedCheckpointOptions o;
  o.with_step_saves(config.save_every_n_steps > 0);
  if (a.launch.debug_kill_in_save > 0 && debug_kill_applies(a.launch, group.get()))
    o.with_after_shards_written([n = 0, at = a.launch.debug_kill_in_save]() mutable {
      if (++n == at) {
        std::fflush(stdout);
        ::raise(SIGKILL);
      }
    });
  return std::make_shared<vt::ShardedModelCheckpoint>(std::move(group), std::move(manager), o);
}

// A data-parallel rank other than 0: trains its slices with the callbacks that steer training
// (the same decisions as rank 0's); rank 0 alone writes checkpoints, logs and the report.
int run_worker_rank(const RunConfig& config, std::shared_ptr<vt::ProcessGroup> group,
                    ::torch::nn::Sequential net, ::torch::optim::Optimizer& optimizer,
                    const RunData& data, const TrainArgs& a) {
  vt::Trainer trainer(trainer_options(config).with_distributed(group));
  // Every rank averages (its weights are rank 0's), so that each validates its shard on them.
  if (auto ema = make_ema(config)) trainer.add_callback(ema);
  trainer.add_callback(std::make_shared<vt::EarlyStopping>(
      vt::EarlyStoppingCallbackOptions{}
          .with_stopping(config.early_stopping)
          .with_restore_best_weights(config.restore_best_weights)));
  if (auto reduce_lr = make_reduce_lr(config)) trainer.add_callback(reduce_lr);
  if (auto schedule = make_lr_schedule(config)) trainer.add_callback(schedule);
  trainer.add_callback(make_sharded_checkpoint(config, group, nullptr, a));
  if ((a.debug_kill_after_batches > 0 || a.debug_kill_after_epochs > 0) &&
      debug_kill_applies(a.launch, group.get()))
    trainer.add_callback(std::make_shared<DebugKill>(a.debug_kill_after_batches,
                                                     a.debug_kill_after_epochs, nullptr));
  vt::FitResult fit;
  {
    vt::StopSignals signals;
    fit = trainer.fit(vt::Model::of(net), optimizer, data.train, data.validation);
  }
  if (fit.interrupted) {
    const int sig = vt::received_stop_signal();
    return 128 + (sig != 0 ? sig : SIGINT);
  }
  return 0;
}

// The options of this run: `given` (the command line's), or on resume run.json's with the flags
// given again over them (merge_for_resume refuses a frozen one that changes).
RunConfig resolve_config(const TrainArgs& a, const RunConfig& given, vt::ProcessGroup* group,
                         bool resuming) {
  RunConfig config = given;
  if (resuming) {
    const fs::path run_dir = a.run_dir;
    const auto recorded = read_json_file(run_dir / "run.json");
    const auto merged = merge_for_resume(recorded, given.to_json(), explicit_keys(a), run_dir);
    config = RunConfig::from_json(merged);
    // The test curve is measured on one test set from its first row to its last.
    if (config.eval_test_every_epoch && recorded.contains("limit_test") &&
        recorded.at("limit_test") != merged.at("limit_test"))
      throw OptionError(fmt::format(
          "--limit-test cannot change when resuming {} with --eval-test-every-epoch (the run "
          "was started with --limit-test {}, now {}): its test curve would change test sets",
          run_dir.string(), recorded.at("limit_test").dump(), merged.at("limit_test").dump()));
  } else {
    apply_lm_defaults(config, explicit_keys(a));
  }
  if (!resuming && config.val_every_n_steps > 0 && explicit_keys(a).count("filename") == 0) {
    // One naming scheme per run: a run that validates by steps names its checkpoints by step.
    config.filename = "step-{step:08d}";
  }
  if (group)  // every rank runs with rank 0's options (it alone reads run.json)
    config = RunConfig::from_json(
        nlohmann::json::parse(group->broadcast_string(config.to_json().dump())));
  config.early_stopping.validate();
  check_eval_test(config);
  if (is_lm(config)) check_lm(config);
  (void)make_lr_schedule(config);  // refuses bad values before any work
  check_ema(config);
  return config;
}

RunData load_data(RunConfig& config) {
  RunData data = load_run_data(config, /*need_train=*/true);
  fmt::print("data: {}: {} train, {} validation, {} test examples\n", data.description,
             data.train.size(), data.validation.size(), data.test.size());
  if (data.validation.size() == 0 && config.early_stopping.monitor.rfind("val_", 0) == 0)
    throw OptionError(fmt::format("--monitor {} needs validation data: set --validation-split > 0",
                                  config.early_stopping.monitor));
  return data;
}

}  // namespace

std::unique_ptr<::torch::optim::Optimizer> build_optimizer(const RunConfig& config,
                                                           std::vector<::torch::Tensor> params) {
  nlohmann::json opt_options = {{"lr", config.lr}};
  const auto kind = vt::parse_optimizer(config.optimizer);
  if (config.weight_decay != 0) opt_options["weight_decay"] = config.weight_decay;
  if (config.momentum != 0) {
    if (kind != vt::OptimizerKind::SGD && kind != vt::OptimizerKind::RMSprop)
      throw OptionError(
          fmt::format("--momentum applies to sgd and rmsprop, not {}", config.optimizer));
    opt_options["momentum"] = config.momentum;
  }
  return vt::make_optimizer(kind, std::move(params), opt_options);
}

CheckpointManagerOptions checkpoint_options(const RunConfig& config) {
  auto o = CheckpointManagerOptions{}
               .with_monitor(config.early_stopping.monitor)
               .with_mode(config.early_stopping.mode)
               .with_save_every_n_epochs(config.save_every_n_epochs)
               .with_save_every_n_steps(config.save_every_n_steps)
               .with_save_best_only(config.save_best_only)
               .with_filename(config.filename)
               .with_async(config.async_save);
  if (config.save_top_k != 0) o.with_save_top_k(config.save_top_k);
  if (config.keep_last != 0) o.with_keep_last(config.keep_last);
  if (config.ema_validate) o.with_best_stem("ema");  // best/ is what was validated
  o.with_run_id(config.run_id);
  o.validate();
  return o;
}

// Opens the run directory (the manager cleans up incomplete writes) and records run.json.
MainRun open_run(const fs::path& run_dir, const RunConfig& config,
                 const CheckpointManagerOptions& options, RunLock lock) {
  MainRun r;
  if (config.val_every_n_steps > 0) r.period = "validation";
  r.manager = lock.held() ? std::make_shared<CheckpointManager>(run_dir, options, std::move(lock))
                          : std::make_shared<CheckpointManager>(run_dir, options);
  for (const auto& [name, problem] : r.manager->open_report().skipped)
    fmt::print(stderr, "vigil: warning: skipping damaged checkpoint {}: {}\n", name, problem);
  // With save_best_only the shared manager would skip the interrupt checkpoint
  // (it has no validation metric), so resume state then lives in its own
  // folder, as Keras's backup_dir.
  r.backup = r.manager;
  if (config.save_best_only)
    r.backup = std::make_shared<CheckpointManager>(
        run_dir / "backup", CheckpointManagerOptions{}
                                .with_monitor("")
                                .with_keep_last(1)
                                .with_filename("epoch-{epoch:04d}-step-{step}")
                                .with_run_id(config.run_id));
  atomic_write_file(run_dir / "run.json", config.to_json().dump(2) + "\n");
  r.restore = std::make_shared<vt::BackupAndRestore>(
      r.backup, vt::BackupAndRestoreOptions{}.with_save_every_epoch(r.backup != r.manager));
  r.stopping = std::make_shared<vt::EarlyStopping>(
      vt::EarlyStoppingCallbackOptions{}
          .with_stopping(config.early_stopping)
          .with_restore_best_weights(config.restore_best_weights));
  r.checkpoints = std::make_shared<vt::ModelCheckpoint>(r.manager);
  r.ema = make_ema(config);
  if (config.max_steps > 0) r.length_flag = "--max-steps";
  return r;
}

void add_main_callbacks(vt::Trainer& trainer, const MainRun& r, const RunConfig& config,
                        const std::shared_ptr<vt::ProcessGroup>& group, const TrainArgs& a,
                        const TestEvaluator& test) {
  const fs::path run_dir = a.run_dir;
  // First: the history every later callback reads or saves has the test columns.
  if (config.eval_test_every_epoch) trainer.add_callback(make_test_curve(test));
  trainer.add_callback(r.restore);
  trainer.add_callback(std::make_shared<ResumeWarnings>());
  if (r.ema) trainer.add_callback(r.ema);
  trainer.add_callback(r.stopping);
  if (auto reduce_lr = make_reduce_lr(config)) trainer.add_callback(reduce_lr);
  if (auto schedule = make_lr_schedule(config)) trainer.add_callback(schedule);
  if (group)
    trainer.add_callback(make_sharded_checkpoint(config, group, r.manager, a));
  else
    trainer.add_callback(r.checkpoints);
  trainer.add_callback(std::make_shared<vt::CSVLogger>(
      vt::CSVLoggerOptions{}.with_filename(run_dir / "metrics.csv")));
  trainer.add_callback(std::make_shared<vt::LearningCurvePlot>(
      vt::LearningCurvePlotOptions{}.with_run_dir(run_dir)));
  std::optional<bool> live;  // "auto": a live bar when stdout is a terminal
  if (a.progress == "bar") live = true;
  if (a.progress == "lines") live = false;
  trainer.add_callback(
      std::make_shared<vt::ProgressBar>(vt::ProgressBarOptions{}.with_live(live).with_epoch_note(
          [checkpoints = r.checkpoints, stopping = r.stopping, lm = is_lm(config)](
              const vt::TrainContext& ctx, int) {
            const std::string note = epoch_note(*checkpoints, *stopping);
            if (!lm || ctx.history.empty() || !ctx.history.back().logs.count("val_loss"))
              return note;
            // Perplexity is exp of the mean loss, not a mean of per-batch perplexities.
            const double ppl = std::exp(ctx.history.back().logs.at("val_loss"));
            return fmt::format("val_perplexity {:.3f}{}{}", ppl, note.empty() ? "" : "  ", note);
          })));
  if ((a.debug_kill_after_batches > 0 || a.debug_kill_after_epochs > 0) &&
      debug_kill_applies(a.launch, group.get()))
    trainer.add_callback(std::make_shared<DebugKill>(a.debug_kill_after_batches,
                                                     a.debug_kill_after_epochs, r.manager));
}

void announce_start(const fs::path& run_dir, bool resuming, const MainRun& r) {
  if (resuming && !r.manager->latest() && !(r.backup != r.manager && r.backup->latest()))
    fmt::print("{} has no intact checkpoint yet: starting from the beginning\n", run_dir.string());
  if (auto latest = r.backup->latest())
    fmt::print("resuming {} from checkpoint {} ({} {} {}, step {})\n", run_dir.string(),
               latest->name,
               latest->at == SavePoint::EpochEnd ? "saved at the end of" : "saved during", r.period,
               latest->epoch, latest->step);
}

// Says where the interrupted run stands and how to resume it; returns 128 + the signal.
int report_interrupt(const fs::path& run_dir, const vt::FitResult& fit, const MainRun& r,
                     std::int64_t batches_per_epoch, const RunConfig& config) {
  const int sig = vt::received_stop_signal();
  std::string where = "no checkpoint could be written";
  if (const auto& c = r.restore->interrupt_checkpoint()) where = "checkpoint " + c->path.string();
  // Interrupts are polled before a batch: the epoch under way is the one after the last one
  // finished, and the batches it ran are the steps since that one ended.
  const std::int64_t epoch_start_step = fit.history.empty() ? 0 : fit.history.back().step;
  const std::int64_t steps = (batches_per_epoch + config.accumulate - 1) / config.accumulate;
  if (config.val_every_n_steps > 0) {
    const std::int64_t n = config.val_every_n_steps;
    const std::int64_t max_steps = config.max_steps > 0 ? config.max_steps : config.epochs * steps;
    fmt::print("{} in {} after {} of {} steps ({} optimizer steps in all); {} written\n",
               fit.stop_reason,
               epoch_label(fit.epochs_run, static_cast<long>((max_steps + n - 1) / n),
                           "validation period"),
               fit.global_step - epoch_start_step, n, fit.global_step, where);
  } else {
    fmt::print("{} in {} after {} of {} {} ({} optimizer steps in all); {} written\n",
               fit.stop_reason, epoch_label(fit.epochs_run, config.epochs),
               fit.global_step - epoch_start_step, steps,
               config.accumulate > 1 ? "steps" : "batches", fit.global_step, where);
  }
  fmt::print("resume with: vigil train --run-dir {}\n", run_dir.string());
  std::fflush(stdout);
  return 128 + sig;
}

void print_stop_lines(const fs::path& run_dir, const vt::FitResult& fit, const MainRun& r,
                      bool already_finished) {
  const auto& s = r.stopping->stopper();
  if (already_finished)
    fmt::print(
        "the run in {} had already finished; nothing left to train (add --fresh to start "
        "over{})\n",
        run_dir.string(),
        fit.stopped_early ? "" : fmt::format(", or a larger {} to go on", r.length_flag));
  fmt::print("stopped: {}\n", fit.stop_reason);
  if (!fit.history.empty())
    fmt::print("{}s run: {} ({} {} to {}, 0-based)\n", r.period, fit.epochs_run, r.period,
               fit.history.front().epoch, fit.history.back().epoch);
  if (s.best_epoch())
    fmt::print("best {}: {} ({} {:.4f})\n", r.period, *s.best_epoch(), s.options().monitor,
               *s.best_value());
}

void print_run_files(const fs::path& run_dir, const MainRun& r) {
  fmt::print("model: {}\n", (run_dir / "model.safetensors").string());
  if (fs::exists(CheckpointManager::best_model_path(run_dir)))
    fmt::print("best model: {}\n", CheckpointManager::best_model_path(run_dir).string());
  std::string names;
  for (const auto& c : r.manager->checkpoints()) names += (names.empty() ? "" : ", ") + c.name;
  fmt::print("checkpoints: {} ({})\n", CheckpointManager::checkpoints_dir(run_dir).string(),
             names.empty() ? "none" : names);
  // No epoch ended (--epochs 0, or interrupted in the first one): no metrics.csv to point at.
  if (fs::exists(run_dir / "metrics.csv"))
    fmt::print("metrics: {}\n", (run_dir / "metrics.csv").string());
  else
    fmt::print("metrics: none yet (no {} has ended)\n", r.period);
}

nlohmann::json result_json(const vt::FitResult& fit, const MainRun& r, double fit_seconds) {
  const auto& stopper = r.stopping->stopper();
  return {
      {"stop_reason", fit.stop_reason},
      {"stopped_early", fit.stopped_early},
      {"epochs_run", fit.epochs_run},
      {"global_step", fit.global_step},
      {"best_epoch",
       stopper.best_epoch() ? nlohmann::json(*stopper.best_epoch()) : nlohmann::json(nullptr)},
      {"best_value",
       stopper.best_value() ? number_to_json(*stopper.best_value()) : nlohmann::json(nullptr)},
      {"restored_best_weights", r.stopping->restored()},
      {"fit_seconds", fit_seconds},
  };
}

namespace {

// Saves the final model, tests it, writes result.json and prints the report.
void finish_run(const fs::path& run_dir, ::torch::nn::Sequential& net, const RunData& data,
                const vt::FitResult& fit, const MainRun& r, double fit_seconds) {
  const Metadata meta = {{"vigil.model", data.spec.to_json().dump()}};
  if (r.ema) {
    // The final average; with --ema-validate it is the final model unless the best was restored.
    save_safetensors(run_dir / "ema.safetensors", r.ema->averaged().views(), meta);
    if (r.ema->options().validate && !r.stopping->restored()) r.ema->copy_to(*net);
  }
  // The final model (the best weights when they were restored): what eval and Python load.
  vt::save_module_state(run_dir / "model.safetensors", *net, meta);
  const Logs test = vt::evaluate(vt::Model::of(net), data.test);
  // Resumed from a checkpoint and not one step taken: the run had finished before.
  const bool already_finished =
      r.restore->resumed_from() && r.restore->resumed_from()->step == fit.global_step;
  nlohmann::json result = result_json(fit, r, fit_seconds);
  result["test"] = vt::logs_to_json(test);
  result["test_examples"] = data.test.size();
  atomic_write_file(run_dir / "result.json", result.dump(2) + "\n");
  print_stop_lines(run_dir, fit, r, already_finished);
  const char* weights = r.stopping->restored() ? "restored best weights" : "final weights";
  if (test.count("accuracy"))
    fmt::print("test accuracy ({}): {:.4f} (loss {:.4f}) on {} examples\n", weights,
               test.at("accuracy"), test.at("loss"), data.test.size());
  else
    fmt::print("test loss ({}): {:.4f} on {} examples\n", weights, test.at("loss"),
               data.test.size());
  print_run_files(run_dir, r);
  if (r.ema) fmt::print("averaged weights: {}\n", (run_dir / "ema.safetensors").string());
}

// Rank 0, or the only process: owns the run directory, trains, reports.
int run_main_rank(const TrainArgs& a, const RunConfig& config,
                  const std::shared_ptr<vt::ProcessGroup>& group, ::torch::nn::Sequential& net,
                  ::torch::optim::Optimizer& optimizer, const RunData& data,
                  const CheckpointManagerOptions& options, bool resuming, RunLock lock) {
  const fs::path run_dir = a.run_dir;
  const MainRun r = open_run(run_dir, config, options, std::move(lock));
  vt::Trainer trainer(trainer_options(config).with_distributed(group).with_model_metadata(
      {{"vigil.model", data.spec.to_json().dump()}}));
  // Data-parallel ranks hold the same weights, so rank 0 alone tests them, on the whole test set
  // (the others wait for it at the next step).
  add_main_callbacks(trainer, r, config, group, a,
                     [&net, &data] { return vt::evaluate(vt::Model::of(net), data.test); });
  announce_start(run_dir, resuming, r);

  vt::FitResult fit;
  const auto fit_started = std::chrono::steady_clock::now();
  {
    vt::StopSignals signals;
    fit = trainer.fit(vt::Model::of(net), optimizer, data.train, data.validation);
  }
  // The training loop with every callback (saves included), without start-up and data loading:
  // what the benchmark suite compares with a bare libtorch loop.
  const double fit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_started).count();
  if (fit.interrupted) {
    const std::int64_t batches = (data.train.size() + config.batch_size - 1) / config.batch_size;
    return report_interrupt(run_dir, fit, r, batches, config);
  }
  finish_run(run_dir, net, data, fit, r, fit_seconds);
  return 0;
}

}  // namespace

int run_train(TrainArgs& a) {
  if (a.config.model == "gpt" && a.launch.nproc > 1)
    throw OptionError(
        "--model gpt trains in one process: drop --nproc (data-parallel training "
        "of the language model is not supported yet)");
  // Data-parallel: this process either starts the ranks and waits for them, or is one of them.
  if (auto code = launch_ranks(a.launch)) return *code;
  const auto group = join_process_group(a.launch);    // null when training alone
  const bool main_rank = !group || group->is_main();  // the one that owns the run directory
  const fs::path run_dir = a.run_dir;
  const RunConfig& given = a.config;
  // Held from here on, so that no other process gets into the run before the manager opens it.
  RunLock lock = main_rank ? prepare_run_dir(run_dir, a.fresh) : RunLock{};
  const bool resuming = main_rank && fs::exists(run_dir / "run.json");
  RunConfig config = resolve_config(a, given, group.get(), resuming);
  if (main_rank) {
    assign_run_id(config, run_dir, resuming);
    apply_reference_runs(config, run_dir, resuming);
  }
  if (is_lm(config)) {
    if (group)
      throw OptionError(
          "--model gpt trains in one process: drop --nproc (data-parallel training "
          "of the language model is not supported yet)");
    return run_lm_train(a, config, resuming, std::move(lock));
  }

  RunData data = load_data(config);
  vt::seed_torch(config.seed);
  auto net = vt::build_model(data.spec);
  // Rank 0's weights reach every rank when training starts: only it reads the file.
  if (main_rank) apply_init_from(config, *net, run_dir, resuming);
  apply_freeze(config, *net);
  auto optimizer = build_optimizer(config, vt::unique_parameters(*net));
  const auto options = checkpoint_options(config);
  // Only rank 0 owns the run directory; the other ranks take its restore point and decisions.
  if (!main_rank) return run_worker_rank(config, group, net, *optimizer, data, a);
  return run_main_rank(a, config, group, net, *optimizer, data, options, resuming, std::move(lock));
}

}  // namespace vigil::cli
