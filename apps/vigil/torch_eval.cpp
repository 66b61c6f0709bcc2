// `vigil eval --model PATH`: evaluates saved weights on the test set,
// rebuilding the model from the options its run directory recorded in run.json.
#include <fmt/core.h>
#include <stdlib.h>

#include <cerrno>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <span>

#include "commands.hpp"
#include "torch_common.hpp"
#include "torch_lm.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/io.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/trainer.hpp"
#include "vigil/torch/warm_start.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;
namespace vt = vigil::torch;

struct EvalArgs {
  std::string model;
  std::string run_dir;
  std::string data;
  std::int64_t limit_test = -1;
  std::int64_t batch_size = 1000;
  bool json = false;
  std::string predictions;
};

std::optional<fs::path> find_run_dir(fs::path p) {
  for (int i = 0; i < 4 && !p.empty(); ++i) {
    if (fs::is_regular_file(p / "run.json")) return p;
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return std::nullopt;
}

// The weights file PATH stands for (vt::resolve_weights_file), errors naming --model.
// The weights file --model names. Inside a checkpoint folder, the folder is verified first
// against the sizes and hashes its state.json records, as a resume does: a file swapped in
// from elsewhere is a valid safetensors file with valid checksums of its own.
fs::path resolve_model_file(const fs::path& path) {
  fs::path file;
  try {
    file = vt::resolve_weights_file(path);
  } catch (const InputError& e) {
    throw InputError(fmt::format("--model {}", e.what()));
  }
  const fs::path folder = file.parent_path();
  if (fs::is_regular_file(folder / "state.json")) {
    try {
      (void)verify_checkpoint(folder);
    } catch (const CheckpointError& e) {
      throw InputError(
          fmt::format("--model {}: the checkpoint is not intact: {}", path.string(), e.what()));
    }
  }
  return file;
}

// "3\n0\n..." : the predicted class (argmax of the outputs) of each test example, in order, so
// another implementation (Python, see scripts/load_in_python.py) can be compared per example.
std::string predicted_classes(::torch::nn::Sequential& net, const vt::Dataset& test,
                              std::int64_t batch_size) {
  ::torch::NoGradGuard no_grad;
  net->eval();
  std::string out;
  for (std::int64_t begin = 0; begin < test.size(); begin += batch_size) {
    const auto end = std::min(begin + batch_size, test.size());
    const auto classes = net->forward(test.features.slice(0, begin, end)).argmax(1).contiguous();
    for (const auto c : std::span(classes.data_ptr<std::int64_t>(), classes.numel()))
      out += fmt::format("{}\n", c);
  }
  return out;
}

// A temporary folder for a corpus made to evaluate on (--data text:PATH), removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "vigil-eval-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw IoError(
          fmt::format("cannot make a temporary folder in {}", fs::temp_directory_path().string()),
          errno);
    path_ = tmpl;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A language model: the test loss in nats per byte on the run's test split (or on the test
// split of --data text:PATH).
void eval_lm(const EvalArgs& a, const fs::path& model_file, const fs::path& run_dir,
             RunConfig config) {
  if (!a.predictions.empty())
    throw OptionError("--predictions writes predicted classes: this run is a language model");
  if (a.limit_test >= 0)
    throw OptionError(
        "--limit-test counts examples: a language model is scored on every window "
        "of its test split");
  std::optional<ScratchDir> scratch;
  LmData data;
  if (!a.data.empty()) {
    config.data = a.data;
    check_lm(config);
    scratch.emplace();
    data = load_lm_data(config, scratch->path(), /*build=*/true);
  } else {
    data = load_lm_data(config, run_dir, /*build=*/false);
  }
  vt::Gpt net(gpt_options(config));
  vt::load_module_state(*net, model_file);
  const LmEval m = evaluate_lm(*net, data.test);
  if (a.json) {
    nlohmann::json out = {{"model", model_file.string()},
                          {"run_dir", run_dir.string()},
                          {"tokens", m.tokens},
                          {"metrics", {{"loss", m.loss}, {"perplexity", m.perplexity}}}};
    fmt::print("{}\n", out.dump());
    return;
  }
  fmt::print("model: {} ({})\n", model_file.string(), model_summary(config));
  fmt::print("test loss: {:.4f} nats per byte (perplexity {:.3f}) on {} bytes of {}\n", m.loss,
             m.perplexity, m.tokens, data.description);
}

void run_eval(const EvalArgs& a) {
  const fs::path model_file = resolve_model_file(a.model);
  std::optional<fs::path> run_dir;
  if (!a.run_dir.empty())
    run_dir = fs::path(a.run_dir);
  else
    run_dir =
        find_run_dir(fs::is_directory(a.model) ? fs::path(a.model) : model_file.parent_path());
  if (!run_dir || !fs::is_regular_file(*run_dir / "run.json"))
    throw InputError(
        fmt::format("cannot find the run.json recording how {} "
                    "was built: pass --run-dir DIR, the run "
                    "directory `vigil train` wrote",
                    model_file.string()));
  RunConfig config = RunConfig::from_json(read_json_file(*run_dir / "run.json"));
  if (is_lm(config)) return eval_lm(a, model_file, *run_dir, config);
  if (!a.data.empty()) config.data = a.data;
  if (a.limit_test >= 0) config.limit_test = a.limit_test;

  RunData data = load_run_data(config, /*need_train=*/false);
  vt::seed_torch(config.seed);
  auto net = vt::build_model(data.spec);
  vt::load_module_state(*net, model_file);  // a file, or a shard index
  const Logs m = vt::evaluate(vt::Model::of(net), data.test, a.batch_size);
  if (!a.predictions.empty()) {
    if (!data.classification)
      throw OptionError("--predictions writes predicted classes: this run is a regression");
    atomic_write_file(a.predictions, predicted_classes(net, data.test, a.batch_size));
  }
  if (a.json) {
    nlohmann::json out = {{"model", model_file.string()},
                          {"run_dir", run_dir->string()},
                          {"examples", data.test.size()},
                          {"metrics", vt::logs_to_json(m)}};
    fmt::print("{}\n", out.dump());
    return;
  }
  fmt::print(
      "model: {} ({} {})\n", model_file.string(), config.model,
      config.model == "cnn" ? sizes_to_string(config.channels) : sizes_to_string(config.hidden));
  if (m.count("accuracy"))
    fmt::print("test accuracy: {:.4f} (loss {:.4f}) on {} examples\n", m.at("accuracy"),
               m.at("loss"), data.test.size());
  else
    fmt::print("test loss: {:.4f} on {} examples\n", m.at("loss"), data.test.size());
}

}  // namespace

void add_eval_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", kEvalSummary);
  cmd->add_option("--model", args->model,
                  "A model.safetensors, a checkpoint folder, or a run "
                  "directory (its best model)")
      ->required();
  cmd->add_option("--run-dir", args->run_dir,
                  "The run directory whose run.json describes the model "
                  "(default: found above "
                  "--model)");
  cmd->add_option("--data", args->data, "Another copy of the data set (default: the run's)");
  cmd->add_option("--limit-test", args->limit_test,
                  "Use only the first N test examples (default: the run's setting)");
  cmd->add_option("--batch-size", args->batch_size, "Examples per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_option("--predictions", args->predictions,
                  "Also write each test example's predicted class (argmax), one per line, to "
                  "this file");
  cmd->callback([args, &ctx]() {
    run_eval(*args);
    ctx.exit_code = 0;
  });
}

}  // namespace vigil::cli
