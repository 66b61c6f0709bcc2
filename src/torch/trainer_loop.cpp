// Trainer::run, the loop every fit() overload shares: periods of an epoch or of n steps, optimizer
// steps of one or more micro-batches, clipping, validation, callbacks, max_steps and interrupts.
#include <fmt/core.h>

#include <chrono>

#include "epochs_reason.hpp"
#include "trainer_distributed.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace vigil::torch {

namespace {

/// Sums of the step logs of one period, weighted by example counts.
struct PeriodSums {
  Logs sums;
  std::int64_t seen = 0;
  /// A resume changed the batch size or accumulation inside this epoch: its step count was
  /// counted in other steps, so the epoch lasts to the end of its pass, not steps_per_epoch.
  bool until_pass_end = false;

  void add(const Logs& logs, std::int64_t count) {
    for (const auto& [k, v] : logs) sums[k] += v * static_cast<double>(count);
    seen += count;
  }
  Logs means() const {
    Logs out{{"loss", 0.0}};
    for (const auto& [k, v] : sums) out[k] = seen > 0 ? v / static_cast<double>(seen) : 0.0;
    return out;
  }
  nlohmann::json to_json() const {
    nlohmann::json j{{"sums", logs_to_json(sums)}, {"seen", seen}};
    if (until_pass_end) j["until_pass_end"] = true;
    return j;
  }
  static PeriodSums from_json(const nlohmann::json& j) {
    PeriodSums p;
    p.until_pass_end = j.value("until_pass_end", false);
    if (j.contains("sums")) {
      p.sums = logs_from_json(j.at("sums"));
      p.seen = j.at("seen").get<std::int64_t>();
    } else if (j.contains("sum_loss")) {
      // Written before metrics were generic: a loss sum and, for classifiers, a correct count.
      p.seen = j.at("seen").get<std::int64_t>();
      p.sums["loss"] = j.at("sum_loss").get<double>();
      if (j.contains("correct"))
        p.sums["accuracy"] = static_cast<double>(j.at("correct").get<std::int64_t>());
    }
    return p;
  }
};

/// The loop's state between calls: the context, the options and the data.
class Loop {
 public:
  Loop(const TrainerOptions& options, CallbackList& callbacks, TrainContext& ctx,
       detail::TrainSource& train)
      : options_(options),
        callbacks_(callbacks),
        ctx_(ctx),
        train_(train),
        until_pass_end_(!by_steps() && (ctx.overridden.count("batch_size") > 0 ||
                                        ctx.overridden.count("accumulate") > 0)) {}

  /// One period (an epoch, or val_every_n_steps steps): returns false if training was
  /// interrupted inside it (no validation, no on_epoch_end).
  bool run_period(const detail::ValidateFn& validate);

 private:
  bool by_steps() const { return ctx_.val_every_n_steps > 0; }
  bool steps_done() const { return ctx_.max_steps > 0 && ctx_.global_step >= ctx_.max_steps; }
  /// The next batch; in step cadence a pass that ends starts the next one.
  bool fetch();
  /// One optimizer step; false when the pass ended before its first micro-batch.
  bool step(PeriodSums& sums);

  const TrainerOptions& options_;
  CallbackList& callbacks_;
  TrainContext& ctx_;
  detail::TrainSource& train_;
  bool pass_ended_ = false;
  bool until_pass_end_ = false;
};

bool Loop::fetch() {
  if (train_.fetch()) return true;
  if (!by_steps()) {
    pass_ended_ = true;
    return false;
  }
  ++ctx_.data_epoch;
  train_.set_epoch(ctx_.data_epoch);
  if (train_.fetch()) return true;
  throw InputError(fmt::format("the training data yields no batches in pass {}", ctx_.data_epoch));
}

bool Loop::step(PeriodSums& sums) {
  auto& optimizer = *ctx_.optimizer;
  const std::int64_t index = ctx_.batch;
  const bool weighted = ctx_.accumulate > 1;
  if (!fetch()) return false;  // the pass ended exactly at a step boundary
  callbacks_.on_batch_begin(ctx_, index);
  optimizer.zero_grad();
  PeriodSums step_sums;
  for (int micro = 0; micro < ctx_.accumulate; ++micro) {
    if (micro > 0 && !fetch()) break;
    StepResult r;
    try {
      r = train_.run(weighted);
    } catch (const InputError& e) {
      throw InputError(fmt::format("training, {} {}, step {}: {}", ctx_.period_name(), ctx_.epoch,
                                   ctx_.global_step, e.what()));
    } catch (const c10::Error& e) {
      std::string what(e.what());
      throw InputError(fmt::format("training, {} {}, step {}: the step failed: {}",
                                   ctx_.period_name(), ctx_.epoch, ctx_.global_step,
                                   what.substr(0, what.find('\n'))));
    }
    step_sums.add(r.logs, r.count);
    callbacks_.on_after_backward(ctx_);
  }
  if (weighted) {
    ::torch::NoGradGuard no_grad;
    const double inv = 1.0 / static_cast<double>(step_sums.seen);
    // Each tensor once: a tied weight listed twice would be rescaled twice.
    for (auto& p : unique_parameters(*ctx_.model))
      if (p.grad().defined()) p.mutable_grad().mul_(inv);
  }
  callbacks_.on_before_optimizer_step(ctx_);
  Logs logs = step_sums.means();
  if (options_.clip_grad_norm > 0) {
    logs["grad_norm"] = ::torch::nn::utils::clip_grad_norm_(unique_parameters(*ctx_.model),
                                                            options_.clip_grad_norm);
  }
  optimizer.step();
  for (const auto& [k, v] : logs) sums.sums[k] += v * static_cast<double>(step_sums.seen);
  sums.seen += step_sums.seen;
  ctx_.batch = index + 1;
  ++ctx_.global_step;
  ctx_.loop = sums.to_json();
  callbacks_.on_batch_end(ctx_, index, logs);
  return true;
}

bool Loop::run_period(const detail::ValidateFn& validate) {
  using Clock = std::chrono::steady_clock;
  const int epoch = ctx_.epoch;
  const auto started = Clock::now();
  // Resumed in the middle of this period: carry on with the sums of the steps already run.
  PeriodSums sums = ctx_.batch > 0 ? PeriodSums::from_json(ctx_.loop) : PeriodSums{};
  if (until_pass_end_) sums.until_pass_end = true;
  until_pass_end_ = false;
  if (!by_steps()) {
    ctx_.data_epoch = epoch;
    if (ctx_.batch == 0) train_.set_epoch(epoch);
  }
  pass_ended_ = false;
  ctx_.loop = sums.to_json();
  callbacks_.on_epoch_begin(ctx_, epoch);
  const auto interrupt = train_.interrupt ? train_.interrupt : options_.interrupt;
  // steps_per_epoch is exact for a source that knows its batches, and the period's length when
  // validating by steps; a pass that ends sooner ends the epoch too.
  while (!steps_done() && (ctx_.batch < ctx_.steps_per_epoch || sums.until_pass_end)) {
    if (interrupt) {
      if (auto reason = interrupt()) {
        ctx_.request_stop(*reason);
        callbacks_.on_interrupt(ctx_);
        return false;
      }
    }
    if (!step(sums)) break;
    // As Keras: a stop asked after a batch ends the epoch there; it still validates and ends.
    if (ctx_.stop_training || pass_ended_) break;
  }
  Logs logs = sums.means();
  if (validate) {
    callbacks_.on_validation_begin(ctx_);
    Logs val;
    for (const auto& [k, v] : validate()) val["val_" + k] = v;
    callbacks_.on_validation_end(ctx_, val);
    logs.insert(val.begin(), val.end());
  }
  logs["lr"] = get_learning_rate(*ctx_.optimizer);
  logs["seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
  // The slowest rank's time: every rank's logs, hence every rule's decision, are the same.
  if (auto* dist = options_.distributed.get())
    logs["seconds"] = dist->all_reduce_max({logs["seconds"]})[0];
  callbacks_.on_epoch_end(ctx_, epoch, logs);
  if (auto* dist = options_.distributed.get()) detail::agree_on_stop(*dist, ctx_);
  ctx_.epoch = epoch + 1;
  ctx_.batch = 0;
  ctx_.epoch_complete = false;
  ctx_.loop = PeriodSums{}.to_json();
  return true;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

FitResult Trainer::run(const std::shared_ptr<::torch::nn::Module>& module,
                       ::torch::optim::Optimizer& optimizer, detail::TrainSource& train,
                       const detail::ValidateFn& validate) {
  if (options_.threads > 0) ::torch::set_num_threads(options_.threads);
  TrainContext ctx;
  ctx.model = module;
  ctx.optimizer = &optimizer;
  ctx.extra = options_.extra;
  ctx.model_metadata = options_.model_metadata;
  ctx.data = train.resumable;
  ctx.accumulate = options_.accumulate;
  ctx.val_every_n_steps = options_.val_every_n_steps;
  const std::optional<std::int64_t> steps_per_pass =
      train.batches_per_epoch
          ? std::optional(ceil_div(*train.batches_per_epoch, options_.accumulate))
          : std::nullopt;
  ctx.max_steps = options_.max_steps;
  if (options_.val_every_n_steps > 0) {
    if (ctx.max_steps == 0) {
      if (!steps_per_pass)
        throw OptionError("an endless data source needs max_steps: nothing else ends the run");
      ctx.max_steps = options_.epochs * *steps_per_pass;
    }
    ctx.steps_per_epoch = options_.val_every_n_steps;
    ctx.epochs = static_cast<int>(ceil_div(ctx.max_steps, options_.val_every_n_steps));
  } else {
    if (!steps_per_pass)
      throw OptionError(
          "an endless data source has no epochs: validate every n steps (val_every_n_steps) and "
          "end by max_steps");
    ctx.steps_per_epoch = *steps_per_pass;
    ctx.epochs = options_.epochs;
  }
  ctx.loop = PeriodSums{}.to_json();
  ctx.run_options = options_.run_options;
  ctx.run_options["accumulate"] = options_.accumulate;
  ctx.run_options["val_every_n_steps"] = options_.val_every_n_steps;
  for (const auto& [name, value] : train.run_options.items()) ctx.run_options[name] = value;
  ctx.resume_overrides = options_.resume_overrides;
  module->train();

  callbacks_.on_train_begin(ctx);
  if (auto* dist = options_.distributed.get()) detail::agree_on_start(*dist, ctx, callbacks_);
  if (!ctx.data_restored) {
    if (ctx.resumed_from && train.legacy_position)
      // Checkpoints without a data position stood at (epoch, batch) of a DatasetSource.
      try {
        train.resumable->load_state({{"epoch", ctx.epoch}, {"batch", ctx.batch}});
      } catch (const InputError& e) {
        throw InputError(
            fmt::format("cannot resume from {}: {}", ctx.resumed_from->string(), e.what()));
      }
    else if (ctx.resumed_from && ctx.batch > 0)
      throw InputError(
          fmt::format("cannot resume from {}: it holds no position of the training data",
                      ctx.resumed_from->string()));
    else
      train.set_epoch(ctx.data_epoch);
  }

  Loop loop(options_, callbacks_, ctx, train);
  bool reached_max_steps = false;
  while (ctx.epoch < ctx.epochs && !ctx.stop_training) {
    if (ctx.max_steps > 0 && ctx.global_step >= ctx.max_steps) {
      reached_max_steps = true;
      break;
    }
    if (!loop.run_period(validate)) break;
  }
  if (ctx.max_steps > 0 && ctx.global_step >= ctx.max_steps && !ctx.stop_training)
    reached_max_steps = true;

  FitResult result;
  result.interrupted = ctx.interrupted;
  result.stopped_early = ctx.stop_training && !ctx.interrupted;
  if (!ctx.stop_training) {
    ctx.stop_reason = reached_max_steps && options_.max_steps > 0
                          ? fmt::format("it reached max_steps ({} steps)", ctx.max_steps)
                          : detail::completed_epochs_reason(ctx.epoch, options_.epochs);
  }
  const Logs last = ctx.history.empty() ? Logs{} : ctx.history.back().logs;
  callbacks_.on_train_end(ctx, last);

  result.history = ctx.history;
  result.stop_reason = ctx.stop_reason;
  result.epochs_run = static_cast<int>(ctx.history.size());
  result.global_step = ctx.global_step;
  result.resumed_from = ctx.resumed_from;
  result.warnings = ctx.warnings;
  return result;
}

}  // namespace vigil::torch
