// ProgressBar: the core ProgressDisplay fed from the training hooks.
#include "vigil/torch/progress_bar.hpp"

namespace vigil::torch {

ProgressBar::ProgressBar(ProgressBarOptions options, std::FILE* out)
    : options_(std::move(options)), display_(out, options_.display) {}

ProgressBar::ProgressBar(std::ostream& out, ProgressBarOptions options)
    : options_(std::move(options)), display_(out, options_.display) {}

void ProgressBar::on_epoch_begin(TrainContext& ctx, int epoch, const Logs&) {
  sums_.clear();
  batches_ = 0;
  if (ctx.val_every_n_steps > 0) display_.set_names(ctx.period_name(), "step", "steps");
  display_.on_epoch_begin(
      epoch, ctx.epochs > 0 ? std::optional<long>(ctx.epochs) : std::nullopt,
      ctx.steps_per_epoch > 0 ? std::optional<long>(ctx.steps_per_epoch) : std::nullopt,
      static_cast<long>(ctx.batch));
}

void ProgressBar::on_batch_end(TrainContext&, std::int64_t batch, const Logs& logs) {
  // A single batch's loss jumps around; the mean since the epoch (or the resume) began is what
  // Keras's progress bar shows too.
  ++batches_;
  for (const auto& [k, v] : logs) sums_[k] += v;
  Logs means;
  for (const auto& [k, v] : sums_) means[k] = v / static_cast<double>(batches_);
  display_.on_batch_end(static_cast<long>(batch), means);
}

void ProgressBar::on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
  const std::string note = options_.epoch_note ? options_.epoch_note(ctx, epoch) : std::string();
  display_.on_epoch_end(epoch, logs, note);
}

void ProgressBar::on_interrupt(TrainContext&) {
  display_.finish();
}

void ProgressBar::on_train_end(TrainContext&, const Logs&) {
  display_.finish();
}

}  // namespace vigil::torch
