// The training loop: seeded epoch order, batches from any position, metrics, callbacks.
#include "vigil/torch/trainer.hpp"

#include <fmt/core.h>

#include <chrono>

#include "trainer_distributed.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/rng_state.hpp"

namespace vigil::torch {

namespace {

bool is_classification(const ::torch::Tensor& targets) {
  return targets.defined() && targets.scalar_type() == ::torch::kLong;
}

std::int64_t count_correct(const ::torch::Tensor& outputs, const ::torch::Tensor& targets) {
  return outputs.argmax(1).eq(targets).sum().item<std::int64_t>();
}

nlohmann::json loop_state(double sum_loss, std::int64_t correct, std::int64_t seen) {
  return {{"sum_loss", sum_loss}, {"correct", correct}, {"seen", seen}};
}

}  // namespace

LossFn default_loss(const ::torch::Tensor& targets) {
  if (is_classification(targets))
    return [](const ::torch::Tensor& out, const ::torch::Tensor& t) {
      return ::torch::nn::functional::cross_entropy(out, t);
    };
  return [](const ::torch::Tensor& out, const ::torch::Tensor& t) {
    return ::torch::mse_loss(out, t);
  };
}

void TrainerOptions::validate() const {
  if (epochs < 0) throw OptionError(fmt::format("epochs must be >= 0, got {}", epochs));
  if (batch_size < 1) throw OptionError(fmt::format("batch_size must be >= 1, got {}", batch_size));
  if (eval_batch_size < 1)
    throw OptionError(fmt::format("eval_batch_size must be >= 1, got {}", eval_batch_size));
  if (threads < 0) throw OptionError(fmt::format("threads must be >= 0, got {}", threads));
}

Logs evaluate(const Model& model, const Dataset& data, std::int64_t batch_size,
              const LossFn& loss) {
  if (!model.module || !model.forward) throw OptionError("evaluate: the model is empty");
  if (batch_size < 1) throw OptionError("evaluate: batch_size must be >= 1");
  const std::int64_t n = data.size();
  if (n == 0) throw InputError("evaluate: the data set has no examples");
  const LossFn fn = loss ? loss : default_loss(data.targets);
  const bool classification = is_classification(data.targets);
  const bool was_training = model.module->is_training();
  model.module->eval();
  ::torch::NoGradGuard no_grad;
  double sum_loss = 0;
  std::int64_t correct = 0;
  for (std::int64_t begin = 0; begin < n; begin += batch_size) {
    const std::int64_t end = std::min(n, begin + batch_size);
    auto x = data.features.slice(0, begin, end);
    auto y = data.targets.slice(0, begin, end);
    auto out = model.forward(x);
    sum_loss += fn(out, y).item<double>() * static_cast<double>(end - begin);
    if (classification) correct += count_correct(out, y);
  }
  model.module->train(was_training);
  Logs logs{{"loss", sum_loss / static_cast<double>(n)}};
  if (classification) logs["accuracy"] = static_cast<double>(correct) / static_cast<double>(n);
  return logs;
}

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) {
  options_.validate();
}

Trainer& Trainer::add_callback(std::shared_ptr<Callback> callback) {
  callbacks_.add(std::move(callback));
  return *this;
}

FitResult Trainer::fit(const Model& model, ::torch::optim::Optimizer& optimizer,
                       const Dataset& train, const Dataset& validation) {
  using Clock = std::chrono::steady_clock;
  if (!model.module || !model.forward) throw OptionError("fit: the model is empty");
  const std::int64_t n = train.size();
  if (n == 0) throw InputError("fit: the training data has no examples");
  if (options_.threads > 0) ::torch::set_num_threads(options_.threads);

  const std::int64_t bs = options_.batch_size;
  const LossFn loss = options_.loss ? options_.loss : default_loss(train.targets);
  const bool classification = is_classification(train.targets);

  TrainContext ctx;
  ctx.model = model.module;
  ctx.optimizer = &optimizer;
  ctx.epochs = options_.epochs;
  ctx.steps_per_epoch = (n + bs - 1) / bs;
  ctx.extra = options_.extra;
  ctx.loop = loop_state(0, 0, 0);
  model.module->train();

  ProcessGroup* const dist = options_.distributed.get();  // null: training alone
  callbacks_.on_train_begin(ctx);
  if (dist) detail::agree_on_start(*dist, ctx, callbacks_);
  if (ctx.resumed_from && ctx.batch > ctx.steps_per_epoch)
    throw InputError(fmt::format(
        "cannot resume from {}: it stopped at batch {} of an epoch that now has {} batches (the "
        "training data or batch size changed)",
        ctx.resumed_from->string(), ctx.batch, ctx.steps_per_epoch));

  std::optional<std::string> agreed_interrupt;  // data-parallel: agreed in the previous step
  while (ctx.epoch < options_.epochs && !ctx.stop_training) {
    const int epoch = ctx.epoch;
    const auto started = Clock::now();
    double sum_loss = 0;
    std::int64_t correct = 0;
    std::int64_t seen = 0;
    if (ctx.batch > 0) {
      // Resumed in the middle of this epoch: carry on with the sums of the batches already run.
      sum_loss = ctx.loop.at("sum_loss").get<double>();
      correct = ctx.loop.at("correct").get<std::int64_t>();
      seen = ctx.loop.at("seen").get<std::int64_t>();
    }
    ctx.loop = loop_state(sum_loss, correct, seen);
    callbacks_.on_epoch_begin(ctx, epoch);

    BatchIterator batches(train, epoch_order(n, options_.seed, epoch, options_.shuffle), bs,
                          std::min(ctx.batch * bs, n));
    while (!batches.done()) {
      if (options_.interrupt || agreed_interrupt) {
        if (auto reason = dist ? agreed_interrupt : options_.interrupt()) {
          ctx.request_stop(*reason);
          callbacks_.on_interrupt(ctx);
          break;
        }
      }
      Batch b = batches.next();
      callbacks_.on_batch_begin(ctx, b.index);
      optimizer.zero_grad();
      std::int64_t count = 0;
      double batch_loss = 0;
      std::int64_t c = 0;
      if (dist) {
        auto step =
            detail::data_parallel_step(*dist, model, loss, b, classification, options_.interrupt);
        optimizer.step();
        count = step.count;
        batch_loss = step.loss;
        c = step.correct;
        agreed_interrupt = std::move(step.interrupt);
      } else {
        auto out = model.forward(b.features);
        auto l = loss(out, b.targets);
        l.backward();
        optimizer.step();
        count = b.features.size(0);
        batch_loss = l.item<double>();
        if (classification) c = count_correct(out.detach(), b.targets);
      }

      Logs batch_logs{{"loss", batch_loss}};
      sum_loss += batch_loss * static_cast<double>(count);
      seen += count;
      if (classification) {
        correct += c;
        batch_logs["accuracy"] = static_cast<double>(c) / static_cast<double>(count);
      }
      ctx.batch = b.index + 1;
      ++ctx.global_step;
      ctx.loop = loop_state(sum_loss, correct, seen);
      callbacks_.on_batch_end(ctx, b.index, batch_logs);
      // As Keras: a stop asked after a batch ends the epoch there; it still validates and ends.
      if (ctx.stop_training) break;
    }
    if (ctx.interrupted) break;

    Logs logs{{"loss", seen > 0 ? sum_loss / static_cast<double>(seen) : 0.0}};
    if (classification)
      logs["accuracy"] = seen > 0 ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    if (validation.size() > 0) {
      Logs val;
      const Logs metrics =
          dist ? detail::evaluate_sharded(*dist, model, validation, options_.eval_batch_size, loss)
               : evaluate(model, validation, options_.eval_batch_size, loss);
      for (const auto& [k, v] : metrics) val["val_" + k] = v;
      callbacks_.on_validation_end(ctx, val);
      logs.insert(val.begin(), val.end());
    }
    logs["lr"] = get_learning_rate(optimizer);
    logs["seconds"] = std::chrono::duration<double>(Clock::now() - started).count();
    // The slowest rank's time: every rank's logs, hence every rule's decision, are the same.
    if (dist) logs["seconds"] = dist->all_reduce_max({logs["seconds"]})[0];
    callbacks_.on_epoch_end(ctx, epoch, logs);
    if (dist) detail::agree_on_stop(*dist, ctx);

    ctx.epoch = epoch + 1;
    ctx.batch = 0;
    ctx.epoch_complete = false;
    ctx.loop = loop_state(0, 0, 0);
  }

  FitResult result;
  result.interrupted = ctx.interrupted;
  result.stopped_early = ctx.stop_training && !ctx.interrupted;
  if (!ctx.stop_training) {
    ctx.stop_reason = fmt::format("it completed all {} epochs", options_.epochs);
  }
  const Logs last = ctx.history.empty() ? Logs{} : ctx.history.back().logs;
  callbacks_.on_train_end(ctx, last);

  result.history = ctx.history;
  result.stop_reason = ctx.stop_reason;
  result.epochs_run = static_cast<int>(ctx.history.size());
  result.global_step = ctx.global_step;
  result.resumed_from = ctx.resumed_from;
  return result;
}

}  // namespace vigil::torch
