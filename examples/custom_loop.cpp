// vigil's callbacks in a hand-written libtorch loop, without the Trainer: fill a TrainContext,
// call the CallbackList's hooks at the right places, and start where on_train_begin says (the
// BackupAndRestore callback may have resumed the run from its newest checkpoint).
//
//   example_custom_loop [RUN_DIR] [--data DIR] [--limit-train N] [--epochs N] [--patience N]
#include <fmt/core.h>

#include <map>
#include <string>

#include "example_args.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/models.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace vt = vigil::torch;

int main(int argc, char** argv) try {
  auto [dir, flags] = parse_example_args(argc, argv, "runs/example-custom-loop",
                                         {{"--data", std::string(vt::kFashionMnistDir)},
                                          {"--limit-train", "6000"},
                                          {"--epochs", "15"},
                                          {"--patience", "2"}});
  auto all =
      vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions{}
                                                   .with_root(flags["--data"])
                                                   .with_limit(std::stoll(flags["--limit-train"])));
  auto data = vt::train_validation_split(all, 0.1, /*seed=*/0);

  torch::set_num_threads(1);  // bit-reproducible
  vt::seed_torch(0);
  auto model = vt::build_model(vt::ModelSpec{}.with_hidden({64}));
  auto optimizer = vt::make_optimizer(vt::OptimizerKind::Adam, model->parameters(), {{"lr", 1e-3}});
  auto manager = std::make_shared<vigil::CheckpointManager>(dir, vigil::CheckpointManagerOptions{}
                                                                     .with_monitor("val_loss")
                                                                     .with_save_top_k(1)
                                                                     .with_keep_last(2));
  auto stopping = std::make_shared<vt::EarlyStopping>(
      vt::EarlyStoppingCallbackOptions{}
          .with_stopping(vigil::EarlyStoppingOptions{}
                             .with_monitor("val_loss")
                             .with_patience(std::stoi(flags["--patience"])))
          .with_restore_best_weights(true));

  vt::CallbackList callbacks;
  callbacks.add(std::make_shared<vt::BackupAndRestore>(manager));
  callbacks.add(stopping);
  callbacks.add(std::make_shared<vt::ModelCheckpoint>(manager));
  callbacks.add(
      std::make_shared<vt::CSVLogger>(vt::CSVLoggerOptions{}.with_filename(dir / "metrics.csv")));

  const std::int64_t batch_size = 64;
  const std::int64_t n = data.train.size();
  vt::TrainContext ctx;  // what the callbacks see: the model, the optimizer, the position
  ctx.model = model.ptr();
  ctx.optimizer = optimizer.get();
  ctx.epochs = std::stoi(flags["--epochs"]);
  ctx.steps_per_epoch = (n + batch_size - 1) / batch_size;

  callbacks.on_train_begin(ctx);  // may resume: then ctx.epoch says where to go on
  if (ctx.resumed_from) fmt::print("resumed from {}\n", ctx.resumed_from->string());
  // Checkpoints are taken at epoch ends only here, so a resume always starts a whole epoch
  // (ctx.batch == 0); see the Trainer for resuming in the middle of an epoch.
  for (int epoch = ctx.epoch; epoch < ctx.epochs && !ctx.stop_training; ++epoch) {
    callbacks.on_epoch_begin(ctx, epoch);
    model->train();
    vt::BatchIterator batches(data.train, vt::epoch_order(n, /*seed=*/0, epoch), batch_size);
    double sum = 0;
    std::int64_t seen = 0;
    while (!batches.done()) {
      auto b = batches.next();
      callbacks.on_batch_begin(ctx, b.index);
      optimizer->zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(b.features), b.targets);
      loss.backward();
      optimizer->step();
      ctx.batch = b.index + 1;
      ++ctx.global_step;
      const double l = loss.item<double>();
      sum += l * static_cast<double>(b.features.size(0));
      seen += b.features.size(0);
      callbacks.on_batch_end(ctx, b.index, {{"loss", l}});
    }
    const auto val = vt::evaluate(vt::Model::of(model), data.validation);  // eval mode, no grad
    const vigil::Logs logs{{"loss", sum / static_cast<double>(seen)},
                           {"val_loss", val.at("loss")},
                           {"val_accuracy", val.at("accuracy")}};
    // Appends to ctx.history; EarlyStopping decides, ModelCheckpoint saves, CSVLogger writes.
    callbacks.on_epoch_end(ctx, epoch, logs);
    ctx.batch = 0;
    fmt::print("epoch {}: loss {:.4f}  val_loss {:.4f}  val_accuracy {:.4f}\n", epoch,
               logs.at("loss"), logs.at("val_loss"), logs.at("val_accuracy"));
  }
  callbacks.on_train_end(ctx);  // EarlyStopping loads the best weights back into the model
  fmt::print("stopped: {}\n", ctx.stop_training ? ctx.stop_reason : "all epochs done");
  if (const auto best = stopping->stopper().best_epoch())
    fmt::print("best epoch: {} (val_loss {:.4f})\n", *best, *stopping->stopper().best_value());
  vt::save_module_state(dir / "model.safetensors", *model);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
