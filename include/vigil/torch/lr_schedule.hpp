// Learning-rate schedules whose state is checkpointed: LRSchedule (warm-up, then constant, step,
// cosine or linear decay, computed from the optimizer step) and LibtorchLRScheduler (an adapter
// that steps one of libtorch's own torch::optim::LRScheduler subclasses and resumes it exactly).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/optim/schedulers/lr_scheduler.h>

#include "vigil/setter.hpp"
#include "vigil/torch/callback.hpp"

namespace vigil::torch {

/// The shape of the decay after the warm-up.
enum class LRScheduleKind { Constant, Step, Cosine, Linear };

/// A schedule as the text `constant`, `step:SIZE:GAMMA`, `cosine` or `linear` describes it.
struct LRScheduleSpec {
  LRScheduleKind kind = LRScheduleKind::Constant;
  /// Step: the lr is multiplied by gamma every step_size optimizer steps after the warm-up.
  std::int64_t step_size = 1;
  double gamma = 1.0;

  /// The text parse_lr_schedule() reads back (e.g. "step:100:0.5").
  std::string to_string() const;
  /// Throws OptionError for step_size < 1 or gamma outside (0, 1].
  void validate() const;
  /// True for the kinds that need the total number of steps (cosine, linear).
  bool needs_total() const {
    return kind == LRScheduleKind::Cosine || kind == LRScheduleKind::Linear;
  }
  bool operator==(const LRScheduleSpec&) const = default;
};

/// Parses `constant|step:SIZE:GAMMA|cosine|linear`; throws one OptionError per bad value
/// (SIZE must be a whole number >= 1, GAMMA a number in (0, 1], an unknown name lists the valid
/// ones).
LRScheduleSpec parse_lr_schedule(std::string_view text);

/// The learning rate of the optimizer step `step` (0-based: the steps taken before this one) for
/// base lr B, final lr F, warm-up W steps and total T steps:
///   warm-up (s < W):  B * (s + 1) / W      (the first step is not wasted at lr 0; step W-1 uses B)
///   then, with p = clamp((s - W) / max(1, T - W), 0, 1):
///     constant:          B
///     step:SIZE:GAMMA:   B * GAMMA^floor((s - W) / SIZE)
///     cosine:            F + (B - F) * (1 + cos(pi * p)) / 2
///     linear:            B + (F - B) * p
/// so for s >= T cosine and linear stay at F.
///
/// Compared with the usual references: HF transformers' get_cosine_schedule_with_warmup warms up
/// as B * s / W (lr 0 at the first step) and decays to 0; nanoGPT's get_lr (train.py) warms up as
/// B * s / W too (later versions B * (s + 1) / (W + 1)), then decays from B to min_lr with
/// p = (s - W) / (T - W) and holds min_lr after T. Ours never wastes the first step at lr 0 and
/// reaches B exactly at the last warm-up step W-1 (not one step later); F plays nanoGPT's min_lr.
double scheduled_lr(const LRScheduleSpec& schedule, double base_lr, double final_lr,
                    std::int64_t warmup_steps, std::int64_t total_steps, std::int64_t step);

/// Options of LRSchedule.
struct LRScheduleOptions {
  /// The decay after the warm-up (default constant).
  LRScheduleSpec schedule;
  /// Optimizer steps of linear warm-up from B/W to B; 0 = none (default 0).
  std::int64_t warmup_steps = 0;
  /// The lr cosine and linear decay to, F; must be >= 0 (default 0).
  double final_lr = 0.0;
  /// T, the step where cosine/linear reach final_lr; 0 = ctx.planned_steps() at on_train_begin
  /// (default 0). Cosine and linear with no known total are refused.
  std::int64_t total_steps = 0;
  /// B; unset = the optimizer's lr when a fresh run begins (after a resume the checkpoint's base
  /// is used, since the optimizer's lr is then already decayed) (default unset).
  std::optional<double> base_lr;

  VIGIL_SETTER(schedule)
  VIGIL_SETTER(warmup_steps)
  VIGIL_SETTER(final_lr)
  VIGIL_SETTER(total_steps)
  VIGIL_SETTER(base_lr)

  /// Throws OptionError for a bad schedule, negative warmup_steps/total_steps/final_lr, or a
  /// base_lr that is not > 0.
  void validate() const;
};

/// Sets every param group's lr to scheduled_lr(ctx.global_step) before each optimizer step (in
/// on_before_optimizer_step, and in on_batch_begin for loops that do not call it yet: both give
/// the same value), and at on_train_begin/on_resume so that the lr logged before the first step is
/// right. Its state (base lr, resolved total, parameters) is required to resume: see
/// Callback::state_required_on_resume.
class LRSchedule : public Callback {
 public:
  explicit LRSchedule(LRScheduleOptions options = {});
  std::string name() const override { return "lr_schedule"; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_resume(TrainContext& ctx) override;
  void on_batch_begin(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_before_optimizer_step(TrainContext& ctx) override;
  /// {"schedule", "warmup_steps", "final_lr", "total_steps" (resolved), "base_lr" (resolved)}.
  nlohmann::json state() const override;
  /// Throws InputError naming every parameter in which the checkpoint's schedule differs from
  /// this run's options.
  void load_state(const nlohmann::json& state) override;
  bool state_required_on_resume() const override { return true; }
  bool changes_learning_rate() const override { return true; }

  /// The lr of optimizer step `step` with the resolved base and total (after on_train_begin).
  double lr_at(std::int64_t step) const;
  double base_lr() const { return base_lr_; }
  std::int64_t total_steps() const { return total_steps_; }

 private:
  void apply(TrainContext& ctx) const;
  LRScheduleOptions options_;
  double base_lr_ = 0;
  std::int64_t total_steps_ = 0;
};

/// When LibtorchLRScheduler calls the scheduler's step().
enum class LRSchedulerInterval {
  Step,   ///< after every optimizer step (on_batch_end)
  Epoch,  ///< after every epoch (on_epoch_end; a validation period with val_every_n_steps)
};

/// Makes a fresh libtorch scheduler on the optimizer, e.g.
/// `[](auto& o) { return std::make_unique<torch::optim::StepLR>(o, 30, 0.1); }`.
using LRSchedulerFactory =
    std::function<std::unique_ptr<::torch::optim::LRScheduler>(::torch::optim::Optimizer&)>;

/// Options of LibtorchLRScheduler.
struct LibtorchLRSchedulerOptions {
  /// Builds the scheduler; required (default none).
  LRSchedulerFactory make;
  /// When to step it (default Step).
  LRSchedulerInterval interval = LRSchedulerInterval::Step;
  /// The callback's name (its checkpoint key) (default "libtorch_lr_scheduler").
  std::string name = "libtorch_lr_scheduler";

  VIGIL_SETTER(make)
  VIGIL_SETTER(interval)
  VIGIL_SETTER(name)
};

/// Steps a libtorch LRScheduler built by `make` at on_train_begin. libtorch keeps the scheduler's
/// step count private to it (no way to set it), so a resume builds a fresh one, resets the lrs to
/// the base lrs saved at the fresh start and replays step() as many times as the checkpoint's
/// count: this works for every subclass through the public API alone, costs only lr arithmetic,
/// and re-derives the lr, which must equal the checkpoint's optimizer lr (else InputError: the
/// scheduler or something else changing the lr differs from the checkpointed run).
class LibtorchLRScheduler : public Callback {
 public:
  explicit LibtorchLRScheduler(LibtorchLRSchedulerOptions options);
  std::string name() const override { return options_.name; }
  void on_train_begin(TrainContext& ctx, const Logs& logs) override;
  void on_resume(TrainContext& ctx) override;
  void on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) override;
  void on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) override;
  /// {"steps", "interval", "base_lrs"}.
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  bool state_required_on_resume() const override { return true; }
  bool changes_learning_rate() const override { return true; }

  /// step() calls made on the scheduler since the run began (replayed ones included).
  std::int64_t steps() const { return steps_; }

 private:
  void step();
  LibtorchLRSchedulerOptions options_;
  std::unique_ptr<::torch::optim::LRScheduler> scheduler_;
  std::vector<double> base_lrs_;
  std::int64_t steps_ = 0;
};

}  // namespace vigil::torch
