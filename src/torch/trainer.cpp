// The training loop: periods (epochs or n steps), micro-batches, clipping, validation, callbacks.
#include "vigil/torch/trainer.hpp"

#include <fmt/core.h>

#include "trainer_distributed.hpp"
#include "vigil/torch/dataset_source.hpp"

namespace vigil::torch {

namespace {

bool is_classification(const ::torch::Tensor& targets) {
  return targets.defined() && targets.scalar_type() == ::torch::kLong;
}

std::string shape_of(const ::torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d > 0 ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

std::string first_line(const char* what) {
  std::string s(what);
  return s.substr(0, s.find('\n'));
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

MetricFn accuracy() {
  return [](const ::torch::Tensor& out, const ::torch::Tensor& t) {
    return out.argmax(1).eq(t).to(::torch::kDouble).mean().item<double>();
  };
}

MetricFn token_accuracy() {
  return [](const ::torch::Tensor& out, const ::torch::Tensor& t) {
    return out.argmax(-1).eq(t).to(::torch::kDouble).mean().item<double>();
  };
}

Metrics default_metrics(const ::torch::Tensor& targets) {
  if (is_classification(targets)) return {{"accuracy", accuracy()}};
  return {};
}

StepFn<Batch> default_step(Model model, LossFn loss, Metrics metrics) {
  return [model = std::move(model), loss = std::move(loss),
          metrics = std::move(metrics)](const Batch& b) {
    auto out = model.forward(b.features);
    const LossFn& fn = loss ? loss : default_loss(b.targets);
    StepResult r;
    r.count = b.features.size(0);
    try {
      r.loss = fn(out, b.targets);
      const auto detached = out.detach();
      for (const auto& [name, metric] : metrics) r.logs[name] = metric(detached, b.targets);
    } catch (const c10::Error& e) {
      throw InputError(fmt::format("the loss or a metric failed on outputs {} and targets {}: {}",
                                   shape_of(out), shape_of(b.targets), first_line(e.what())));
    }
    return r;
  };
}

Logs detail::weighted_means(const std::vector<std::pair<Logs, std::int64_t>>& parts) {
  Logs sums;
  std::int64_t seen = 0;
  for (const auto& [logs, count] : parts) {
    for (const auto& [k, v] : logs) sums[k] += v * static_cast<double>(count);
    seen += count;
  }
  for (auto& [k, v] : sums) v = seen > 0 ? v / static_cast<double>(seen) : 0.0;
  return sums;
}

void TrainerOptions::validate() const {
  if (epochs < 0) throw OptionError(fmt::format("epochs must be >= 0, got {}", epochs));
  if (batch_size < 1) throw OptionError(fmt::format("batch_size must be >= 1, got {}", batch_size));
  if (eval_batch_size < 1)
    throw OptionError(fmt::format("eval_batch_size must be >= 1, got {}", eval_batch_size));
  if (threads < 0) throw OptionError(fmt::format("threads must be >= 0, got {}", threads));
  if (max_steps < 0) throw OptionError(fmt::format("max_steps must be >= 0, got {}", max_steps));
  if (val_every_n_steps < 0)
    throw OptionError(fmt::format("val_every_n_steps must be >= 0, got {}", val_every_n_steps));
  if (accumulate < 1) throw OptionError(fmt::format("accumulate must be >= 1, got {}", accumulate));
  if (!run_options.is_object())
    throw OptionError(fmt::format("run_options must be a JSON object, got {}", run_options.dump()));
  if (!(clip_grad_norm >= 0))
    throw OptionError(fmt::format("clip_grad_norm must be >= 0, got {}", clip_grad_norm));
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
    try {
      sum_loss += fn(out, y).item<double>() * static_cast<double>(end - begin);
      if (classification) correct += out.argmax(1).eq(y).sum().item<std::int64_t>();
    } catch (const c10::Error& e) {
      throw InputError(
          fmt::format("validation batch {}: the loss failed on outputs {} and targets {}: {}",
                      begin / batch_size, shape_of(out), shape_of(y), first_line(e.what())));
    }
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
  if (!model.module || !model.forward) throw OptionError("fit: the model is empty");
  if (train.size() == 0) throw InputError("fit: the training data has no examples");
  DatasetSource data(train, DatasetSourceOptions{}
                                .with_batch_size(options_.batch_size)
                                .with_seed(options_.seed)
                                .with_shuffle(options_.shuffle));
  const LossFn loss = options_.loss ? options_.loss : default_loss(train.targets);
  const Metrics metrics =
      options_.metrics.empty() ? default_metrics(train.targets) : options_.metrics;
  const StepFn<Batch> step = default_step(model, loss, metrics);
  const bool classification = is_classification(train.targets);

  std::optional<Batch> slot;
  detail::TrainSource source;
  source.resumable = &data;
  source.legacy_position = true;
  source.run_options = {{"batch_size", options_.batch_size}};
  source.set_epoch = [&data](std::int64_t e) { data.set_epoch(e); };
  source.fetch = [&data, &slot] {
    slot = data.next();
    return slot.has_value();
  };
  ProcessGroup* const dist = options_.distributed.get();
  std::optional<std::string> agreed_interrupt;  // data-parallel: agreed in the previous step
  if (dist) {
    source.interrupt = [&agreed_interrupt] { return agreed_interrupt; };
    source.run = [&, dist](bool weighted) {
      const double scale = weighted ? static_cast<double>(slot->features.size(0)) : 1.0;
      auto s = detail::data_parallel_step(*dist, model, loss, *slot, classification,
                                          options_.interrupt, scale);
      agreed_interrupt = std::move(s.interrupt);
      StepResult r;
      r.count = s.count;
      r.logs["loss"] = s.loss;
      if (classification)
        r.logs["accuracy"] = static_cast<double>(s.correct) / static_cast<double>(s.count);
      return r;
    };
  } else {
    source.run = [&step, &slot](bool weighted) {
      return detail::train_step(step, *slot, weighted);
    };
  }
  source.batches_per_epoch = data.batches_per_epoch();
  detail::ValidateFn validate;
  DatasetSource val_data(
      validation.size() > 0 ? validation : train,
      DatasetSourceOptions{}.with_batch_size(options_.eval_batch_size).with_shuffle(false));
  if (validation.size() > 0 && !options_.metrics.empty() && !dist)
    validate = [&] { return detail::validate_source(*model.module, val_data, step); };
  else if (validation.size() > 0)
    validate = [&, dist] {
      return dist ? detail::evaluate_sharded(*dist, model, validation, options_.eval_batch_size,
                                             loss)
                  : evaluate(model, validation, options_.eval_batch_size, loss);
    };
  return run(model.module, optimizer, source, validate);
}

}  // namespace vigil::torch
