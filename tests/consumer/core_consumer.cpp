// Uses vigil::core from an installed package (or a build of vigil inside the consumer's):
// early stopping, then a safetensors round trip. Usage: core_consumer DIR. Prints
// "stop_epoch=N best_epoch=N" and "roundtrip=ok". It includes the umbrella header first, so
// every core header must compile on its own merits, warning-free under the consumer's flags.
#include "vigil/vigil.hpp"

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <span>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: core_consumer DIR\n";
    return 2;
  }
  vigil::EarlyStopper stopper(vigil::EarlyStoppingOptions{}.with_patience(2));
  const std::vector<double> val_loss = {0.9, 0.7, 0.72, 0.71, 0.5};
  for (long epoch = 0; epoch < static_cast<long>(val_loss.size()); ++epoch)
    if (stopper.on_epoch_end(epoch, {{"val_loss", val_loss[epoch]}}).stop) break;
  std::cout << "stop_epoch=" << stopper.stop_epoch().value_or(-1)
            << " best_epoch=" << stopper.best_epoch().value_or(-1) << "\n";

  const std::vector<float> weights = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f};
  const auto path = std::filesystem::path(argv[1]) / "w.safetensors";
  std::vector<vigil::TensorView> tensors = {
      {"fc.weight", vigil::DType::F32, {2, 3}, std::as_bytes(std::span(weights))}};
  vigil::save_safetensors(path, tensors, {{"epoch", "1"}});
  const auto file = vigil::SafetensorsFile::open(path);
  const vigil::TensorView w = file.view("fc.weight");
  const bool same = w.data.size() == weights.size() * sizeof(float) &&
                    std::memcmp(w.data.data(), weights.data(), w.data.size()) == 0;
  std::cout << "roundtrip=" << (same ? "ok" : "MISMATCH") << "\n";
  return same ? 0 : 1;
}
