// Uses vigil::torch from an installed package: saves a libtorch model's state and loads it into
// a fresh model. Usage: torch_consumer DIR. Prints "tensors=N" and "outputs=equal". It includes
// the umbrella header first, without a precompiled torch.h, so the installed headers must bring
// what they use and compile warning-free under the consumer's flags.
#include "vigil/torch.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: torch_consumer DIR\n";
    return 2;
  }
  torch::manual_seed(1);
  const auto spec = vigil::torch::ModelSpec().with_hidden({8});
  auto saved = vigil::torch::build_model(spec);
  const auto path = std::filesystem::path(argv[1]) / "model.safetensors";
  vigil::torch::save_module_state(path, *saved);

  torch::manual_seed(2);  // different initial weights, replaced by the loaded ones
  auto loaded = vigil::torch::build_model(spec);
  vigil::torch::load_module_state(*loaded, path);
  const auto x = torch::randn({4, 1, 28, 28});
  const bool equal = torch::equal(saved->forward(x), loaded->forward(x));
  std::cout << "tensors=" << vigil::torch::module_state(*loaded).size() << "\n"
            << "outputs=" << (equal ? "equal" : "DIFFERENT") << "\n";
  return equal ? 0 : 1;
}
