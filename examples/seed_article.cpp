// The two snippets of the article "early stopping and model saving" (shared/seeds/), done right
// in C++ with vigil. The article's loop compares val_loss with a best_val_loss it never sets, and
// saves blindly every 10 epochs over one file, so the best model is lost. Here:
//   1. early stopping on the validation loss with the best value kept (vigil::EarlyStopper,
//      patience instead of stopping at the first worse epoch);
//   2. saving: a checkpoint every epoch, of which the best one (RUN_DIR/best/) and every 10th
//      (epoch-0009, epoch-0019, ...) are kept, plus the newest, with atomic writes;
//   3. loading the saved best model back into a fresh network and checking it.
// The article's data set (Boston housing: 8 features, a price) is not shipped by Debian, so a
// housing-like table is generated with a fixed seed; --csv FILE --target COL reads a real one.
//
//   example_seed_article [RUN_DIR] [--epochs N] [--patience N] [--rows N] [--csv FILE --target COL]
#include <fmt/core.h>

#include <map>
#include <string>

#include "example_args.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/early_stopping.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace vt = vigil::torch;

namespace {

// 8 features (like the article's input_shape=(8,)) and a price that depends on them non-linearly,
// with noise, so that a small network first learns and then starts fitting the noise.
vt::Dataset housing_like(std::int64_t rows) {
  torch::manual_seed(42);
  auto x = torch::randn({rows, 8});
  auto w = torch::tensor({{1.5f}, {-2.0f}, {0.7f}, {0.0f}, {1.1f}, {-0.4f}, {0.0f}, {0.9f}});
  auto y = x.matmul(w) + 0.8 * torch::sin(2 * x.index({torch::indexing::Slice(), 0}).unsqueeze(1)) +
           0.5 * torch::randn({rows, 1});
  return {x, y};
}

// Dense(10, relu) -> Dense(1), as in the article.
torch::nn::Sequential make_model(std::int64_t features) {
  return torch::nn::Sequential(torch::nn::Linear(features, 10), torch::nn::ReLU(),
                               torch::nn::Linear(10, 1));
}

}  // namespace

int main(int argc, char** argv) try {
  auto [dir, flags] = parse_example_args(argc, argv, "runs/example-seed-article",
                                         {{"--epochs", "300"},
                                          {"--patience", "10"},
                                          {"--rows", "400"},
                                          {"--csv", ""},
                                          {"--target", ""}});
  torch::set_num_threads(1);

  vt::TrainValidation split;
  if (!flags["--csv"].empty()) {
    const auto csv = vt::load_csv(
        flags["--csv"],
        vt::CsvOptions{}.with_target(flags["--target"]).with_task(vt::Task::Regression));
    split = vt::train_validation_split(csv.data, 0.2, /*seed=*/0);
    // Standardise with the training rows' statistics only (the validation rows stay unseen).
    const auto scale = vt::Standardizer::fit(split.train.features);
    split.train.features = scale.apply(split.train.features);
    split.validation.features = scale.apply(split.validation.features);
  } else {
    split = vt::train_validation_split(housing_like(std::stoll(flags["--rows"])), 0.2, /*seed=*/0);
  }
  const auto& train = split.train;
  const auto& val = split.validation;

  torch::manual_seed(0);
  auto model = make_model(train.features.size(1));
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-2));

  // 1. Early stopping that remembers its best value (the article's missing best_val_loss).
  vigil::EarlyStopper stopper(vigil::EarlyStoppingOptions{}
                                  .with_monitor("val_loss")
                                  .with_patience(std::stoi(flags["--patience"])));
  // 2. Saving: every epoch is checkpointed; rotation keeps the best, every 10th and the newest.
  vigil::CheckpointManager checkpoints(dir, vigil::CheckpointManagerOptions{}
                                                .with_monitor("val_loss")
                                                .with_save_top_k(1)
                                                .with_keep_last(1)
                                                .with_keep_every_n_epochs(10));

  const int epochs = std::stoi(flags["--epochs"]);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    optimizer.zero_grad();
    auto loss = torch::mse_loss(model->forward(train.features), train.targets);  // train_on_batch
    loss.backward();
    optimizer.step();

    const double val_loss = vt::evaluate(vt::Model::of(model), val).at("loss");  // evaluate
    const vigil::Logs logs{{"loss", loss.item<double>()}, {"val_loss", val_loss}};
    const vigil::StopDecision decision = stopper.on_epoch_end(epoch, logs);

    const auto weights = vt::module_state(*model);
    const auto saved = checkpoints.save({epoch,
                                         epoch + 1,
                                         vigil::SavePoint::EpochEnd,
                                         logs,
                                         {{"model", weights.views()}},
                                         {{"stopper", stopper.state()}},
                                         /*extra_files=*/{},
                                         /*metadata=*/{},
                                         /*indexes=*/{}});
    fmt::print("epoch {}: loss {:.5f}  val_loss {}{}\n", epoch, logs.at("loss"), val_loss,
               saved.is_best ? "  (best so far, saved to best/)" : "");
    if (decision.stop) {
      fmt::print("stopped after epoch {}: {}\n", epoch, decision.reason);
      break;
    }
  }
  fmt::print("best epoch: {} (val_loss {})\n", *stopper.best_epoch(), *stopper.best_value());
  std::string kept;
  for (const auto& c : checkpoints.checkpoints()) kept += " " + c.name;
  fmt::print("checkpoints kept:{}\n", kept);

  // 3. Load the best model back (tf.keras.models.load_model in the article): a fresh network
  // with other initial weights, then the saved ones.
  torch::manual_seed(123);
  auto reloaded = make_model(train.features.size(1));
  const auto best_file = vigil::CheckpointManager::best_model_path(dir);
  vt::load_module_state(*reloaded, best_file);
  const double again = vt::evaluate(vt::Model::of(reloaded), val).at("loss");
  fmt::print("reloaded {}: val_loss {}\n", best_file.string(), again);
  if (again != *stopper.best_value()) {
    fmt::print(stderr, "error: the reloaded model's val_loss differs from the best epoch's\n");
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
