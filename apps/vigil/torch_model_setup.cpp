// What a run does to its model before training: --init-from's warm start and --freeze.
#include <fmt/core.h>

#include <filesystem>
#include <string>
#include <vector>

#include "torch_run.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/freeze.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/warm_start.hpp"

namespace vigil::cli {

namespace fs = std::filesystem;
namespace vt = vigil::torch;

// --init-from: a fresh run starts from those weights (recorded with their hash in run.json); a
// resumed run takes its checkpoint's, unless it has none yet and must start over the same way.
void apply_init_from(RunConfig& config, ::torch::nn::Module& net, const fs::path& run_dir,
                     bool resuming) {
  if (config.init_from.empty()) return;
  if (resuming && fs::exists(CheckpointManager::last_path(run_dir))) return;
  const auto source = vt::warm_start(net, config.init_from);
  if (resuming && config.init_source.is_object() &&
      config.init_source.value("xxh3", "") != source.xxh3)
    throw InputError(fmt::format(
        "--init-from {}: {} changed since the run started (xxh3 {}, now {}); start with --fresh",
        config.init_from, source.file.string(), config.init_source.value("xxh3", ""), source.xxh3));
  config.init_source = source.to_json(config.init_from);
  fmt::print(
      "initialised from {} ({} tensors, xxh3 {}): weights only, the optimizer starts fresh\n",
      source.file.string(), source.tensors, source.xxh3);
}

void apply_freeze(const RunConfig& config, ::torch::nn::Module& net) {
  if (config.freeze.empty()) return;
  std::vector<std::string> frozen;
  try {
    frozen = vt::freeze_parameters(net, config.freeze);
  } catch (const OptionError& e) {
    throw OptionError(fmt::format("--freeze: {}", e.what()));
  }
  std::int64_t still = 0;
  std::int64_t held = 0;
  for (const auto& p : vt::unique_parameters(net)) (p.requires_grad() ? still : held) += p.numel();
  fmt::print("froze {} parameter tensors matching '{}' ({} values); {} values train\n",
             frozen.size(), config.freeze, held, still);
}

}  // namespace vigil::cli
