// Learning-rate schedules: each formula at many steps, the parser's errors, LRSchedule and the
// libtorch-scheduler adapter through a hand-written loop (every param group, exact continuation
// after a checkpoint and resume), and the resumes that must never be silent.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <torch/optim/schedulers/step_lr.h>

#include "test_support.hpp"
#include "trainer_test_helpers.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/lr_schedule.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/reduce_lr_on_plateau.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
using namespace vigil;
using namespace vigil::torch;
using vigil::test::error_of;
using vigil::test::TempDir;

namespace {

constexpr double kB = 0.1;
constexpr double kF = 0.01;

// The formulas of lr_schedule.hpp written out once more, independently of scheduled_lr().
double expected(const std::string& kind, std::int64_t s, std::int64_t w, std::int64_t t) {
  if (s < w) return kB * static_cast<double>(s + 1) / static_cast<double>(w);
  const double p =
      std::min(1.0, std::max(0.0, static_cast<double>(s - w) /
                                      static_cast<double>(std::max<std::int64_t>(1, t - w))));
  if (kind == "constant") return kB;
  if (kind == "step:5:0.5") return kB * std::pow(0.5, static_cast<double>((s - w) / 5));
  if (kind == "cosine") return kF + (kB - kF) * 0.5 * (1 + std::cos(std::numbers::pi * p));
  return kB + (kF - kB) * p;  // linear
}

// A tiny loop driving a CallbackList as the Trainer will: on_before_optimizer_step sets the lr,
// on_batch_end follows each step. `lrs` has the lr of every param group at every step taken.
struct Loop {
  ::torch::nn::Sequential model;
  std::unique_ptr<::torch::optim::SGD> opt;
  CallbackList callbacks;
  TrainContext ctx;
  std::vector<std::vector<double>> lrs;

  explicit Loop(std::vector<std::shared_ptr<Callback>> cbs, int epochs = 4,
                std::int64_t steps_per_epoch = 5) {
    ::torch::manual_seed(1);
    model = ::torch::nn::Sequential(::torch::nn::Linear(2, 2), ::torch::nn::Linear(2, 1));
    // Two param groups: every one must get the schedule's lr.
    std::vector<::torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(model[0]->parameters());
    groups.emplace_back(model[1]->parameters());
    opt = std::make_unique<::torch::optim::SGD>(groups, ::torch::optim::SGDOptions(kB));
    for (auto& c : cbs) callbacks.add(c);
    ctx.model = model.ptr();
    ctx.optimizer = opt.get();
    ctx.epochs = epochs;
    ctx.steps_per_epoch = steps_per_epoch;
  }

  void begin(const std::optional<fs::path>& resume = std::nullopt) {
    if (resume) ctx.pending_restore = RestorePoint::open(*resume);
    callbacks.on_train_begin(ctx);
  }

  // Trains until `until` optimizer steps are taken (or the planned epochs end).
  void train_until(std::int64_t until) {
    const auto x = ::torch::ones({3, 2});
    while (ctx.epoch < ctx.epochs && ctx.global_step < until) {
      if (ctx.batch == 0) callbacks.on_epoch_begin(ctx, ctx.epoch);
      while (ctx.batch < ctx.steps_per_epoch && ctx.global_step < until) {
        opt->zero_grad();
        model->forward(x).pow(2).mean().backward();
        callbacks.on_before_optimizer_step(ctx);
        std::vector<double> now;
        for (const auto& g : opt->param_groups()) now.push_back(g.options().get_lr());
        lrs.push_back(now);
        opt->step();
        ++ctx.batch;
        ++ctx.global_step;
        callbacks.on_batch_end(ctx, ctx.batch - 1, {{"loss", 1.0}});
      }
      if (ctx.batch == ctx.steps_per_epoch) {
        callbacks.on_epoch_end(ctx, ctx.epoch,
                               {{"loss", 1.0}, {"val_loss", 1.0}, {"lr", get_learning_rate(*opt)}});
        ++ctx.epoch;
        ctx.batch = 0;
        ctx.epoch_complete = false;
      }
    }
  }

  // The first group's lr at every step.
  std::vector<double> first_lrs() const {
    std::vector<double> out;
    for (const auto& l : lrs) out.push_back(l.front());
    return out;
  }

  void save(const fs::path& dir) const { vigil::test::write_step_checkpoint(ctx, dir); }
};

std::shared_ptr<LRSchedule> schedule(const std::string& text, std::int64_t warmup = 3) {
  return std::make_shared<LRSchedule>(LRScheduleOptions{}
                                          .with_schedule(parse_lr_schedule(text))
                                          .with_warmup_steps(warmup)
                                          .with_final_lr(kF));
}

std::shared_ptr<LibtorchLRScheduler> step_lr(unsigned size, double gamma,
                                             LRSchedulerInterval interval) {
  return std::make_shared<LibtorchLRScheduler>(
      LibtorchLRSchedulerOptions{}
          .with_make([size, gamma](::torch::optim::Optimizer& o) {
            return std::make_unique<::torch::optim::StepLR>(o, size, gamma);
          })
          .with_interval(interval));
}

}  // namespace

TEST(LRScheduleFormula, EachKindFollowsItsFormulaAtEveryStep) {
  for (const std::string kind : {"constant", "step:5:0.5", "cosine", "linear"}) {
    const auto spec = parse_lr_schedule(kind);
    for (std::int64_t w : {0, 1, 4})
      for (std::int64_t s = 0; s < 40; ++s)
        EXPECT_NEAR(scheduled_lr(spec, kB, kF, w, 20, s), expected(kind, s, w, 20), 1e-15)
            << kind << " w=" << w << " s=" << s;
  }
}

TEST(LRScheduleFormula, WarmUpAndEndPointsAreExact) {
  const auto cosine = parse_lr_schedule("cosine");
  const auto linear = parse_lr_schedule("linear");
  // Warm-up of 4 steps: B/4, 2B/4, 3B/4, then B at step W-1 (no zero-lr first step).
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, 0), kB / 4);
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, 2), 3 * kB / 4);
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, 3), kB);
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, 4), kB);              // p = 0
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, 12), (kB + kF) / 2);  // p = 1/2
  EXPECT_DOUBLE_EQ(scheduled_lr(linear, kB, kF, 4, 20, 8), kB + (kF - kB) / 4);
  for (std::int64_t s : {20, 21, 1000}) {  // s >= T: held at F
    EXPECT_DOUBLE_EQ(scheduled_lr(cosine, kB, kF, 4, 20, s), kF);
    EXPECT_DOUBLE_EQ(scheduled_lr(linear, kB, kF, 4, 20, s), kF);
  }
  const auto step = parse_lr_schedule("step:5:0.5");
  EXPECT_DOUBLE_EQ(scheduled_lr(step, kB, kF, 4, 20, 8), kB);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, kB, kF, 4, 20, 9), kB / 2);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, kB, kF, 4, 20, 14), kB / 4);
  // A total no longer than the warm-up: decay over max(1, T - W) = 1 step.
  EXPECT_DOUBLE_EQ(scheduled_lr(linear, kB, kF, 4, 2, 4), kB);
  EXPECT_DOUBLE_EQ(scheduled_lr(linear, kB, kF, 4, 2, 5), kF);
}

TEST(LRScheduleParse, ReadsEveryFormAndWritesItBack) {
  for (const char* text : {"constant", "step:100:0.5", "step:1:1", "cosine", "linear"})
    EXPECT_EQ(parse_lr_schedule(text).to_string(), text);
  const auto s = parse_lr_schedule("step:30:0.1");
  EXPECT_EQ(s.kind, LRScheduleKind::Step);
  EXPECT_EQ(s.step_size, 30);
  EXPECT_DOUBLE_EQ(s.gamma, 0.1);
}

TEST(LRScheduleParse, RefusesEachBadValueWithOneClearError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"step:0:0.5", "SIZE must be >= 1"},
      {"step:-3:0.5", "SIZE must be >= 1"},
      {"step:x:0.5", "SIZE must be a whole number >= 1, not 'x'"},
      {"step:10:0", "GAMMA must be in (0, 1]"},
      {"step:10:1.5", "GAMMA must be in (0, 1]"},
      {"step:10:fast", "GAMMA must be a number in (0, 1], not 'fast'"},
      {"step:10", "write step:SIZE:GAMMA"},
      {"exponential", "valid: constant, step:SIZE:GAMMA, cosine or linear"},
      {"cosine:5", "unknown lr schedule 'cosine:5'"},
      {"", "unknown lr schedule ''"},
  };
  for (const auto& [text, part] : cases) {
    try {
      (void)parse_lr_schedule(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const OptionError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << text << ": " << e.what();
    }
  }
  EXPECT_THROW(LRSchedule(LRScheduleOptions{}.with_warmup_steps(-1)), OptionError);
  EXPECT_THROW(LRSchedule(LRScheduleOptions{}.with_final_lr(-1)), OptionError);
  EXPECT_THROW(LRSchedule(LRScheduleOptions{}.with_total_steps(-1)), OptionError);
  EXPECT_THROW(LRSchedule(LRScheduleOptions{}.with_base_lr(0.0)), OptionError);
}

TEST(LRScheduleCallback, SetsEveryGroupsLrFromTheStepBeforeEachOptimizerStep) {
  auto cb = schedule("cosine");
  Loop loop({cb});
  loop.begin();
  // Set at on_train_begin already, so that what is logged before the first step is right.
  EXPECT_DOUBLE_EQ(get_learning_rate(*loop.opt), kB / 3);
  EXPECT_EQ(cb->total_steps(), 20);  // ctx.planned_steps(): 4 epochs of 5 steps
  EXPECT_DOUBLE_EQ(cb->base_lr(), kB);
  loop.train_until(100);
  ASSERT_EQ(loop.lrs.size(), 20u);
  for (std::size_t s = 0; s < loop.lrs.size(); ++s)
    for (double lr : loop.lrs[s])
      EXPECT_NEAR(lr, expected("cosine", static_cast<std::int64_t>(s), 3, 20), 1e-15) << s;
}

TEST(LRScheduleCallback, FollowsTheFormulaInTheTrainersLoop) {
  // The current Trainer calls on_batch_begin (not yet on_before_optimizer_step) before each
  // step; the lr it logs at an epoch end is the one its last step used.
  ::torch::manual_seed(0);
  auto x = ::torch::randn({64, 4});
  Dataset train{x, x.sum(1).gt(0).to(::torch::kLong)};
  auto net = ::torch::nn::Sequential(::torch::nn::Linear(4, 2));
  ::torch::optim::SGD opt(net->parameters(), ::torch::optim::SGDOptions(kB));
  Trainer trainer(TrainerOptions{}.with_epochs(4).with_batch_size(16).with_threads(1));
  auto cb = schedule("linear", 2);
  trainer.add_callback(cb);
  const auto fit = trainer.fit(Model::of(net), opt, train, Dataset{});
  ASSERT_EQ(fit.history.size(), 4u);
  for (const auto& r : fit.history)
    EXPECT_NEAR(r.logs.at("lr"), expected("linear", r.step - 1, 2, 16), 1e-15) << r.epoch;
}

TEST(LRScheduleCallback, CosineWithNoKnownTotalIsRefused) {
  Loop loop({schedule("cosine")}, 4, /*steps_per_epoch=*/0);  // endless data, no max_steps
  try {
    loop.begin();
    FAIL() << "accepted";
  } catch (const OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("set max_steps"), std::string::npos) << e.what();
  }
  Loop fine({schedule("step:2:0.5")}, 4, 0);  // step needs no total
  EXPECT_NO_THROW(fine.begin());
}

TEST(LRScheduleCallback, StateJsonRoundTripContinuesExactly) {
  Loop whole({schedule("cosine")});
  whole.begin();
  whole.train_until(100);

  auto first = schedule("cosine");
  Loop a({first});
  a.begin();
  a.train_until(7);
  const std::string saved = first->state().dump();

  auto second = schedule("cosine");
  Loop b({second});
  // The resumed optimizer's lr is already decayed: the base must come from the state.
  set_learning_rate(*b.opt, a.lrs.back().front());
  b.begin();
  second->load_state(nlohmann::json::parse(saved));
  b.ctx.global_step = 7;
  b.ctx.epoch = 1;
  b.ctx.batch = 2;
  second->on_resume(b.ctx);
  b.train_until(100);
  auto lrs = a.first_lrs();
  const auto rest = b.first_lrs();
  lrs.insert(lrs.end(), rest.begin(), rest.end());
  EXPECT_EQ(lrs, whole.first_lrs());
}

TEST(LRScheduleCallback, ResumeFromACheckpointContinuesExactly) {
  TempDir tmp;
  Loop whole({schedule("step:4:0.5")});
  whole.begin();
  whole.train_until(100);

  Loop a({schedule("step:4:0.5")});
  a.begin();
  a.train_until(8);  // mid-epoch, after the first decay
  a.save(tmp / "ckpt");
  Loop b({schedule("step:4:0.5")});
  b.begin(tmp / "ckpt");
  EXPECT_EQ(b.ctx.global_step, 8);
  EXPECT_DOUBLE_EQ(get_learning_rate(*b.opt), kB / 2);
  b.train_until(100);
  auto lrs = a.first_lrs();
  const auto rest = b.first_lrs();
  lrs.insert(lrs.end(), rest.begin(), rest.end());
  EXPECT_EQ(lrs, whole.first_lrs());
  EXPECT_TRUE(b.ctx.warnings.empty());
}

TEST(LRScheduleCallback, RefusesACheckpointWithAnotherSchedule) {
  TempDir tmp;
  Loop a({schedule("cosine")});
  a.begin();
  a.train_until(6);
  a.save(tmp / "ckpt");
  Loop b({schedule("linear", 5)});
  const auto msg = error_of<InputError>([&] { b.begin(tmp / "ckpt"); });
  EXPECT_NE(msg.find("schedule cosine (this run: linear)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("warmup_steps 3 (this run: 5)"), std::string::npos) << msg;
}

TEST(LibtorchLRSchedulerAdapter, StepLRResumesExactlyEveryStepOrEveryEpoch) {
  for (auto interval : {LRSchedulerInterval::Step, LRSchedulerInterval::Epoch}) {
    const unsigned size = interval == LRSchedulerInterval::Step ? 3 : 1;
    TempDir tmp;
    auto whole_cb = step_lr(size, 0.5, interval);
    Loop whole({whole_cb});
    whole.begin();
    whole.train_until(100);
    ASSERT_LE(whole.first_lrs().back(), kB / 4);  // it did decay, several times

    for (std::int64_t stop : {7, 10}) {  // mid-epoch and at an epoch end
      Loop a({step_lr(size, 0.5, interval)});
      a.begin();
      a.train_until(stop);
      a.save(tmp / ("ckpt" + std::to_string(stop)));
      auto cb = step_lr(size, 0.5, interval);
      Loop b({cb});
      b.begin(tmp / ("ckpt" + std::to_string(stop)));
      b.train_until(100);
      auto lrs = a.first_lrs();
      const auto rest = b.first_lrs();
      lrs.insert(lrs.end(), rest.begin(), rest.end());
      EXPECT_EQ(lrs, whole.first_lrs()) << stop;
      EXPECT_EQ(cb->steps(), whole_cb->steps()) << stop;
    }
  }
}

TEST(LibtorchLRSchedulerAdapter, RefusesAReplayThatDoesNotGiveTheCheckpointsLr) {
  TempDir tmp;
  Loop a({step_lr(3, 0.5, LRSchedulerInterval::Step)});
  a.begin();
  a.train_until(9);
  a.save(tmp / "ckpt");
  Loop b({step_lr(2, 0.5, LRSchedulerInterval::Step)});  // another step size
  const auto msg = error_of<InputError>([&] { b.begin(tmp / "ckpt"); });
  EXPECT_NE(msg.find("9 step() calls"), std::string::npos) << msg;
  EXPECT_NE(msg.find("differs from the checkpointed run's"), std::string::npos) << msg;
}

TEST(NeverSilentResume, AScheduleWhoseStateTheCheckpointLacksIsRefused) {
  TempDir tmp;
  Loop a({});
  a.begin();
  a.train_until(6);
  a.save(tmp / "ckpt");
  for (std::shared_ptr<Callback> cb :
       {std::shared_ptr<Callback>(schedule("cosine")),
        std::shared_ptr<Callback>(step_lr(3, 0.5, LRSchedulerInterval::Step))}) {
    Loop b({cb});
    const auto msg = error_of<InputError>([&] { b.begin(tmp / "ckpt"); });
    EXPECT_NE(msg.find("holds no state for the callback '" + cb->name() + "'"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("start a fresh run"), std::string::npos) << msg;
  }
}

TEST(NeverSilentResume, ACheckpointWrittenWithAScheduleThisRunLacksIsRefused) {
  for (std::shared_ptr<Callback> cb :
       {std::shared_ptr<Callback>(schedule("cosine")),
        std::shared_ptr<Callback>(step_lr(3, 0.5, LRSchedulerInterval::Step))}) {
    TempDir tmp;
    Loop a({cb});
    a.begin();
    a.train_until(6);
    a.save(tmp / "ckpt");
    Loop b({});
    const auto msg = error_of<InputError>([&] { b.begin(tmp / "ckpt"); });
    EXPECT_NE(msg.find("written with the callback '" + cb->name() + "', which this run lacks"),
              std::string::npos)
        << msg;
  }
}

TEST(NeverSilentResume, AnLrChangedOutsideVigilIsReportedAsAWarning) {
  // A libtorch scheduler stepped by hand, outside any callback: the lr changes, nothing records
  // why. The resume goes on (the lr itself is restored) with one warning.
  TempDir tmp;
  Loop a({});
  a.begin();
  ::torch::optim::StepLR by_hand(*a.opt, 1, 0.5);
  a.train_until(5);
  by_hand.step();
  by_hand.step();  // lr 0.05 from step 5 on
  a.train_until(12);
  a.save(tmp / "ckpt");
  Loop b({});
  b.begin(tmp / "ckpt");
  ASSERT_EQ(b.ctx.warnings.size(), 1u);
  EXPECT_NE(b.ctx.warnings[0].find("changed during the checkpointed run (0.1 -> 0.05)"),
            std::string::npos)
      << b.ctx.warnings[0];
  EXPECT_DOUBLE_EQ(get_learning_rate(*b.opt), 0.05);

  // The same change with ReduceLROnPlateau's state in the checkpoint is explained: no warning.
  Loop c({std::make_shared<ReduceLROnPlateau>()});
  c.begin();
  c.train_until(5);
  set_learning_rate(*c.opt, 0.05);
  c.train_until(12);
  c.save(tmp / "ckpt2");
  Loop d({std::make_shared<ReduceLROnPlateau>()});
  d.begin(tmp / "ckpt2");
  EXPECT_TRUE(d.ctx.warnings.empty());
  // And a run whose lr never changed gets none either.
  Loop e({});
  e.begin();
  e.train_until(12);
  e.save(tmp / "ckpt3");
  Loop f({});
  f.begin(tmp / "ckpt3");
  EXPECT_TRUE(f.ctx.warnings.empty());
}
