// LRSchedule (the formula, its parser and the callback) and LibtorchLRScheduler (the adapter that
// replays a libtorch scheduler on resume).
#include "vigil/torch/lr_schedule.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>

#include "vigil/torch/optimizer_state.hpp"

namespace vigil::torch {

namespace {

constexpr const char* kValidSchedules = "constant, step:SIZE:GAMMA, cosine or linear";

std::vector<std::string_view> split_colons(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == ':') {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  try {
    std::size_t used = 0;
    const std::string str(s);
    const double v = std::stod(str, &used);
    if (used != str.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<double> group_lrs(const ::torch::optim::Optimizer& optimizer) {
  std::vector<double> lrs;
  for (const auto& g : optimizer.param_groups()) lrs.push_back(g.options().get_lr());
  return lrs;
}

void set_group_lrs(::torch::optim::Optimizer& optimizer, const std::vector<double>& lrs) {
  auto& groups = optimizer.param_groups();
  for (std::size_t i = 0; i < groups.size() && i < lrs.size(); ++i)
    groups[i].options().set_lr(lrs[i]);
}

}  // namespace

std::string LRScheduleSpec::to_string() const {
  switch (kind) {
    case LRScheduleKind::Constant:
      return "constant";
    case LRScheduleKind::Step:
      return fmt::format("step:{}:{}", step_size, gamma);
    case LRScheduleKind::Cosine:
      return "cosine";
    case LRScheduleKind::Linear:
      return "linear";
  }
  return "constant";
}

void LRScheduleSpec::validate() const {
  if (kind != LRScheduleKind::Step) return;
  if (step_size < 1)
    throw OptionError(
        fmt::format("lr schedule step:SIZE:GAMMA: SIZE must be >= 1, got {}", step_size));
  if (!(gamma > 0.0 && gamma <= 1.0))
    throw OptionError(
        fmt::format("lr schedule step:SIZE:GAMMA: GAMMA must be in (0, 1], got {}", gamma));
}

LRScheduleSpec parse_lr_schedule(std::string_view text) {
  const auto parts = split_colons(text);
  const std::string_view name = parts.front();
  LRScheduleSpec spec;
  if (name == "step") {
    if (parts.size() != 3)
      throw OptionError(fmt::format(
          "lr schedule '{}': write step:SIZE:GAMMA, e.g. step:100:0.5 (lr *= GAMMA every SIZE "
          "steps)",
          text));
    const auto size = parse_int(parts[1]);
    if (!size)
      throw OptionError(fmt::format("lr schedule '{}': SIZE must be a whole number >= 1, not '{}'",
                                    text, parts[1]));
    const auto gamma = parse_double(parts[2]);
    if (!gamma)
      throw OptionError(fmt::format("lr schedule '{}': GAMMA must be a number in (0, 1], not '{}'",
                                    text, parts[2]));
    if (*size < 1)
      throw OptionError(fmt::format("lr schedule '{}': SIZE must be >= 1, got {}", text, *size));
    if (!(*gamma > 0.0 && *gamma <= 1.0))
      throw OptionError(
          fmt::format("lr schedule '{}': GAMMA must be in (0, 1], got {}", text, *gamma));
    return LRScheduleSpec{LRScheduleKind::Step, *size, *gamma};
  }
  if (parts.size() == 1) {
    if (name == "constant") return spec;
    if (name == "cosine") return LRScheduleSpec{LRScheduleKind::Cosine, 1, 1.0};
    if (name == "linear") return LRScheduleSpec{LRScheduleKind::Linear, 1, 1.0};
  }
  throw OptionError(fmt::format("unknown lr schedule '{}' (valid: {})", text, kValidSchedules));
}

double scheduled_lr(const LRScheduleSpec& schedule, double base_lr, double final_lr,
                    std::int64_t warmup_steps, std::int64_t total_steps, std::int64_t step) {
  const double b = base_lr;
  if (step < warmup_steps)
    return b * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const std::int64_t after = step - warmup_steps;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps));
  const double p = std::clamp(static_cast<double>(after) / span, 0.0, 1.0);
  switch (schedule.kind) {
    case LRScheduleKind::Constant:
      return b;
    case LRScheduleKind::Step:
      return b * std::pow(schedule.gamma, static_cast<double>(after / schedule.step_size));
    case LRScheduleKind::Cosine:
      return final_lr + (b - final_lr) * (1.0 + std::cos(std::numbers::pi * p)) / 2.0;
    case LRScheduleKind::Linear:
      return b + (final_lr - b) * p;
  }
  return b;
}

void LRScheduleOptions::validate() const {
  schedule.validate();
  if (warmup_steps < 0)
    throw OptionError(fmt::format("LRSchedule warmup_steps must be >= 0, got {}", warmup_steps));
  if (total_steps < 0)
    throw OptionError(fmt::format("LRSchedule total_steps must be >= 0, got {}", total_steps));
  if (!(final_lr >= 0.0) || !std::isfinite(final_lr))
    throw OptionError(fmt::format("LRSchedule final_lr must be >= 0, got {}", final_lr));
  if (base_lr && !(*base_lr > 0.0 && std::isfinite(*base_lr)))
    throw OptionError(fmt::format("LRSchedule base_lr must be > 0, got {}", *base_lr));
}

LRSchedule::LRSchedule(LRScheduleOptions options) : options_(std::move(options)) {
  options_.validate();
}

double LRSchedule::lr_at(std::int64_t step) const {
  return scheduled_lr(options_.schedule, base_lr_, options_.final_lr, options_.warmup_steps,
                      total_steps_, step);
}

void LRSchedule::apply(TrainContext& ctx) const {
  if (ctx.optimizer != nullptr) set_learning_rate(*ctx.optimizer, lr_at(ctx.global_step));
}

void LRSchedule::on_train_begin(TrainContext& ctx, const Logs&) {
  if (ctx.optimizer == nullptr) throw OptionError("LRSchedule needs an optimizer in the context");
  // On a resume these are replaced by the checkpoint's in load_state().
  base_lr_ = options_.base_lr.value_or(get_learning_rate(*ctx.optimizer));
  total_steps_ = options_.total_steps > 0 ? options_.total_steps : ctx.planned_steps();
  if (options_.schedule.needs_total() && total_steps_ <= 0)
    throw OptionError(fmt::format(
        "the {} lr schedule needs the number of steps it decays over, and this run's is not known "
        "(endless data): set max_steps, or LRScheduleOptions::total_steps",
        options_.schedule.to_string()));
  apply(ctx);
}

void LRSchedule::on_resume(TrainContext& ctx) {
  apply(ctx);
}

void LRSchedule::on_batch_begin(TrainContext& ctx, std::int64_t, const Logs&) {
  apply(ctx);
}

void LRSchedule::on_before_optimizer_step(TrainContext& ctx) {
  apply(ctx);
}

nlohmann::json LRSchedule::state() const {
  return {{"schedule", options_.schedule.to_string()},
          {"warmup_steps", options_.warmup_steps},
          {"final_lr", options_.final_lr},
          {"total_steps", total_steps_},
          {"base_lr", base_lr_}};
}

void LRSchedule::load_state(const nlohmann::json& state) {
  std::string schedule;
  std::int64_t warmup = 0;
  std::int64_t total = 0;
  double final_lr = 0;
  double base = 0;
  try {
    schedule = state.at("schedule").get<std::string>();
    warmup = state.at("warmup_steps").get<std::int64_t>();
    final_lr = state.at("final_lr").get<double>();
    total = state.at("total_steps").get<std::int64_t>();
    base = state.at("base_lr").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("LRSchedule state is malformed ({})", e.what()));
  }
  // Every difference at once, so that one retry fixes them all.
  std::string diffs;
  auto differs = [&](const char* what, const std::string& theirs, const std::string& ours) {
    diffs += fmt::format("{}{} {} (this run: {})", diffs.empty() ? "" : "; ", what, theirs, ours);
  };
  if (schedule != options_.schedule.to_string())
    differs("schedule", schedule, options_.schedule.to_string());
  if (warmup != options_.warmup_steps)
    differs("warmup_steps", std::to_string(warmup), std::to_string(options_.warmup_steps));
  if (final_lr != options_.final_lr)
    differs("final_lr", fmt::format("{}", final_lr), fmt::format("{}", options_.final_lr));
  if (options_.total_steps > 0 && total != options_.total_steps)
    differs("total_steps", std::to_string(total), std::to_string(options_.total_steps));
  if (options_.base_lr && base != *options_.base_lr)
    differs("base_lr", fmt::format("{}", base), fmt::format("{}", *options_.base_lr));
  if (!diffs.empty())
    throw InputError(fmt::format(
        "its learning-rate schedule differs from this run's: {}; resume with the checkpoint's "
        "schedule, or start a fresh run",
        diffs));
  base_lr_ = base;
  total_steps_ = total;
}

LibtorchLRScheduler::LibtorchLRScheduler(LibtorchLRSchedulerOptions options)
    : options_(std::move(options)) {
  if (!options_.make) throw OptionError("LibtorchLRScheduler needs a `make` function");
  if (options_.name.empty()) throw OptionError("LibtorchLRScheduler needs a name");
}

void LibtorchLRScheduler::on_train_begin(TrainContext& ctx, const Logs&) {
  if (ctx.optimizer == nullptr)
    throw OptionError("LibtorchLRScheduler needs an optimizer in the context");
  base_lrs_ = group_lrs(*ctx.optimizer);
  scheduler_ = options_.make(*ctx.optimizer);
  if (!scheduler_) throw OptionError("LibtorchLRScheduler: `make` returned no scheduler");
  steps_ = 0;
}

void LibtorchLRScheduler::on_resume(TrainContext& ctx) {
  // load_state() gave steps_ and base_lrs_; the optimizer holds the checkpoint's lrs.
  const auto restored = group_lrs(*ctx.optimizer);
  const std::int64_t count = steps_;
  set_group_lrs(*ctx.optimizer, base_lrs_);
  scheduler_ = options_.make(*ctx.optimizer);
  for (std::int64_t i = 0; i < count; ++i) scheduler_->step();
  const auto replayed = group_lrs(*ctx.optimizer);
  for (std::size_t i = 0; i < replayed.size() && i < restored.size(); ++i) {
    const double tol = 1e-12 * std::max(std::abs(restored[i]), 1e-300);
    if (std::abs(replayed[i] - restored[i]) > tol)
      throw InputError(fmt::format(
          "cannot resume the libtorch scheduler '{}': {} step() calls from the base lr {} give lr "
          "{}, but the checkpoint's optimizer has lr {}; the scheduler differs from the "
          "checkpointed run's (another step size or gamma?) or something else changed the lr "
          "(another lr callback)",
          options_.name, count, base_lrs_[i], replayed[i], restored[i]));
  }
  set_group_lrs(*ctx.optimizer, restored);  // bit-exact with the checkpoint
}

void LibtorchLRScheduler::step() {
  if (!scheduler_) return;
  scheduler_->step();
  ++steps_;
}

void LibtorchLRScheduler::on_batch_end(TrainContext&, std::int64_t, const Logs&) {
  if (options_.interval == LRSchedulerInterval::Step) step();
}

void LibtorchLRScheduler::on_epoch_end(TrainContext&, int, const Logs&) {
  if (options_.interval == LRSchedulerInterval::Epoch) step();
}

nlohmann::json LibtorchLRScheduler::state() const {
  return {{"steps", steps_},
          {"interval", options_.interval == LRSchedulerInterval::Step ? "step" : "epoch"},
          {"base_lrs", base_lrs_}};
}

void LibtorchLRScheduler::load_state(const nlohmann::json& state) {
  try {
    const auto interval = state.at("interval").get<std::string>();
    const char* ours = options_.interval == LRSchedulerInterval::Step ? "step" : "epoch";
    if (interval != ours)
      throw InputError(fmt::format(
          "the libtorch scheduler '{}' was stepped every {} in the checkpointed run, every {} in "
          "this one; resume with the same interval, or start a fresh run",
          options_.name, interval, ours));
    const auto base = state.at("base_lrs").get<std::vector<double>>();
    if (base.size() != base_lrs_.size())
      throw InputError(fmt::format(
          "the libtorch scheduler '{}' saved {} param groups' lrs, this optimizer has {}",
          options_.name, base.size(), base_lrs_.size()));
    steps_ = state.at("steps").get<std::int64_t>();
    base_lrs_ = base;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("LibtorchLRScheduler state is malformed ({})", e.what()));
  }
}

}  // namespace vigil::torch
