// Trainer + callbacks in process, on a tiny MLP and synthetic data with one thread: the exact
// hook order, stop requests from on_batch_end and on_epoch_end, the logs, CSVLogger rows,
// ReduceLROnPlateau's Keras semantics, EarlyStopping's restore_best_weights at every ending, the
// progress display, the learning-curve plot, and an exact resume from the middle of an epoch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "trainer_test_helpers.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/io.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/run_plot.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/learning_curve_plot.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/progress_bar.hpp"
#include "vigil/torch/reduce_lr_on_plateau.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
using namespace vigil;
using namespace vigil::torch;
using namespace vigil::test;

namespace {

// Three classes separated by a fixed linear map: learnable by a tiny MLP in a few epochs.
Dataset make_data(std::int64_t n, std::uint64_t seed) {
  ::torch::manual_seed(seed);
  auto x = ::torch::randn({n, 4});
  auto w = ::torch::tensor(
      {{1.0f, -1.0f, 0.5f}, {0.5f, 1.0f, -1.0f}, {-1.0f, 0.5f, 1.0f}, {0.2f, 0.2f, 0.2f}});
  return Dataset{x, x.matmul(w).argmax(1)};
}

Dataset rows(const Dataset& d, std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> idx;
  for (auto i = begin; i < end; ++i) idx.push_back(i);
  return d.subset(idx);
}

TrainerOptions one_thread() {
  return TrainerOptions{}.with_threads(1).with_seed(3);
}

// Records every hook as a line, batch logs included, and can ask for a stop at a chosen place.
struct Recorder : Callback {
  std::vector<std::string> events;
  std::vector<Logs> batch_logs;
  std::vector<std::int64_t> batch_sizes;  // from the step count and the data size
  std::optional<std::pair<int, std::int64_t>> stop_after_batch;  // (epoch, batch)
  std::optional<int> stop_after_epoch;

  std::string name() const override { return "recorder"; }
  void on_train_begin(TrainContext&, const Logs&) override { events.push_back("train_begin"); }
  void on_train_end(TrainContext&, const Logs&) override { events.push_back("train_end"); }
  void on_epoch_begin(TrainContext&, int e, const Logs&) override {
    events.push_back("epoch_begin " + std::to_string(e));
  }
  void on_epoch_end(TrainContext& ctx, int e, const Logs&) override {
    events.push_back("epoch_end " + std::to_string(e));
    if (stop_after_epoch == e) ctx.request_stop("asked in on_epoch_end");
  }
  void on_batch_begin(TrainContext&, std::int64_t b, const Logs&) override {
    events.push_back("batch_begin " + std::to_string(b));
  }
  void on_batch_end(TrainContext& ctx, std::int64_t b, const Logs& logs) override {
    events.push_back("batch_end " + std::to_string(b));
    batch_logs.push_back(logs);
    if (stop_after_batch && stop_after_batch->first == ctx.epoch && stop_after_batch->second == b)
      ctx.request_stop("asked in on_batch_end");
  }
  void on_validation_end(TrainContext&, const Logs& logs) override {
    std::string keys;
    for (const auto& [k, v] : logs) keys += " " + k;
    events.push_back("validation_end" + keys);
  }
  void on_resume(TrainContext& ctx) override {
    events.push_back("resume at epoch " + std::to_string(ctx.epoch) + " batch " +
                     std::to_string(ctx.batch));
  }
  void on_interrupt(TrainContext&) override { events.push_back("interrupt"); }
};

std::vector<std::string> epoch_events(int epoch, int batches, bool validation = true) {
  std::vector<std::string> out = {"epoch_begin " + std::to_string(epoch)};
  for (int b = 0; b < batches; ++b) {
    out.push_back("batch_begin " + std::to_string(b));
    out.push_back("batch_end " + std::to_string(b));
  }
  if (validation) out.push_back("validation_end val_accuracy val_loss");
  out.push_back("epoch_end " + std::to_string(epoch));
  return out;
}

// Keeps a copy of the weights at every epoch end.
struct WeightsRecorder : Callback {
  std::map<int, NamedTensors> weights;
  std::string name() const override { return "weights_recorder"; }
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs&) override {
    weights[epoch] = module_state(*ctx.model).clone();
  }
};

// Writes a resumable checkpoint when interrupted; resumes from it when one exists.
struct Backup : Callback {
  fs::path dir;
  explicit Backup(fs::path d) : dir(std::move(d)) {}
  std::string name() const override { return "backup"; }
  void on_train_begin(TrainContext& ctx, const Logs&) override {
    if (fs::exists(dir)) ctx.pending_restore = RestorePoint::open(dir);
  }
  void on_interrupt(TrainContext& ctx) override { write_step_checkpoint(ctx, dir); }
};

std::vector<Logs> without_seconds(const std::vector<EpochRecord>& h) {
  std::vector<Logs> out;
  for (auto r : h) {
    r.logs.erase("seconds");
    r.logs["epoch"] = r.epoch;
    r.logs["step"] = static_cast<double>(r.step);
    out.push_back(r.logs);
  }
  return out;
}

std::string strip_last_column(const std::string& csv) {
  std::string out;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

}  // namespace

// ---- hooks ----

TEST(Trainer, CallsHooksInKerasOrder) {
  auto data = make_data(48, 1);
  auto model = tiny_mlp(2);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer trainer(one_thread().with_epochs(2).with_batch_size(16));
  auto rec = std::make_shared<Recorder>();
  trainer.add_callback(rec);
  // 40 training examples in batches of 16: 16, 16, 8.
  auto result = trainer.fit(Model::of(model), *opt, rows(data, 0, 40), rows(data, 40, 48));
  std::vector<std::string> expected = {"train_begin"};
  for (int e = 0; e < 2; ++e)
    for (auto& s : epoch_events(e, 3)) expected.push_back(s);
  expected.push_back("train_end");
  EXPECT_EQ(rec->events, expected);
  EXPECT_EQ(result.epochs_run, 2);
  EXPECT_EQ(result.global_step, 6);
  EXPECT_FALSE(result.stopped_early);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.stop_reason, "it completed all 2 epochs");
}

TEST(Trainer, CallbacksAreCalledInTheOrderAdded) {
  struct Tag : Callback {
    std::string tag;
    std::vector<std::string>* log;
    Tag(std::string t, std::vector<std::string>* l) : tag(std::move(t)), log(l) {}
    std::string name() const override { return tag; }
    void on_epoch_end(TrainContext&, int, const Logs&) override { log->push_back(tag); }
  };
  std::vector<std::string> log;
  auto data = make_data(16, 1);
  auto model = tiny_mlp(2);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer trainer(one_thread().with_epochs(2).with_batch_size(16));
  for (const char* t : {"c", "a", "b"}) trainer.add_callback(std::make_shared<Tag>(t, &log));
  trainer.fit(Model::of(model), *opt, data, Dataset{});
  EXPECT_EQ(log, (std::vector<std::string>{"c", "a", "b", "c", "a", "b"}));
}

TEST(Trainer, StopAskedInOnEpochEndEndsAfterThatEpoch) {
  auto data = make_data(48, 5);
  auto model = tiny_mlp(6);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer trainer(one_thread().with_epochs(10).with_batch_size(16));
  auto rec = std::make_shared<Recorder>();
  rec->stop_after_epoch = 1;
  trainer.add_callback(rec);
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 32), Dataset{});
  EXPECT_TRUE(r.stopped_early);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.epochs_run, 2);
  EXPECT_EQ(r.global_step, 4);
  EXPECT_EQ(r.stop_reason, "asked in on_epoch_end");
  EXPECT_EQ(rec->events.back(), "train_end");
  EXPECT_EQ(rec->events[rec->events.size() - 2], "epoch_end 1");
  EXPECT_FALSE(r.history.back().logs.count("val_loss"));  // no validation data, no val_*
}

TEST(Trainer, StopAskedInOnBatchEndEndsTheEpochThereAndStillValidates) {
  // Keras: `if self.stop_training: break` after on_train_batch_end, then validation and
  // on_epoch_end for the partial epoch.
  auto data = make_data(48, 5);
  auto model = tiny_mlp(6);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer trainer(one_thread().with_epochs(10).with_batch_size(16));
  auto rec = std::make_shared<Recorder>();
  rec->stop_after_batch = {1, 0};  // epoch 1, after its first batch
  trainer.add_callback(rec);
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 40), rows(data, 40, 48));
  std::vector<std::string> expected = {"train_begin"};
  for (auto& s : epoch_events(0, 3)) expected.push_back(s);
  for (auto& s : epoch_events(1, 1)) expected.push_back(s);
  expected.push_back("train_end");
  EXPECT_EQ(rec->events, expected);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.stop_reason, "asked in on_batch_end");
  EXPECT_EQ(r.global_step, 4);
  ASSERT_EQ(r.history.size(), 2u);
  // The partial epoch's metrics are those of its one batch.
  EXPECT_DOUBLE_EQ(r.history[1].logs.at("loss"), rec->batch_logs.back().at("loss"));
  EXPECT_TRUE(r.history[1].logs.count("val_loss"));
}

TEST(Trainer, InterruptEndsAfterTheCurrentBatchWithOnInterruptBeforeOnTrainEnd) {
  auto data = make_data(64, 7);
  auto model = tiny_mlp(8);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  // Polled before every batch: poll 7 is before the 3rd batch of epoch 1 (4 batches an epoch).
  Trainer trainer(
      one_thread().with_epochs(5).with_batch_size(16).with_interrupt(interrupt_at_poll(7)));
  auto rec = std::make_shared<Recorder>();
  trainer.add_callback(rec);
  auto r = trainer.fit(Model::of(model), *opt, data, Dataset{});
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.stopped_early);
  EXPECT_EQ(r.global_step, 6);
  EXPECT_EQ(r.epochs_run, 1);
  EXPECT_EQ(r.stop_reason, "interrupted by test");
  const std::vector<std::string> tail = {"epoch_begin 1", "batch_begin 0", "batch_end 0",
                                         "batch_begin 1", "batch_end 1",   "interrupt",
                                         "train_end"};
  ASSERT_GE(rec->events.size(), tail.size());
  EXPECT_EQ(std::vector<std::string>(rec->events.end() - static_cast<long>(tail.size()),
                                     rec->events.end()),
            tail);
}

TEST(Trainer, RejectsDuplicateCallbackNamesAndBadOptions) {
  Trainer trainer;
  trainer.add_callback(std::make_shared<Recorder>());
  EXPECT_THROW(trainer.add_callback(std::make_shared<Recorder>()), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_batch_size(0)), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_epochs(-1)), OptionError);
  auto model = tiny_mlp(1);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  EXPECT_THROW(Trainer().fit(Model::of(model), *opt, Dataset{}, Dataset{}), InputError);
}

// ---- logs ----

TEST(Trainer, EpochLogsAreTheExampleWeightedMeansOfTheBatchesAndValidationIsEvaluate) {
  auto data = make_data(300, 3);
  auto model = tiny_mlp(4);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.02}});
  Trainer trainer(one_thread().with_epochs(6).with_batch_size(32));
  auto rec = std::make_shared<Recorder>();
  trainer.add_callback(rec);
  const auto train = rows(data, 0, 250), val = rows(data, 250, 300);
  auto result = trainer.fit(Model::of(model), *opt, train, val);
  ASSERT_EQ(result.history.size(), 6u);
  // 250 examples in batches of 32: 7 of 32 and one of 26.
  ASSERT_EQ(rec->batch_logs.size(), 6u * 8u);
  for (std::size_t e = 0; e < 6; ++e) {
    double loss = 0, correct = 0;
    for (std::size_t b = 0; b < 8; ++b) {
      const auto& l = rec->batch_logs[e * 8 + b];
      const double n = b < 7 ? 32 : 26;
      loss += l.at("loss") * n;
      correct += l.at("accuracy") * n;
    }
    const auto& logs = result.history[e].logs;
    EXPECT_NEAR(logs.at("loss"), loss / 250, 1e-12) << e;
    EXPECT_NEAR(logs.at("accuracy"), correct / 250, 1e-12) << e;
    EXPECT_EQ(result.history[e].epoch, static_cast<int>(e));
    EXPECT_EQ(result.history[e].step, static_cast<std::int64_t>((e + 1) * 8));
    EXPECT_DOUBLE_EQ(logs.at("lr"), 0.02);
    EXPECT_GE(logs.at("seconds"), 0.0);
    EXPECT_EQ(logs.size(), 6u);  // loss accuracy val_loss val_accuracy lr seconds
  }
  EXPECT_LT(result.history.back().logs.at("loss"), result.history.front().logs.at("loss"));
  EXPECT_GT(result.history.back().logs.at("val_accuracy"), 0.8);
  // The last epoch's validation numbers are evaluate() of the final weights.
  const auto v = evaluate(Model::of(model), val);
  EXPECT_EQ(v.at("loss"), result.history.back().logs.at("val_loss"));
  EXPECT_EQ(v.at("accuracy"), result.history.back().logs.at("val_accuracy"));
}

TEST(Trainer, RegressionTargetsGetMseAndNoAccuracy) {
  ::torch::manual_seed(9);
  auto x = ::torch::randn({64, 3});
  Dataset d{x, x.matmul(::torch::tensor({{1.0f}, {-2.0f}, {0.5f}}))};
  ::torch::manual_seed(1);
  ::torch::nn::Sequential m(::torch::nn::Linear(3, 1));
  auto opt = make_optimizer(OptimizerKind::SGD, m->parameters(), {{"lr", 0.1}});
  auto r = Trainer(one_thread().with_epochs(20).with_batch_size(16))
               .fit(Model::of(m), *opt, rows(d, 0, 48), rows(d, 48, 64));
  const auto& last = r.history.back().logs;
  EXPECT_FALSE(last.count("accuracy"));
  EXPECT_FALSE(last.count("val_accuracy"));
  EXPECT_LT(last.at("val_loss"), 0.05 * r.history.front().logs.at("val_loss"));
}

// ---- CSVLogger ----

TEST(CSVLogger, RendersFixedColumnOrderAndNonFiniteValues) {
  TempDir tmp;
  CSVLogger logger(CSVLoggerOptions{}.with_filename(tmp / "sub" / "metrics.csv"));
  std::vector<EpochRecord> h = {
      {0,
       10,
       {{"loss", 0.5}, {"val_loss", 0.25}, {"accuracy", 0.75}, {"lr", 0.001}, {"seconds", 2}}},
      {1,
       20,
       {{"loss", 0.25},
        {"val_loss", std::nan("")},
        {"accuracy", 0.8},
        {"lr", 0.001},
        {"seconds", 1.5}}}};
  EXPECT_EQ(logger.render(h),
            "epoch,step,accuracy,loss,val_loss,lr,seconds\n"
            "0,10,0.75,0.5,0.25,0.001,2\n"
            "1,20,0.8,0.25,nan,0.001,1.5\n");
  EXPECT_EQ(render_metrics_csv(h, ';').substr(0, 11), "epoch;step;");
  TrainContext ctx;
  ctx.history = h;
  logger.on_epoch_end(ctx, 1, h[1].logs);
  EXPECT_EQ(read_file(tmp / "sub" / "metrics.csv"), logger.render(h));
  // A resume from epoch 0's checkpoint drops the row of epoch 1 at once.
  ctx.history.pop_back();
  logger.on_resume(ctx);
  EXPECT_EQ(read_file(tmp / "sub" / "metrics.csv"),
            "epoch,step,accuracy,loss,val_loss,lr,seconds\n0,10,0.75,0.5,0.25,0.001,2\n");
}

TEST(CSVLogger, WritesOneRowPerEpochOfATrainingRunWithExactValues) {
  TempDir tmp;
  auto data = make_data(120, 2);
  auto model = tiny_mlp(3);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.01}});
  Trainer trainer(one_thread().with_epochs(3).with_batch_size(32));
  trainer.add_callback(
      std::make_shared<CSVLogger>(CSVLoggerOptions{}.with_filename(tmp / "metrics.csv")));
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 100), rows(data, 100, 120));
  const auto log = MetricsLog::read(tmp / "metrics.csv");
  EXPECT_EQ(log.columns(), (std::vector<std::string>{"epoch", "step", "accuracy", "loss",
                                                     "val_accuracy", "val_loss", "lr", "seconds"}));
  ASSERT_EQ(log.rows(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(log.column("epoch")[i], static_cast<double>(i));
    EXPECT_EQ(log.column("step")[i], static_cast<double>(r.history[i].step));
    // Shortest round-trip formatting: the file holds the exact doubles.
    for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"})
      EXPECT_EQ(log.column(k)[i], r.history[i].logs.at(k)) << k;
  }
}

// ---- ReduceLROnPlateau (keras/src/callbacks/reduce_lr_on_plateau.py) ----

namespace {

std::vector<double> lr_trace(ReduceLROnPlateau& cb, const std::string& metric,
                             const std::vector<double>& values, double lr0) {
  auto model = tiny_mlp(1);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", lr0}});
  TrainContext ctx;
  ctx.model = model.ptr();
  ctx.optimizer = opt.get();
  cb.on_train_begin(ctx, {});
  std::vector<double> lrs;
  for (std::size_t e = 0; e < values.size(); ++e) {
    cb.on_epoch_end(ctx, static_cast<int>(e), {{metric, values[e]}});
    lrs.push_back(get_learning_rate(*opt));
  }
  return lrs;
}

}  // namespace

TEST(ReduceLROnPlateau, PatienceCooldownAndMinLrAsKeras) {
  ReduceLROnPlateau cb(
      ReduceLROnPlateauOptions{}.with_patience(2).with_factor(0.5).with_cooldown(1).with_min_lr(
          0.2));
  const auto lrs =
      lr_trace(cb, "val_loss", {1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95}, 1.0);
  // Keras decrements the cooldown counter before counting the wait, so with cooldown 1 the epoch
  // right after a reduction already counts: reductions after epochs 3, 5 and 7; the third is
  // clamped to min_lr (0.125 -> 0.2), and at min_lr (lr > float32(min_lr) fails) nothing more.
  EXPECT_EQ(lrs, (std::vector<double>{1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2}));
  EXPECT_EQ(cb.reductions(), 3);
  EXPECT_EQ(cb.best(), 0.9);
  // At min_lr the wait is not reset (Keras resets it only when it reduces).
  EXPECT_EQ(cb.wait(), 2);
}

TEST(ReduceLROnPlateau, LongerCooldownPausesCounting) {
  ReduceLROnPlateau cb(
      ReduceLROnPlateauOptions{}.with_patience(1).with_factor(0.5).with_cooldown(2));
  // Reduce after epoch 1 (counter set to 2). Epoch 2: the counter drops to 1, still cooling
  // down, nothing counted. Epoch 3: it drops to 0 before the test, so epoch 3 counts and
  // reduces again (Keras decrements first): a cooldown of n pauses n - 1 epochs.
  const auto lrs = lr_trace(cb, "val_loss", {1, 1, 1, 1, 1, 1}, 1.0);
  EXPECT_EQ(lrs, (std::vector<double>{1, 0.5, 0.5, 0.25, 0.25, 0.125}));
  EXPECT_EQ(cb.cooldown_counter(), 2);
  EXPECT_EQ(cb.reductions(), 3);
}

TEST(ReduceLROnPlateau, MinDeltaAndMaxMode) {
  // Keras max mode: improvement means current > best + min_delta.
  ReduceLROnPlateau cb(ReduceLROnPlateauOptions{}
                           .with_monitor("val_accuracy")
                           .with_mode(ModeSetting::Max)
                           .with_patience(1)
                           .with_min_delta(0.05));
  const auto lrs = lr_trace(cb, "val_accuracy", {0.5, 0.54, 0.56, 0.62, 0.63}, 1.0);
  ASSERT_EQ(lrs.size(), 5u);
  EXPECT_DOUBLE_EQ(lrs[0], 1.0);
  EXPECT_DOUBLE_EQ(lrs[1], 0.1);  // 0.54 is not above 0.5 + 0.05
  EXPECT_DOUBLE_EQ(lrs[2], 0.1);  // 0.56 is: new best
  EXPECT_DOUBLE_EQ(lrs[3], 0.1);  // 0.62 > 0.61: new best
  EXPECT_DOUBLE_EQ(lrs[4], 0.1 * 0.1);
  EXPECT_EQ(cb.best(), 0.62);
  // "auto" infers max for an accuracy, as Keras does ("acc" in the name).
  ReduceLROnPlateau autocb(ReduceLROnPlateauOptions{}
                               .with_monitor("val_accuracy")
                               .with_patience(1)
                               .with_min_delta(0.05));
  EXPECT_EQ(lr_trace(autocb, "val_accuracy", {0.5, 0.54, 0.56, 0.62, 0.63}, 1.0), lrs);
}

TEST(ReduceLROnPlateau, MissingMetricChangesNothingAndStateRoundTrips) {
  ReduceLROnPlateauOptions o = ReduceLROnPlateauOptions{}.with_patience(0).with_factor(0.5);
  ReduceLROnPlateau cb(o);
  EXPECT_EQ(lr_trace(cb, "loss", {1, 1, 1}, 1.0), (std::vector<double>{1, 1, 1}));
  ReduceLROnPlateau a(ReduceLROnPlateauOptions{}.with_patience(3));
  lr_trace(a, "val_loss", {1.0, 2.0, 2.0}, 1.0);
  ReduceLROnPlateau b(ReduceLROnPlateauOptions{}.with_patience(3));
  b.load_state(a.state());
  EXPECT_EQ(b.state(), a.state());
  EXPECT_EQ(b.wait(), 2);
  EXPECT_EQ(b.best(), 1.0);
  EXPECT_THROW(ReduceLROnPlateau(ReduceLROnPlateauOptions{}.with_factor(1.0)), OptionError);
  EXPECT_THROW(ReduceLROnPlateau(ReduceLROnPlateauOptions{}.with_cooldown(-1)), OptionError);
}

// ---- EarlyStopping: restore_best_weights whatever ends training (Keras 3) ----

namespace {

struct RestoreRun {
  FitResult fit;
  std::shared_ptr<EarlyStopping> stopping;
  std::shared_ptr<WeightsRecorder> weights;
  NamedTensors final_weights;
};

// Monitors val_loss in max mode: validation loss falls while the model learns, so the first
// epoch is the best and every later one "does not improve" - a best epoch that is not the last,
// without relying on overfitting.
RestoreRun restore_run(int epochs, int patience, bool restore, int interrupt_poll = 0) {
  auto data = make_data(200, 11);
  auto model = tiny_mlp(12);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.02}});
  auto o = one_thread().with_epochs(epochs).with_batch_size(32);
  if (interrupt_poll > 0) o.with_interrupt(interrupt_at_poll(interrupt_poll));
  Trainer trainer(o);
  RestoreRun r;
  r.stopping = std::make_shared<EarlyStopping>(EarlyStoppingCallbackOptions{}
                                                   .with_stopping(EarlyStoppingOptions{}
                                                                      .with_monitor("val_loss")
                                                                      .with_mode("max")
                                                                      .with_patience(patience))
                                                   .with_restore_best_weights(restore));
  r.weights = std::make_shared<WeightsRecorder>();
  trainer.add_callback(r.stopping);
  trainer.add_callback(r.weights);
  r.fit = trainer.fit(Model::of(model), *opt, rows(data, 0, 160), rows(data, 160, 200));
  r.final_weights = module_state(*model).clone();
  return r;
}

}  // namespace

TEST(EarlyStoppingRestore, AfterAnEarlyStop) {
  auto r = restore_run(20, 2, true);
  ASSERT_TRUE(r.fit.stopped_early);
  ASSERT_EQ(r.stopping->stopper().best_epoch().value_or(-1), 0);
  EXPECT_EQ(r.fit.epochs_run, 3);  // epochs 1 and 2 did not improve: patience 2 stops after 2
  EXPECT_TRUE(r.stopping->restored());
  EXPECT_TRUE(same_weights(r.final_weights, r.weights->weights.at(0)));
  EXPECT_FALSE(same_weights(r.final_weights, r.weights->weights.at(2)));
}

TEST(EarlyStoppingRestore, AfterTheLastEpochWithoutAStop) {
  auto r = restore_run(4, 100, true);
  ASSERT_FALSE(r.fit.stopped_early);
  ASSERT_EQ(r.fit.epochs_run, 4);
  ASSERT_EQ(r.stopping->stopper().best_epoch().value_or(-1), 0);
  EXPECT_TRUE(r.stopping->restored());
  EXPECT_TRUE(same_weights(r.final_weights, r.weights->weights.at(0)));
}

TEST(EarlyStoppingRestore, AfterAnInterrupt) {
  // 5 batches an epoch: poll 13 is before the 3rd batch of epoch 2.
  auto r = restore_run(20, 100, true, 13);
  ASSERT_TRUE(r.fit.interrupted);
  ASSERT_EQ(r.fit.epochs_run, 2);
  ASSERT_EQ(r.stopping->stopper().best_epoch().value_or(-1), 0);
  EXPECT_TRUE(r.stopping->restored());
  EXPECT_TRUE(same_weights(r.final_weights, r.weights->weights.at(0)));
}

TEST(EarlyStoppingRestore, OffKeepsTheFinalWeights) {
  auto r = restore_run(20, 2, false);
  ASSERT_TRUE(r.fit.stopped_early);
  EXPECT_FALSE(r.stopping->restored());
  EXPECT_TRUE(same_weights(r.final_weights, r.weights->weights.at(r.fit.epochs_run - 1)));
}

// ---- ProgressBar ----

TEST(ProgressBar, OnePlainLinePerEpochWithTheNote) {
  auto data = make_data(48, 1);
  auto model = tiny_mlp(2);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  std::ostringstream out;
  Trainer trainer(one_thread().with_epochs(2).with_batch_size(16));
  trainer.add_callback(std::make_shared<ProgressBar>(
      out,
      ProgressBarOptions{}.with_live(false).with_epoch_note([](const TrainContext& ctx, int e) {
        return "note " + std::to_string(e) + "/" + std::to_string(ctx.global_step);
      })));
  trainer.fit(Model::of(model), *opt, rows(data, 0, 40), rows(data, 40, 48));
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  EXPECT_EQ(text.rfind("epoch 0 (1 of 2): 3 batches in ", 0), 0u) << text;
  EXPECT_NE(text.find("\nepoch 1 (2 of 2): 3 batches in "), std::string::npos) << text;
  for (const char* s : {"  loss ", "  accuracy ", "  val_loss ", "  val_accuracy ", "  lr 0.1",
                        "  note 0/3\n", "  note 1/6\n"})
    EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
}

TEST(ProgressBar, LiveBarRedrawsInPlaceAndEndsTheLineOnInterrupt) {
  auto data = make_data(64, 1);
  auto model = tiny_mlp(2);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  std::ostringstream out;
  Trainer trainer(one_thread().with_epochs(3).with_batch_size(16).with_interrupt(
      interrupt_at_poll(7)));  // before batch 2 of epoch 1
  trainer.add_callback(std::make_shared<ProgressBar>(
      out, ProgressBarOptions{}.with_display(
               ProgressOptions{}.with_live(true).with_min_redraw_seconds(0))));
  trainer.fit(Model::of(model), *opt, data, Dataset{});
  const std::string text = out.str();
  EXPECT_NE(text.find("\repoch 0 (1 of 3) ["), std::string::npos) << text;
  EXPECT_NE(text.find("] 1/4"), std::string::npos) << text;
  EXPECT_NE(text.find("] 4/4"), std::string::npos) << text;
  EXPECT_NE(text.find("\repoch 1 (2 of 3) ["), std::string::npos) << text;
  EXPECT_NE(text.find("] 2/4"), std::string::npos) << text;
  // The interrupted bar of epoch 1 is ended with a newline, so later output starts cleanly.
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find("epoch 2"), std::string::npos) << text;
}

// ---- LearningCurvePlot ----

TEST(LearningCurvePlot, WritesThePictureVigilPlotDrawsAfterEveryEpoch) {
  TempDir tmp;
  const fs::path run = tmp / "run";
  fs::create_directories(run);
  const auto es = EarlyStoppingOptions{}.with_monitor("val_loss").with_mode("max").with_patience(2);
  // As `vigil train` does: run.json carries the early-stopping options `vigil plot` replays.
  vigil::atomic_write_file(run / "run.json",
                           nlohmann::json{{"early_stopping", es.to_json()}}.dump());
  auto data = make_data(200, 11);
  auto model = tiny_mlp(12);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.02}});
  Trainer trainer(one_thread().with_epochs(20).with_batch_size(32));
  auto manager = std::make_shared<CheckpointManager>(
      run, CheckpointManagerOptions{}.with_monitor("val_loss").with_mode("max").with_keep_last(1));
  auto plot = std::make_shared<LearningCurvePlot>(LearningCurvePlotOptions{}.with_run_dir(run));
  struct SvgCounter : Callback {
    fs::path file;
    std::vector<std::size_t> epochs_drawn;
    std::string name() const override { return "svg_counter"; }
    void on_epoch_end(TrainContext&, int, const Logs&) override {
      const std::string svg = read_file(file);
      epochs_drawn.push_back(static_cast<std::size_t>(
          std::count(svg.begin(), svg.end(), ',')));  // grows with every point drawn
    }
  };
  auto counter = std::make_shared<SvgCounter>();
  counter->file = run / "learning_curve.svg";
  trainer.add_callback(std::make_shared<EarlyStopping>(
      EarlyStoppingCallbackOptions{}.with_stopping(es).with_restore_best_weights(true)));
  trainer.add_callback(std::make_shared<ModelCheckpoint>(manager));
  trainer.add_callback(plot);  // before the CSVLogger: it does not need metrics.csv
  trainer.add_callback(
      std::make_shared<CSVLogger>(CSVLoggerOptions{}.with_filename(run / "metrics.csv")));
  trainer.add_callback(counter);
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 160), rows(data, 160, 200));
  ASSERT_TRUE(r.stopped_early);
  ASSERT_EQ(r.epochs_run, 3);
  EXPECT_EQ(plot->last_warning(), "");
  // Redrawn at every epoch end: each drawing has more points than the one before.
  ASSERT_EQ(counter->epochs_drawn.size(), 3u);
  EXPECT_LT(counter->epochs_drawn[0], counter->epochs_drawn[1]);
  EXPECT_LT(counter->epochs_drawn[1], counter->epochs_drawn[2]);
  // Byte for byte what `vigil plot RUN_DIR` draws from the files.
  const std::string svg = read_file(run / "learning_curve.svg");
  EXPECT_EQ(svg, plot_run(run).svg);
  ASSERT_TRUE(plot->last_plot());
  EXPECT_EQ(plot->last_plot()->marks.best_epoch.value_or(-1), 0);
  EXPECT_EQ(plot->last_plot()->marks.stop_epoch.value_or(-1), 2);
  EXPECT_EQ(plot->last_plot()->marks.checkpoint_epochs.size(), manager->checkpoints().size());
  EXPECT_NE(svg.find("class=\"stop-epoch\""), std::string::npos);
  EXPECT_NE(svg.find("class=\"checkpoint\""), std::string::npos);
}

// With an async manager, ModelCheckpoint reserves the snapshot memory after the first step
// (model and optimizer state included), before any save: the first epoch-end save then only
// copies into it (one mapping for the whole run), and every checkpoint is still complete.
TEST(ModelCheckpointAsync, ReservesTheSnapshotAfterTheFirstStepBeforeAnySave) {
  TempDir tmp;
  auto data = make_data(200, 13);
  auto model = tiny_mlp(14);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.01}});
  Trainer trainer(one_thread().with_epochs(3).with_batch_size(32));
  auto manager = std::make_shared<CheckpointManager>(
      tmp / "run",
      CheckpointManagerOptions{}.with_monitor("val_loss").with_keep_last(3).with_async(true));
  struct Probe : Callback {
    std::shared_ptr<CheckpointManager> manager;
    std::vector<std::size_t> bytes_at_batch_end;
    std::string name() const override { return "probe"; }
    void on_batch_end(TrainContext& ctx, std::int64_t, const Logs&) override {
      if (ctx.epoch == 0 && ctx.batch <= 2)
        bytes_at_batch_end.push_back(manager->async_buffer_bytes());
    }
  };
  auto probe = std::make_shared<Probe>();
  probe->manager = manager;
  trainer.add_callback(std::make_shared<ModelCheckpoint>(manager));
  trainer.add_callback(probe);
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 160), rows(data, 160, 200));
  ASSERT_EQ(r.epochs_run, 3);
  // Parameters plus Adam's two moments (and step counts): at least three times the weights.
  std::size_t weights = 0;
  for (const auto& p : model->parameters()) weights += static_cast<std::size_t>(p.nbytes());
  ASSERT_EQ(probe->bytes_at_batch_end.size(), 2u);
  EXPECT_GE(probe->bytes_at_batch_end[0], 3 * weights) << "not reserved after the first step";
  EXPECT_EQ(manager->async_buffer_allocations(), 1u) << "a save mapped its snapshot again";
  ASSERT_EQ(manager->checkpoints().size(), 3u);
  for (const auto& c : manager->checkpoints()) EXPECT_NO_THROW(verify_checkpoint(c.path));
}

TEST(LearningCurvePlot, WithoutRunJsonUsesTheEarlyStoppingCallbackAndNeverStopsTraining) {
  TempDir tmp;
  auto data = make_data(200, 11);
  auto model = tiny_mlp(12);
  auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.02}});
  Trainer trainer(one_thread().with_epochs(20).with_batch_size(32));
  auto plot = std::make_shared<LearningCurvePlot>(
      LearningCurvePlotOptions{}.with_run_dir(tmp.path()).with_filename(tmp / "plots" / "c.svg"));
  // A metric the logs lack: that plot fails and says so, training goes on.
  struct Named : LearningCurvePlot {
    using LearningCurvePlot::LearningCurvePlot;
    std::string name() const override { return "bad_plot"; }
  };
  auto bad_named = std::make_shared<Named>(LearningCurvePlotOptions{}
                                               .with_run_dir(tmp.path())
                                               .with_filename(tmp / "bad.svg")
                                               .with_metric("f1"));
  trainer.add_callback(std::make_shared<EarlyStopping>(
      EarlyStoppingOptions{}.with_monitor("val_loss").with_mode("max").with_patience(1)));
  trainer.add_callback(plot);
  trainer.add_callback(bad_named);
  auto r = trainer.fit(Model::of(model), *opt, rows(data, 0, 160), rows(data, 160, 200));
  ASSERT_TRUE(r.stopped_early);
  ASSERT_TRUE(plot->last_plot());
  EXPECT_EQ(plot->last_plot()->marks.best_epoch.value_or(-1), 0);
  EXPECT_EQ(plot->last_plot()->marks.stop_epoch.value_or(-1), 1);
  EXPECT_TRUE(fs::exists(tmp / "plots" / "c.svg"));
  EXPECT_FALSE(fs::exists(tmp / "bad.svg"));
  EXPECT_NE(bad_named->last_warning().find("f1"), std::string::npos) << bad_named->last_warning();
  EXPECT_THROW(LearningCurvePlot(LearningCurvePlotOptions{}), OptionError);
}

// ---- resume ----

// Interrupted in the middle of an epoch, saved to disk, resumed into a fresh model and optimizer
// (other initial weights and RNG than the reference): the run ends bit-identical to one never
// interrupted - weights, metrics rows, the early-stopping decision, metrics.csv - with on_resume in
// its place.
TEST(Trainer, ResumesExactlyFromTheMiddleOfAnEpoch) {
  TempDir tmp;
  auto data = make_data(300, 11);
  const auto train = rows(data, 0, 250), val = rows(data, 250, 300);

  struct Outcome {
    NamedTensors weights;
    FitResult fit;
    std::optional<long> best;
    std::vector<std::string> events;
  };
  auto run = [&](std::uint64_t init_seed, const fs::path& backup, const fs::path& csv,
                 int interrupt_poll) {
    auto model = tiny_mlp(init_seed);
    auto opt = make_optimizer(OptimizerKind::Adam, model->parameters(), {{"lr", 0.05}});
    ::torch::manual_seed(init_seed * 7 + 1);
    auto o = one_thread().with_epochs(6).with_batch_size(32);
    if (interrupt_poll > 0) o.with_interrupt(interrupt_at_poll(interrupt_poll));
    Trainer trainer(o);
    auto rec = std::make_shared<Recorder>();
    trainer.add_callback(std::make_shared<Backup>(backup));
    auto es = std::make_shared<EarlyStopping>(EarlyStoppingCallbackOptions{}
                                                  .with_stopping(EarlyStoppingOptions{}
                                                                     .with_monitor("val_loss")
                                                                     .with_patience(1)
                                                                     .with_min_delta(0.02))
                                                  .with_restore_best_weights(true));
    trainer.add_callback(es);
    trainer.add_callback(std::make_shared<CSVLogger>(CSVLoggerOptions{}.with_filename(csv)));
    trainer.add_callback(rec);
    auto r = trainer.fit(Model::of(model), *opt, train, val);
    return Outcome{module_state(*model).clone(), r, es->stopper().best_epoch(), rec->events};
  };

  const auto ref = run(21, tmp / "none", tmp / "ref.csv", 0);
  // 8 batches an epoch: poll 20 is before the 4th batch of epoch 2.
  const auto first = run(21, tmp / "backup", tmp / "run.csv", 20);  // as the reference
  ASSERT_TRUE(first.fit.interrupted);
  EXPECT_EQ(first.fit.global_step, 19);
  ASSERT_TRUE(fs::exists(tmp / "backup" / "model.safetensors"));
  const auto second = run(23, tmp / "backup", tmp / "run.csv", 0);
  ASSERT_TRUE(second.fit.resumed_from.has_value());
  ASSERT_GE(second.events.size(), 3u);
  EXPECT_EQ(second.events[0], "train_begin");
  EXPECT_EQ(second.events[1], "resume at epoch 2 batch 3");
  EXPECT_EQ(second.events[2], "epoch_begin 2");
  EXPECT_EQ(second.events[3], "batch_begin 3");
  EXPECT_EQ(second.fit.stopped_early, ref.fit.stopped_early);
  EXPECT_EQ(second.fit.stop_reason, ref.fit.stop_reason);
  EXPECT_EQ(second.fit.global_step, ref.fit.global_step);
  EXPECT_EQ(second.best.value_or(-1), ref.best.value_or(-2));
  EXPECT_EQ(without_seconds(second.fit.history), without_seconds(ref.fit.history));
  EXPECT_TRUE(same_weights(second.weights, ref.weights));
  EXPECT_EQ(strip_last_column(read_file(tmp / "run.csv")),
            strip_last_column(read_file(tmp / "ref.csv")));
}

TEST(Trainer, ResumeIntoAnotherArchitectureFailsClearly) {
  TempDir tmp;
  auto data = make_data(64, 1);
  {
    auto model = tiny_mlp(1);
    auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
    Trainer t(one_thread().with_epochs(1).with_batch_size(16).with_interrupt(interrupt_at_poll(2)));
    t.add_callback(std::make_shared<Backup>(tmp / "b"));
    ASSERT_TRUE(t.fit(Model::of(model), *opt, data, Dataset{}).interrupted);
  }
  ::torch::nn::Sequential other(::torch::nn::Linear(4, 5), ::torch::nn::ReLU(),
                                ::torch::nn::Linear(5, 3));
  auto opt = make_optimizer(OptimizerKind::SGD, other->parameters(), {{"lr", 0.1}});
  Trainer t(one_thread().with_epochs(1).with_batch_size(16));
  t.add_callback(std::make_shared<Backup>(tmp / "b"));
  try {
    t.fit(Model::of(other), *opt, data, Dataset{});
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot resume from"), std::string::npos) << msg;
    EXPECT_NE(msg.find("0.weight"), std::string::npos) << msg;
  }
}
