// The Trainer with vigil's callbacks on Fashion-MNIST: early stopping with the best weights
// restored, checkpoints with rotation, automatic resume, metrics.csv, a learning-curve SVG and a
// progress bar. Run it twice with the same RUN_DIR: the second run resumes (or says it is done).
//
//   example_trainer_fashion_mnist [RUN_DIR] [--data DIR] [--limit-train N] [--limit-test N]
//                                 [--epochs N] [--threads N]
#include <fmt/core.h>

#include <cstdlib>
#include <map>
#include <string>

#include "example_args.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/learning_curve_plot.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/models.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/progress_bar.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace vt = vigil::torch;

int main(int argc, char** argv) try {
  // RUN_DIR first, then --flag value pairs.
  auto [run_dir, flags] = parse_example_args(argc, argv, "runs/example-trainer",
                                             {{"--data", std::string(vt::kFashionMnistDir)},
                                              {"--limit-train", "10000"},
                                              {"--limit-test", "0"},
                                              {"--epochs", "20"},
                                              {"--threads", "0"}});
  const auto limit = [](const std::string& v) {
    const long long n = std::stoll(v);
    return n > 0 ? std::optional<std::int64_t>(n) : std::nullopt;
  };

  auto all =
      vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions{}
                                                   .with_root(flags["--data"])
                                                   .with_limit(limit(flags["--limit-train"])));
  auto data = vt::train_validation_split(all, 0.1, /*seed=*/0);
  auto test =
      vt::load_fashion_mnist(vt::Split::Test, vt::FashionMnistOptions{}
                                                  .with_root(flags["--data"])
                                                  .with_limit(limit(flags["--limit-test"])));

  vt::seed_torch(0);  // the initial weights (a resumed run overwrites them from the checkpoint)
  auto model = vt::build_model(vt::ModelSpec{}.with_hidden({128}));
  auto optimizer = vt::make_optimizer(vt::OptimizerKind::Adam, model->parameters(), {{"lr", 1e-3}});

  // One manager owns the run directory: the best checkpoint and the newest one are kept.
  auto manager =
      std::make_shared<vigil::CheckpointManager>(run_dir, vigil::CheckpointManagerOptions{}
                                                              .with_monitor("val_loss")
                                                              .with_save_top_k(1)
                                                              .with_keep_last(1));
  auto stopping = std::make_shared<vt::EarlyStopping>(
      vt::EarlyStoppingCallbackOptions{}
          .with_stopping(vigil::EarlyStoppingOptions{}.with_monitor("val_loss").with_patience(2))
          .with_restore_best_weights(true));

  vt::Trainer trainer(vt::TrainerOptions{}
                          .with_epochs(std::stoi(flags["--epochs"]))
                          .with_batch_size(64)
                          .with_seed(0)
                          .with_threads(std::stoi(flags["--threads"])));
  // Order matters at an epoch end: decide (EarlyStopping), then save that decision with the
  // checkpoint (ModelCheckpoint), then log and show it.
  trainer.add_callback(std::make_shared<vt::BackupAndRestore>(manager));  // resumes if it can
  trainer.add_callback(stopping);
  trainer.add_callback(std::make_shared<vt::ModelCheckpoint>(manager));
  trainer.add_callback(std::make_shared<vt::CSVLogger>(
      vt::CSVLoggerOptions{}.with_filename(run_dir / "metrics.csv")));
  trainer.add_callback(std::make_shared<vt::LearningCurvePlot>(
      vt::LearningCurvePlotOptions{}.with_run_dir(run_dir)));
  trainer.add_callback(std::make_shared<vt::ProgressBar>());

  const auto result = trainer.fit(vt::Model::of(model), *optimizer, data.train, data.validation);
  if (result.resumed_from) fmt::print("resumed from {}\n", result.resumed_from->string());
  fmt::print("stopped: {}\n", result.stop_reason);
  if (const auto best = stopping->stopper().best_epoch())
    fmt::print("best epoch: {} (val_loss {:.4f}){}\n", *best, *stopping->stopper().best_value(),
               stopping->restored() ? ", weights restored" : "");

  // The model now holds the best weights: save them where anyone (Python too) can load them.
  vt::save_module_state(run_dir / "model.safetensors", *model);
  const auto m = vt::evaluate(vt::Model::of(model), test);
  fmt::print("test accuracy: {:.4f} on {} examples\n", m.at("accuracy"), test.size());
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
