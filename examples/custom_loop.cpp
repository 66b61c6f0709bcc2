// vigil's callbacks in a hand-written libtorch loop, without the Trainer: vt::TrainLoop does the
// TrainContext bookkeeping (hooks, step, batch, the data source's position, the epoch's running
// means) so that the run resumes exactly, even in the middle of an epoch. SIGINT/SIGTERM (or
// --stop-after-steps N, for tests) interrupt it at the next batch with a checkpoint; running the
// same command again resumes there.
//
//   example_custom_loop [RUN_DIR] [--data DIR] [--limit-train N] [--epochs N] [--patience N]
//                       [--stop-after-steps N]
#include <fmt/core.h>

#include <map>
#include <string>

#include "example_args.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/dataset_source.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/models.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/signals.hpp"
#include "vigil/torch/train_loop.hpp"
#include "vigil/torch/trainer.hpp"

namespace vt = vigil::torch;

int main(int argc, char** argv) try {
  auto [dir, flags] = parse_example_args(argc, argv, "runs/example-custom-loop",
                                         {{"--data", std::string(vt::kFashionMnistDir)},
                                          {"--limit-train", "6000"},
                                          {"--epochs", "15"},
                                          {"--patience", "2"},
                                          {"--stop-after-steps", "0"}});
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

  // The data as a resumable source: pass e's order depends only on (seed, e).
  vt::DatasetSource source(data.train, vt::DatasetSourceOptions{}.with_batch_size(64));
  vt::StopSignals signals;  // SIGINT/SIGTERM: stop at the next batch, with a checkpoint
  const std::int64_t stop_after = std::stoll(flags["--stop-after-steps"]);
  auto interrupt = [&signals, stop_after, steps = std::int64_t{0}]() mutable {
    if (stop_after > 0 && steps++ == stop_after)
      return std::optional<std::string>("--stop-after-steps");
    return signals.interrupt()();
  };
  // Calls on_train_begin: BackupAndRestore may resume, putting the source back where it was.
  vt::TrainLoop loop(
      callbacks, model.ptr(), optimizer.get(), source,
      vt::TrainLoopOptions{}.with_epochs(std::stoi(flags["--epochs"])).with_interrupt(interrupt));
  const vt::TrainContext& ctx = loop.context();
  if (ctx.resumed_from)
    fmt::print("resumed from {} at epoch {} batch {}\n", ctx.resumed_from->string(), ctx.epoch,
               ctx.batch);
  while (loop.next_epoch()) {  // on_epoch_begin; a new pass unless resumed inside this one
    model->train();
    while (auto b = loop.next_batch()) {  // on_batch_begin; nullopt at the end or on interrupt
      optimizer->zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(b->features), b->targets);
      loss.backward();
      optimizer->step();
      loop.end_batch({{"loss", loss.item<double>()}}, b->features.size(0));  // on_batch_end
    }
    if (ctx.interrupted) break;  // BackupAndRestore has checkpointed in on_interrupt
    const auto val = vt::evaluate(vt::Model::of(model), data.validation);  // eval mode, no grad
    vigil::Logs logs = loop.epoch_means();  // this epoch's loss, resumed batches included
    logs["val_loss"] = val.at("loss");
    logs["val_accuracy"] = val.at("accuracy");
    // Appends to ctx.history; EarlyStopping decides, ModelCheckpoint saves, CSVLogger writes.
    loop.end_epoch(logs);
    fmt::print("epoch {}: loss {:.4f}  val_loss {:.4f}  val_accuracy {:.4f}\n", ctx.epoch - 1,
               logs.at("loss"), logs.at("val_loss"), logs.at("val_accuracy"));
  }
  loop.end();  // on_train_end: EarlyStopping loads the best weights back into the model
  if (ctx.interrupted) {
    fmt::print("interrupted ({}): run the same command again to resume\n", ctx.stop_reason);
    return 0;
  }
  fmt::print("stopped: {}\n", ctx.stop_training ? ctx.stop_reason : "all epochs done");
  if (const auto best = stopping->stopper().best_epoch())
    fmt::print("best epoch: {} (val_loss {:.4f})\n", *best, *stopping->stopper().best_value());
  vt::save_module_state(dir / "model.safetensors", *model);
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
