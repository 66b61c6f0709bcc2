// vigil::core without libtorch: a model that is nothing but raw float buffers (here a linear
// regression trained by plain gradient descent, standing in for another framework or custom CUDA
// code), with early stopping on the validation loss and checkpoints of named buffers through the
// CheckpointManager; at the end the best buffers are loaded back from best/model.safetensors.
//
//   example_core_raw_buffers [RUN_DIR] [--epochs N] [--patience N]
#include <fmt/core.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "example_args.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/early_stopping.hpp"
#include "vigil/safetensors.hpp"

namespace {

constexpr std::size_t kFeatures = 4;

struct Rows {
  std::vector<float> x;  // row-major [n, kFeatures]
  std::vector<float> y;  // [n]
  std::size_t size() const { return y.size(); }
};

Rows make_rows(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float w[kFeatures] = {2.0f, -1.0f, 0.5f, 0.0f};
  Rows r;
  for (std::size_t i = 0; i < n; ++i) {
    float t = 0.3f;
    for (std::size_t j = 0; j < kFeatures; ++j) {
      const float v = normal(rng);
      r.x.push_back(v);
      t += w[j] * v;
    }
    r.y.push_back(t + 0.3f * normal(rng));
  }
  return r;
}

double mse(const Rows& d, const std::vector<float>& w, float b) {
  double sum = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    double p = b;
    for (std::size_t j = 0; j < kFeatures; ++j) p += w[j] * d.x[i * kFeatures + j];
    sum += (p - d.y[i]) * (p - d.y[i]);
  }
  return sum / static_cast<double>(d.size());
}

// A named tensor viewing caller-owned floats (zero copy: the manager writes from this memory).
vigil::TensorView view(std::string name, std::span<const float> data,
                       std::vector<std::uint64_t> shape) {
  return {std::move(name), vigil::DType::F32, std::move(shape), std::as_bytes(data)};
}

}  // namespace

int main(int argc, char** argv) try {
  auto [run_dir, flags] = parse_example_args(argc, argv, "runs/example-core",
                                             {{"--epochs", "500"}, {"--patience", "5"}});
  std::mt19937 rng(7);
  const Rows train = make_rows(200, rng);
  const Rows val = make_rows(50, rng);

  std::vector<float> w(kFeatures, 0.0f);  // the "model": two named buffers
  float b = 0.0f;

  // Stops once val_loss has not improved by more than 1e-4 for `patience` epochs.
  vigil::EarlyStopper stopper(vigil::EarlyStoppingOptions{}
                                  .with_monitor("val_loss")
                                  .with_patience(std::stoi(flags["--patience"]))
                                  .with_min_delta(1e-4));
  vigil::CheckpointManager manager(run_dir, vigil::CheckpointManagerOptions{}
                                                .with_monitor("val_loss")
                                                .with_save_top_k(1)
                                                .with_keep_last(1));

  const int epochs = std::stoi(flags["--epochs"]);
  const float lr = 0.01f;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    // One full-batch gradient step of the mean squared error.
    std::vector<double> gw(kFeatures, 0.0);
    double gb = 0;
    for (std::size_t i = 0; i < train.size(); ++i) {
      double p = b;
      for (std::size_t j = 0; j < kFeatures; ++j) p += w[j] * train.x[i * kFeatures + j];
      const double e = 2 * (p - train.y[i]) / static_cast<double>(train.size());
      for (std::size_t j = 0; j < kFeatures; ++j) gw[j] += e * train.x[i * kFeatures + j];
      gb += e;
    }
    for (std::size_t j = 0; j < kFeatures; ++j) w[j] -= lr * static_cast<float>(gw[j]);
    b -= lr * static_cast<float>(gb);

    const vigil::Logs logs{{"loss", mse(train, w, b)}, {"val_loss", mse(val, w, b)}};
    const vigil::StopDecision d = stopper.on_epoch_end(epoch, logs);
    // The stopper decides what counts as an improvement (here by more than min_delta), so the
    // buffers are saved exactly when it says so: best/ then always holds its best epoch. They are
    // written straight from the buffers, with the stopper's state so a run could resume.
    if (stopper.improved_this_epoch()) {
      vigil::SaveRequest request;
      request.epoch = epoch;
      request.step = epoch + 1;
      request.metrics = logs;
      request.files["model"] = {view("w", w, {kFeatures}), view("b", std::span(&b, 1), {})};
      request.state = {{"stopper", stopper.state()}};
      // The SaveResult (its name, what rotated out) is not needed here.
      (void)manager.save(request);
    }
    if (d.stop) {
      fmt::print("stopped after epoch {}: {}\n", epoch, d.reason);
      break;
    }
  }
  fmt::print("best epoch: {}\n", *stopper.best_epoch());
  fmt::print("best val_loss: {}\n", *stopper.best_value());

  // Load the best buffers back: the file is mapped and its checksums verified on open.
  const auto file =
      vigil::SafetensorsFile::open(vigil::CheckpointManager::best_model_path(run_dir));
  std::vector<float> best_w(kFeatures);
  float best_b = 0;
  const auto tw = file.view("w");
  const auto tb = file.view("b");
  std::memcpy(best_w.data(), tw.data.data(), tw.data.size());
  std::memcpy(&best_b, tb.data.data(), sizeof best_b);
  const double again = mse(val, best_w, best_b);
  fmt::print("loaded {}: w = [{}, {}, {}, {}], b = {}, val_loss {}\n",
             vigil::CheckpointManager::best_model_path(run_dir).string(), best_w[0], best_w[1],
             best_w[2], best_w[3], best_b, again);
  if (again != *stopper.best_value()) {
    fmt::print(stderr, "error: the loaded buffers do not give the best val_loss\n");
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "error: {}\n", e.what());
  return 1;
}
