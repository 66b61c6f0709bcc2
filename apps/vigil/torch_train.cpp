// `vigil train`: trains a model on Fashion-MNIST (or a CSV table) with early
// stopping, checkpoints with rotation, automatic resume from --run-dir, and
// clean SIGINT/SIGTERM handling.
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "torch_common.hpp"
#include "torch_launch.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/io.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/learning_curve_plot.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/progress_bar.hpp"
#include "vigil/torch/reduce_lr_on_plateau.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"
#include "vigil/torch/trainer.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;
namespace vt = vigil::torch;

// The one global of the program: written by the signal handler, polled between
// batches.
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  // A second signal means "now": _exit is async-signal-safe, and every
  // checkpoint write is atomic (temporary name + rename), so leaving mid-write
  // corrupts nothing.
  if (g_signal != 0) _exit(128 + sig);
  g_signal = sig;
}

// Installs the handler for SIGINT and SIGTERM for the lifetime of the object.
class StopSignals {
 public:
  StopSignals() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

std::string signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : fmt::format("signal {}", sig);
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

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
std::string epoch_label(long epoch, long total) {
  return fmt::format("epoch {} ({} of {})", epoch, epoch + 1, total);
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

struct TrainArgs {
  RunConfig config;
  std::string run_dir = "runs/train";
  bool fresh = false;
  std::string hidden = "256,256";
  std::string channels = "16,32";
  std::string rule = "patience";
  std::string mode = "auto";
  // Optional numbers: set only when their flag is given.
  double baseline = 0, stopping_threshold = 0, divergence_threshold = 0, time_budget = 0;
  CLI::Option* baseline_opt = nullptr;
  CLI::Option* stopping_threshold_opt = nullptr;
  CLI::Option* divergence_threshold_opt = nullptr;
  CLI::Option* time_budget_opt = nullptr;
  bool check_finite = true;
  std::string progress = "auto";
  LaunchArgs launch;  // --nproc & co. (torch_launch.cpp)
  std::int64_t debug_kill_after_batches = 0;
  int debug_kill_after_epochs = 0;
  // Flag -> run.json key, to know which options the user gave explicitly.
  std::vector<std::pair<CLI::Option*, std::string>> keyed;
};

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot read {}", path.string()));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{} is not valid JSON ({})", path.string(), e.what()));
  }
}

RunConfig config_from_args(TrainArgs& a) {
  RunConfig c = a.config;
  c.hidden = parse_sizes(a.hidden, "--hidden");
  c.channels = parse_sizes(a.channels, "--channels");
  auto& es = c.early_stopping;
  es.with_rule(a.rule);
  es.with_mode(a.mode);
  auto opt = [](CLI::Option* o, double v) {
    return o != nullptr && o->count() > 0 ? std::optional<double>(v) : std::nullopt;
  };
  es.baseline = opt(a.baseline_opt, a.baseline);
  es.stopping_threshold = opt(a.stopping_threshold_opt, a.stopping_threshold);
  es.divergence_threshold = opt(a.divergence_threshold_opt, a.divergence_threshold);
  es.time_budget_seconds = opt(a.time_budget_opt, a.time_budget);
  es.check_finite = a.check_finite;
  return c;
}

void print_report(const fs::path& run_dir, const vt::FitResult& fit, const RunData& data,
                  const Logs& test, const vt::EarlyStopping& stopping,
                  const std::shared_ptr<CheckpointManager>& manager, bool already_finished) {
  const auto& s = stopping.stopper();
  if (already_finished)
    fmt::print(
        "the run in {} had already finished; nothing left to train (add "
        "--fresh to start "
        "over{})\n",
        run_dir.string(), fit.stopped_early ? "" : ", or a larger --epochs to go on");
  fmt::print("stopped: {}\n", fit.stop_reason);
  if (!fit.history.empty())
    fmt::print("epochs run: {} (epoch {} to {}, 0-based)\n", fit.epochs_run,
               fit.history.front().epoch, fit.history.back().epoch);
  if (s.best_epoch())
    fmt::print("best epoch: {} ({} {:.4f})\n", *s.best_epoch(), s.options().monitor,
               *s.best_value());
  const char* weights = stopping.restored() ? "restored best weights" : "final weights";
  if (test.count("accuracy"))
    fmt::print("test accuracy ({}): {:.4f} (loss {:.4f}) on {} examples\n", weights,
               test.at("accuracy"), test.at("loss"), data.test.size());
  else
    fmt::print("test loss ({}): {:.4f} on {} examples\n", weights, test.at("loss"),
               data.test.size());
  fmt::print("model: {}\n", (run_dir / "model.safetensors").string());
  if (fs::exists(CheckpointManager::best_model_path(run_dir)))
    fmt::print("best model: {}\n", CheckpointManager::best_model_path(run_dir).string());
  std::string names;
  for (const auto& c : manager->checkpoints()) names += (names.empty() ? "" : ", ") + c.name;
  fmt::print("checkpoints: {} ({})\n", CheckpointManager::checkpoints_dir(run_dir).string(),
             names.empty() ? "none" : names);
  fmt::print("metrics: {}\n", (run_dir / "metrics.csv").string());
}

vt::TrainerOptions trainer_options(const RunConfig& config) {
  return vt::TrainerOptions{}
      .with_epochs(config.epochs)
      .with_batch_size(config.batch_size)
      .with_seed(config.seed)
      .with_threads(config.threads)
      .with_extra({{"run", config.to_json()}})
      .with_interrupt([]() -> std::optional<std::string> {
        if (g_signal == 0) return std::nullopt;
        return "interrupted by " + signal_name(g_signal);
      });
}

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
  trainer.add_callback(
      std::make_shared<vt::EarlyStopping>(config.early_stopping, config.restore_best_weights));
  if (auto reduce_lr = make_reduce_lr(config)) trainer.add_callback(reduce_lr);
  trainer.add_callback(make_sharded_checkpoint(config, group, nullptr, a));
  if ((a.debug_kill_after_batches > 0 || a.debug_kill_after_epochs > 0) &&
      debug_kill_applies(a.launch, group.get()))
    trainer.add_callback(std::make_shared<DebugKill>(a.debug_kill_after_batches,
                                                     a.debug_kill_after_epochs, nullptr));
  vt::FitResult fit;
  {
    StopSignals signals;
    fit = trainer.fit(vt::Model::of(net), optimizer, data.train, data.validation);
  }
  if (fit.interrupted) return 128 + (g_signal != 0 ? g_signal : SIGINT);
  return 0;
}

int run_train(TrainArgs& a) {
  // Data-parallel: this process either starts the ranks and waits for them, or is one of them.
  if (auto code = launch_ranks(a.launch)) return *code;
  const auto group = join_process_group(a.launch);    // null when training alone
  const bool main_rank = !group || group->is_main();  // the one that owns the run directory
  const fs::path run_dir = a.run_dir;
  RunConfig given = config_from_args(a);
  std::set<std::string> explicit_keys;
  for (const auto& [opt, key] : a.keyed)
    if (opt->count() > 0) explicit_keys.insert(key);

  const fs::path run_json = run_dir / "run.json";
  if (a.fresh && main_rank && fs::exists(run_dir)) {
    fs::path aside = run_dir.string() + ".old-" + timestamp();
    for (int i = 1; fs::exists(aside); ++i)
      aside = run_dir.string() + ".old-" + timestamp() + "-" + std::to_string(i);
    fs::rename(run_dir, aside);
    fmt::print("moved the previous run aside to {}\n", aside.string());
  }
  const bool resuming = main_rank && fs::exists(run_json);
  RunConfig config = given;
  if (resuming) {
    const auto merged =
        merge_for_resume(read_json_file(run_json), given.to_json(), explicit_keys, run_dir);
    config = RunConfig::from_json(merged);
  }
  if (group)  // every rank runs with rank 0's options (it alone reads run.json)
    config = RunConfig::from_json(
        nlohmann::json::parse(group->broadcast_string(config.to_json().dump())));
  config.early_stopping.validate();

  RunData data = load_run_data(config, /*need_train=*/true);
  fmt::print("data: {}: {} train, {} validation, {} test examples\n", data.description,
             data.train.size(), data.validation.size(), data.test.size());
  if (data.validation.size() == 0 && config.early_stopping.monitor.rfind("val_", 0) == 0)
    throw OptionError(fmt::format("--monitor {} needs validation data: set --validation-split > 0",
                                  config.early_stopping.monitor));

  vt::seed_torch(config.seed);
  auto net = vt::build_model(data.spec);
  nlohmann::json opt_options = {{"lr", config.lr}};
  const auto kind = vt::parse_optimizer(config.optimizer);
  if (config.weight_decay != 0) opt_options["weight_decay"] = config.weight_decay;
  if (config.momentum != 0) {
    if (kind != vt::OptimizerKind::SGD && kind != vt::OptimizerKind::RMSprop)
      throw OptionError(
          fmt::format("--momentum applies to sgd and rmsprop, not {}", config.optimizer));
    opt_options["momentum"] = config.momentum;
  }
  auto optimizer = vt::make_optimizer(kind, net->parameters(), opt_options);

  auto ckpt_options = CheckpointManagerOptions{}
                          .with_monitor(config.early_stopping.monitor)
                          .with_mode(std::string(mode_name(config.early_stopping.mode)))
                          .with_save_every_n_epochs(config.save_every_n_epochs)
                          .with_save_every_n_steps(config.save_every_n_steps)
                          .with_save_best_only(config.save_best_only)
                          .with_filename(config.filename)
                          .with_async(config.async_save);
  if (config.save_top_k != 0) ckpt_options.with_save_top_k(config.save_top_k);
  if (config.keep_last != 0) ckpt_options.with_keep_last(config.keep_last);
  ckpt_options.validate();
  // Only rank 0 owns the run directory; the other ranks take its restore point and decisions.
  if (!main_rank) return run_worker_rank(config, group, net, *optimizer, data, a);
  auto manager = std::make_shared<CheckpointManager>(run_dir, ckpt_options);
  for (const auto& [name, problem] : manager->open_report().skipped)
    fmt::print(stderr, "vigil: warning: skipping damaged checkpoint {}: {}\n", name, problem);
  // With save_best_only the shared manager would skip the interrupt checkpoint
  // (it has no validation metric), so resume state then lives in its own
  // folder, as Keras's backup_dir.
  std::shared_ptr<CheckpointManager> backup = manager;
  if (config.save_best_only)
    backup = std::make_shared<CheckpointManager>(
        run_dir / "backup",
        CheckpointManagerOptions{}.with_monitor("").with_keep_last(1).with_filename(
            "epoch-{epoch:04d}-step-{step}"));
  atomic_write_file(run_json, config.to_json().dump(2) + "\n");

  vt::Trainer trainer(trainer_options(config).with_distributed(group));
  auto restore = std::make_shared<vt::BackupAndRestore>(
      backup, vt::BackupAndRestoreOptions{}.with_save_every_epoch(backup != manager));
  auto stopping =
      std::make_shared<vt::EarlyStopping>(config.early_stopping, config.restore_best_weights);
  auto checkpoints = std::make_shared<vt::ModelCheckpoint>(manager);
  trainer.add_callback(restore);
  trainer.add_callback(stopping);
  if (auto reduce_lr = make_reduce_lr(config)) trainer.add_callback(reduce_lr);
  if (group)
    trainer.add_callback(make_sharded_checkpoint(config, group, manager, a));
  else
    trainer.add_callback(checkpoints);
  trainer.add_callback(std::make_shared<vt::CSVLogger>(
      vt::CSVLoggerOptions{}.with_filename(run_dir / "metrics.csv")));
  trainer.add_callback(std::make_shared<vt::LearningCurvePlot>(
      vt::LearningCurvePlotOptions{}.with_run_dir(run_dir)));
  std::optional<bool> live;  // "auto": a live bar when stdout is a terminal
  if (a.progress == "bar") live = true;
  if (a.progress == "lines") live = false;
  trainer.add_callback(
      std::make_shared<vt::ProgressBar>(vt::ProgressBarOptions{}.with_live(live).with_epoch_note(
          [checkpoints, stopping](const vt::TrainContext&, int) {
            return epoch_note(*checkpoints, *stopping);
          })));
  if ((a.debug_kill_after_batches > 0 || a.debug_kill_after_epochs > 0) &&
      debug_kill_applies(a.launch, group.get()))
    trainer.add_callback(std::make_shared<DebugKill>(a.debug_kill_after_batches,
                                                     a.debug_kill_after_epochs, manager));

  if (resuming && !manager->latest() && !(backup != manager && backup->latest()))
    fmt::print("{} has no intact checkpoint yet: starting from the beginning\n", run_dir.string());
  if (auto latest = backup->latest())
    fmt::print("resuming {} from checkpoint {} ({} epoch {}, step {})\n", run_dir.string(),
               latest->name,
               latest->at == SavePoint::EpochEnd ? "saved at the end of" : "saved during",
               latest->epoch, latest->step);

  vt::FitResult fit;
  const auto fit_started = std::chrono::steady_clock::now();
  {
    StopSignals signals;
    fit = trainer.fit(vt::Model::of(net), *optimizer, data.train, data.validation);
  }
  // The training loop with every callback (saves included), without start-up and data loading:
  // what the benchmark suite compares with a bare libtorch loop.
  const double fit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_started).count();
  if (fit.interrupted) {
    const int sig = g_signal;
    std::string where = "no checkpoint could be written";
    if (const auto& c = restore->interrupt_checkpoint()) where = "checkpoint " + c->path.string();
    // Interrupts are polled before a batch: the epoch under way is the one after the last one
    // finished, and the batches it ran are the steps since that one ended.
    const std::int64_t epoch_start_step = fit.history.empty() ? 0 : fit.history.back().step;
    const std::int64_t batches = (data.train.size() + config.batch_size - 1) / config.batch_size;
    fmt::print("{} in {} after {} of {} batches ({} optimizer steps in all); {} written\n",
               fit.stop_reason, epoch_label(fit.epochs_run, config.epochs),
               fit.global_step - epoch_start_step, batches, fit.global_step, where);
    fmt::print("resume with: vigil train --run-dir {}\n", run_dir.string());
    std::fflush(stdout);
    return 128 + sig;
  }

  const auto model = vt::Model::of(net);
  // The final model (the best weights when they were restored): what eval and
  // Python load.
  vt::save_module_state(run_dir / "model.safetensors", *net,
                        {{"vigil.model", data.spec.to_json().dump()}});
  const Logs test = vt::evaluate(model, data.test);
  // Resumed from a checkpoint and not one step taken: the run had finished
  // before.
  const bool already_finished =
      restore->resumed_from() && restore->resumed_from()->step == fit.global_step;
  nlohmann::json result = {
      {"stop_reason", fit.stop_reason},
      {"stopped_early", fit.stopped_early},
      {"epochs_run", fit.epochs_run},
      {"global_step", fit.global_step},
      {"best_epoch", stopping->stopper().best_epoch()
                         ? nlohmann::json(*stopping->stopper().best_epoch())
                         : nlohmann::json(nullptr)},
      {"best_value", stopping->stopper().best_value()
                         ? number_to_json(*stopping->stopper().best_value())
                         : nlohmann::json(nullptr)},
      {"restored_best_weights", stopping->restored()},
      {"test", vt::logs_to_json(test)},
      {"test_examples", data.test.size()},
      {"fit_seconds", fit_seconds},
  };
  atomic_write_file(run_dir / "result.json", result.dump(2) + "\n");
  print_report(run_dir, fit, data, test, *stopping, manager, already_finished);
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", kTrainSummary);
  // A flag given twice takes its last value, so scripts can append overrides.
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  auto& c = args->config;
  auto& es = c.early_stopping;
  auto key = [&](CLI::Option* o, std::string k) {
    args->keyed.emplace_back(o, std::move(k));
    return o;
  };
  const char* kData = "Data";
  const char* kModel = "Model";
  const char* kOpt = "Optimisation";
  const char* kStop = "Early stopping";
  const char* kCkpt = "Checkpoints";
  const char* kRun = "Run";

  key(cmd->add_option("--data", c.data,
                      "Folder of the Fashion-MNIST IDX files (.gz or raw), or "
                      "csv:FILE for a CSV "
                      "table")
          ->capture_default_str()
          ->group(kData),
      "data");
  key(cmd->add_option("--target", c.target, "CSV: the column to predict")->group(kData), "target");
  key(cmd->add_option("--task", c.task, "CSV: auto, classification or regression")
          ->capture_default_str()
          ->group(kData),
      "task");
  key(cmd->add_option("--validation-split", c.validation_split,
                      "Fraction of the training set held out for validation (by --seed)")
          ->capture_default_str()
          ->check(CLI::Range(0.0, 0.99))
          ->group(kData),
      "validation_split");
  key(cmd->add_option("--test-split", c.test_split,
                      "CSV: fraction of the rows held out as test set")
          ->capture_default_str()
          ->check(CLI::Range(0.01, 0.99))
          ->group(kData),
      "test_split");
  key(cmd->add_option("--limit-train", c.limit_train,
                      "Use only the first N training examples (0 = all)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber)
          ->group(kData),
      "limit_train");
  key(cmd->add_option("--limit-test", c.limit_test, "Use only the first N test examples (0 = all)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber)
          ->group(kData),
      "limit_test");

  key(cmd->add_option("--model", c.model, "mlp or cnn")->capture_default_str()->group(kModel),
      "model");
  key(cmd->add_option("--hidden", args->hidden, "Hidden layer sizes, e.g. 256,256")
          ->capture_default_str()
          ->group(kModel),
      "hidden");
  key(cmd->add_option("--channels", args->channels, "cnn: channels of each conv block")
          ->capture_default_str()
          ->group(kModel),
      "channels");
  key(cmd->add_option("--dropout", c.dropout, "Dropout after each hidden layer (0 = none)")
          ->capture_default_str()
          ->group(kModel),
      "dropout");
  key(cmd->add_flag("--batch-norm", c.batch_norm, "cnn: BatchNorm2d after each convolution")
          ->group(kModel),
      "batch_norm");

  key(cmd->add_option("--epochs", c.epochs, "Epochs to train at most")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber)
          ->group(kOpt),
      "epochs");
  key(cmd->add_option("--batch-size", c.batch_size, "Examples per batch")
          ->capture_default_str()
          ->check(CLI::PositiveNumber)
          ->group(kOpt),
      "batch_size");
  key(cmd->add_option("--lr", c.lr, "Learning rate")->capture_default_str()->group(kOpt), "lr");
  key(cmd->add_option("--optimizer", c.optimizer, "sgd, adam, adamw, rmsprop or adagrad")
          ->capture_default_str()
          ->group(kOpt),
      "optimizer");
  key(cmd->add_option("--momentum", c.momentum, "sgd/rmsprop momentum")
          ->capture_default_str()
          ->group(kOpt),
      "momentum");
  key(cmd->add_option("--weight-decay", c.weight_decay, "Weight decay")
          ->capture_default_str()
          ->group(kOpt),
      "weight_decay");
  key(cmd->add_option("--seed", c.seed, "Seeds weights, validation split and data order")
          ->capture_default_str()
          ->group(kOpt),
      "seed");
  key(cmd->add_option("--threads", c.threads,
                      "libtorch threads (0 = libtorch's default; 1 = bit-reproducible)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber)
          ->group(kOpt),
      "threads");
  key(cmd->add_option("--reduce-lr-patience", c.reduce_lr_patience,
                      "ReduceLROnPlateau: epochs without improvement before "
                      "reducing the lr "
                      "(-1 = off)")
          ->capture_default_str()
          ->group(kOpt),
      "reduce_lr_patience");
  key(cmd->add_option("--reduce-lr-factor", c.reduce_lr_factor, "ReduceLROnPlateau: lr *= factor")
          ->capture_default_str()
          ->group(kOpt),
      "reduce_lr_factor");
  key(cmd->add_option("--min-lr", c.min_lr, "ReduceLROnPlateau: lower bound of the lr")
          ->capture_default_str()
          ->group(kOpt),
      "min_lr");
  key(cmd->add_option("--cooldown", c.cooldown,
                      "ReduceLROnPlateau: epochs to wait after a reduction")
          ->capture_default_str()
          ->group(kOpt),
      "cooldown");

  key(cmd->add_option("--monitor", es.monitor, "Metric watched by early stopping and checkpoints")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.monitor");
  key(cmd->add_option("--mode", args->mode, "min, max or auto")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.mode");
  key(cmd->add_option("--patience", es.patience, "Epochs without improvement before stopping")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.patience");
  key(cmd->add_option("--min-delta", es.min_delta, "Smallest change that counts as improvement")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.min_delta");
  args->baseline_opt =
      key(cmd->add_option("--baseline", args->baseline, "Value the metric must beat")->group(kStop),
          "early_stopping.baseline");
  key(cmd->add_option("--start-from-epoch", es.start_from_epoch, "Epochs of warm-up not monitored")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.start_from_epoch");
  args->stopping_threshold_opt =
      key(cmd->add_option("--stopping-threshold", args->stopping_threshold,
                          "Stop once the metric is better than this")
              ->group(kStop),
          "early_stopping.stopping_threshold");
  args->divergence_threshold_opt =
      key(cmd->add_option("--divergence-threshold", args->divergence_threshold,
                          "Stop once the metric is worse than this")
              ->group(kStop),
          "early_stopping.divergence_threshold");
  key(cmd->add_flag("--check-finite,!--no-check-finite", args->check_finite,
                    "Stop when the metric becomes NaN or infinite (default on)")
          ->group(kStop),
      "early_stopping.check_finite");
  key(cmd->add_option("--rule", args->rule,
                      "patience|gl:ALPHA|pq:ALPHA[:STRIP]|up:S[:STRIP]|robust:"
                      "STEPS[:PROB], "
                      "comma-separated")
          ->capture_default_str()
          ->group(kStop),
      "early_stopping.rule");
  args->time_budget_opt = key(cmd->add_option("--time-budget", args->time_budget,
                                              "Stop after the epoch that ends past this many "
                                              "seconds of training")
                                  ->group(kStop),
                              "early_stopping.time_budget_seconds");
  key(cmd->add_flag("--restore-best-weights,!--no-restore-best-weights", c.restore_best_weights,
                    "Load the best epoch's weights when training ends (default on)")
          ->group(kStop),
      "restore_best_weights");

  key(cmd->add_option("--save-top-k", c.save_top_k,
                      "Keep the k best checkpoints by --monitor (-1 = all, 0 = "
                      "no such rule)")
          ->capture_default_str()
          ->group(kCkpt),
      "save_top_k");
  key(cmd->add_option("--keep-last", c.keep_last,
                      "Keep the n newest checkpoints (-1 = all, 0 = no such rule)")
          ->capture_default_str()
          ->group(kCkpt),
      "keep_last");
  key(cmd->add_option("--save-every-n-epochs", c.save_every_n_epochs,
                      "Checkpoint every n epochs (0 = never at epoch ends)")
          ->capture_default_str()
          ->group(kCkpt),
      "save_every_n_epochs");
  key(cmd->add_option("--save-every-n-steps", c.save_every_n_steps,
                      "Also checkpoint every n optimizer steps (0 = off)")
          ->capture_default_str()
          ->group(kCkpt),
      "save_every_n_steps");
  key(cmd->add_flag("--save-best-only", c.save_best_only, "Checkpoint only when --monitor improves")
          ->group(kCkpt),
      "save_best_only");
  key(cmd->add_flag("--async-save", c.async_save, "Write checkpoints in the background")
          ->group(kCkpt),
      "async_save");
  key(cmd->add_option("--filename", c.filename,
                      "Checkpoint folder name template, e.g. "
                      "epoch-{epoch:04d}-{val_loss:.4f}")
          ->capture_default_str()
          ->group(kCkpt),
      "filename");

  cmd->add_option("--run-dir", args->run_dir,
                  "Run directory: metrics.csv, checkpoints/, best/, run.json; "
                  "an existing one is "
                  "resumed")
      ->capture_default_str()
      ->group(kRun);
  cmd->add_flag("--fresh", args->fresh,
                "Start over: move an existing --run-dir aside to "
                "DIR.old-<timestamp> first")
      ->group(kRun);
  cmd->add_option("--progress", args->progress,
                  "auto (a live bar on a terminal, else one line per epoch), bar or lines")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bar", "lines"}))
      ->group(kRun);
  add_launch_options(cmd, args->launch);  // --nproc & co. (torch_launch.cpp)
  // Hidden: used by the resume tests to kill the process for real at a chosen
  // point.
  cmd->add_option("--debug-kill-after-batches", args->debug_kill_after_batches)->group("");
  cmd->add_option("--debug-kill-after-epochs", args->debug_kill_after_epochs)->group("");

  cmd->callback([args, &ctx]() { ctx.exit_code = run_train(*args); });
}

}  // namespace vigil::cli
