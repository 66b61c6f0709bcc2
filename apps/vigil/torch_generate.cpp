// `vigil generate RUN_DIR --prompt TEXT`: continues a prompt with the best model of a
// `vigil train --model gpt` run, byte by byte.
#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "stdout.hpp"
#include "torch_lm.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/module_state.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;
namespace vt = vigil::torch;

struct GenerateArgs {
  std::string run_dir;
  std::string prompt = "\n";
  std::int64_t tokens = 200;
  double temperature = 0.8;
  std::int64_t top_k = 0;
  std::uint64_t seed = 0;
};

RunConfig read_run(const fs::path& run_dir) {
  const fs::path file = run_dir / "run.json";
  if (!fs::is_regular_file(file))
    throw OptionError(fmt::format(
        "{} is not a run directory (no run.json): pass the --run-dir of a `vigil train --model "
        "gpt` run",
        run_dir.string()));
  return RunConfig::from_json(read_json_file(file));
}

// The best model, or the final one when the run kept no best.
fs::path model_file(const fs::path& run_dir) {
  for (const fs::path& f :
       {CheckpointManager::best_model_path(run_dir), run_dir / "model.safetensors"})
    if (fs::is_regular_file(f)) return f;
  throw OptionError(fmt::format(
      "{} has no trained model yet (neither best/model.safetensors nor model.safetensors): "
      "train it first, or resume it with vigil train --run-dir {}",
      run_dir.string(), run_dir.string()));
}

void run_generate(const GenerateArgs& a) {
  const fs::path run_dir = a.run_dir;
  const RunConfig config = read_run(run_dir);
  if (!is_lm(config))
    throw OptionError(fmt::format(
        "{} is a {} classifier run: vigil generate continues text with a --model gpt run",
        run_dir.string(), config.model));
  const fs::path file = model_file(run_dir);
  if (a.prompt.empty())
    throw OptionError("--prompt is empty: give at least one byte to continue (default a newline)");
  if (static_cast<std::int64_t>(a.prompt.size()) > config.context)
    throw OptionError(fmt::format(
        "--prompt is {} bytes, longer than the {} this model sees (its --context): shorten it",
        a.prompt.size(), config.context));
  vt::Gpt net(gpt_options(config));
  vt::load_module_state(*net, file);
  std::vector<std::int64_t> prompt;
  for (const unsigned char ch : a.prompt) prompt.push_back(ch);
  auto o =
      vt::GenerateOptions{}.with_tokens(a.tokens).with_temperature(a.temperature).with_seed(a.seed);
  if (a.top_k > 0) o.with_top_k(a.top_k);
  const auto out = vt::generate(*net, prompt, o);
  std::string text = a.prompt;
  for (const auto t : out) text.push_back(static_cast<char>(t));
  if (text.back() != '\n') text.push_back('\n');
  write_stdout(text);
}

}  // namespace

void add_generate_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", kGenerateSummary);
  cmd->add_option("run_dir", args->run_dir, "The run directory of a vigil train --model gpt run")
      ->required();
  cmd->add_option("--prompt", args->prompt, "Text to continue (default a newline)");
  cmd->add_option("--tokens", args->tokens, "Bytes to generate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber.description(">= 1"));
  cmd->add_option("--temperature", args->temperature,
                  "Divides the logits: lower is more conservative, 0 always takes the most likely "
                  "byte")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "Sample only among the K most likely bytes (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", args->seed, "Seeds the sampling: the same seed prints the same text")
      ->capture_default_str();
  cmd->callback([args, &ctx]() {
    run_generate(*args);
    ctx.exit_code = 0;
  });
}

}  // namespace vigil::cli
