// `vigil train --model gpt`: the language model's defaults, corpus, step and report. Training
// itself is the Trainer's, with the callbacks every run has (torch_run.hpp).
#include "torch_lm.hpp"

#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <map>

#include "torch_run.hpp"
#include "vigil/io.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/signals.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;
namespace vt = vigil::torch;
namespace F = ::torch::nn::functional;

constexpr std::int64_t kVocab = 256;  // tokens are bytes

struct Sizes {
  std::int64_t context, layers, heads, embed;
};

// --preset: nanoGPT's character-level Shakespeare model, and GPT-2 small's shape.
const std::map<std::string, Sizes, std::less<>>& presets() {
  static const std::map<std::string, Sizes, std::less<>> p = {{"small", {256, 6, 6, 384}},
                                                              {"base", {1024, 12, 12, 768}}};
  return p;
}

bool is_text(const std::string& data) {
  return data.rfind("text:", 0) == 0;
}

vt::StepFn<vt::TokenBatch> lm_step(vt::Gpt model) {
  return [model](const vt::TokenBatch& batch) mutable {
    const auto logits = model->forward(batch.x);
    const auto loss = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.y.reshape(-1));
    // Weighted by targets: a batch's share of the means is its number of predicted bytes.
    return vt::StepResult{loss, {}, batch.y.numel()};
  };
}

// The model's metadata in every file the run writes: its options, and the tied names.
Metadata model_metadata(const vt::Gpt& net) {
  Metadata meta = {{"vigil.model", net->options().to_json().dump()}};
  for (const auto& [key, value] : vt::tied_metadata(*net)) meta[key] = value;
  return meta;
}

void finish_lm(const fs::path& run_dir, vt::Gpt& net, const LmData& data, const vt::FitResult& fit,
               const MainRun& r, double fit_seconds) {
  const Metadata meta = model_metadata(net);
  if (r.ema) {
    save_safetensors(run_dir / "ema.safetensors", r.ema->averaged().views(), meta);
    if (r.ema->options().validate && !r.stopping->restored()) r.ema->copy_to(*net);
  }
  vt::save_module_state(run_dir / "model.safetensors", *net, meta);
  const LmEval test = evaluate_lm(*net, data.test);
  const double unigram = data.corpus.unigram_test_loss();
  const bool already_finished =
      r.restore->resumed_from() && r.restore->resumed_from()->step == fit.global_step;
  nlohmann::json result = result_json(fit, r, fit_seconds);
  result["test"] = {{"loss", number_to_json(test.loss)},
                    {"perplexity", number_to_json(test.perplexity)}};
  result["test_tokens"] = test.tokens;
  result["unigram_test_loss"] = number_to_json(unigram);
  atomic_write_file(run_dir / "result.json", result.dump(2) + "\n");
  print_stop_lines(run_dir, fit, r, already_finished);
  fmt::print(
      "test loss ({}): {:.4f} nats per byte (perplexity {:.3f}) on {} bytes; a unigram model of "
      "the corpus: {:.4f}\n",
      r.stopping->restored() ? "restored best weights" : "final weights", test.loss,
      test.perplexity, test.tokens, unigram);
  print_run_files(run_dir, r);
  if (r.ema) fmt::print("averaged weights: {}\n", (run_dir / "ema.safetensors").string());
  fmt::print("generate with: vigil generate {} --prompt TEXT\n", run_dir.string());
}

}  // namespace

bool is_lm(const RunConfig& config) {
  return config.model == "gpt";
}

void apply_lm_defaults(RunConfig& c, const std::set<std::string>& given) {
  const auto unset = [&](const char* key) { return given.count(key) == 0; };
  if (!c.preset.empty() && !is_lm(c))
    throw OptionError("--preset sets the sizes of a language model: it needs --model gpt");
  if (!is_lm(c)) {
    if (is_text(c.data))
      throw OptionError(fmt::format(
          "--data {} is a text corpus, which only a language model reads: add --model gpt",
          c.data));
    return;
  }
  if (unset("data")) c.data = kDefaultTextData;
  if (!c.preset.empty()) {
    const auto it = presets().find(c.preset);
    if (it == presets().end())
      throw OptionError(fmt::format(
          "--preset takes small or base (or none: the default sizes), not '{}'", c.preset));
    const Sizes& s = it->second;
    if (unset("context")) c.context = s.context;
    if (unset("layers")) c.layers = s.layers;
    if (unset("heads")) c.heads = s.heads;
    if (unset("embed")) c.embed = s.embed;
  }
  // What a small language model on a CPU wants, where the classifier's defaults differ.
  if (unset("batch_size")) c.batch_size = 32;
  if (unset("max_steps")) c.max_steps = 2000;
  if (unset("val_every_n_steps")) c.val_every_n_steps = 250;
  if (unset("clip_grad_norm")) c.clip_grad_norm = 1.0;
  // A warm-up and a cosine decay, unless ReduceLROnPlateau is to set the lr.
  if (c.reduce_lr_patience < 0) {
    if (unset("lr_schedule")) c.lr_schedule = "cosine";
    if (unset("warmup_steps")) c.warmup_steps = 100;
    if (unset("final_lr")) c.final_lr = c.lr / 10;
  }
}

void check_lm(const RunConfig& c) {
  if (!is_text(c.data))
    throw OptionError(fmt::format(
        "--model gpt trains on text: pass --data text:PATH (a text file or a folder of them), "
        "not {}",
        c.data));
  if (c.max_steps <= 0 || c.val_every_n_steps <= 0)
    throw OptionError(
        "--model gpt draws random windows without end: it needs --max-steps N and "
        "--val-every-n-steps N (both > 0)");
  if (!c.target.empty()) throw OptionError("--target is a CSV column: --model gpt has none");
  (void)gpt_options(c);
}

vt::GptOptions gpt_options(const RunConfig& c) {
  auto o = vt::GptOptions{}
               .with_vocab_size(kVocab)
               .with_context(c.context)
               .with_layers(c.layers)
               .with_heads(c.heads)
               .with_embed(c.embed)
               .with_dropout(c.dropout);
  try {
    o.validate();
  } catch (const OptionError& e) {
    throw OptionError(fmt::format("--model gpt: {}", e.what()));
  }
  return o;
}

std::string model_summary(const RunConfig& c) {
  const auto n = [](std::int64_t v, const char* what) {
    return fmt::format("{} {}{}", v, what, v == 1 ? "" : "s");
  };
  return fmt::format("gpt, {}, {}, {} wide, context {}", n(c.layers, "layer"), n(c.heads, "head"),
                     c.embed, c.context);
}

fs::path corpus_dir(const fs::path& run_dir) {
  return run_dir / "data";
}

LmData load_lm_data(const RunConfig& c, const fs::path& run_dir, bool build) {
  const fs::path dir = corpus_dir(run_dir);
  const std::string source = c.data.substr(5);
  LmData d;
  if (build) {
    d.corpus = vt::build_text_corpus(source, dir, c.context + 1);
  } else {
    if (!fs::exists(dir / "corpus.json"))
      throw InputError(fmt::format(
          "{} is missing: the run's copy of its corpus is gone (start over with --fresh)",
          (dir / "corpus.json").string()));
    d.corpus = vt::open_text_corpus(dir);
  }
  const auto base = vt::TokenWindowOptions{}
                        .with_path(d.corpus.tokens)
                        .with_dtype(vt::TokenDType::U8)
                        .with_context(c.context)
                        .with_batch_size(c.batch_size)
                        .with_vocab_size(kVocab);
  d.train = vt::TokenWindowOptions(base)
                .with_seed(c.seed)
                .with_segments(d.corpus.train_segments())
                .with_mode(vt::WindowMode::Random);
  d.validation = vt::TokenWindowOptions(base)
                     .with_segments(d.corpus.validation_segments())
                     .with_mode(vt::WindowMode::Sequential);
  d.test = vt::TokenWindowOptions(base)
               .with_segments(d.corpus.test_segments())
               .with_mode(vt::WindowMode::Sequential);
  d.description = d.corpus.description(source);
  return d;
}

LmEval evaluate_lm(vt::GptImpl& model, const vt::TokenWindowOptions& test) {
  vt::TokenWindowSource source(test);
  const bool was_training = model.is_training();
  model.eval();
  ::torch::NoGradGuard no_grad;
  double sum = 0;
  LmEval out;
  source.set_epoch(0);
  while (auto batch = source.next()) {
    const auto logits = model.forward(batch->x);
    sum += F::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch->y.reshape(-1),
                            F::CrossEntropyFuncOptions().reduction(::torch::kSum))
               .item<double>();
    out.tokens += batch->y.numel();
  }
  model.train(was_training);
  if (out.tokens == 0) throw InputError("the test split has no window to score");
  out.loss = sum / static_cast<double>(out.tokens);
  out.perplexity = std::exp(out.loss);
  return out;
}

int run_lm_train(const TrainArgs& a, RunConfig& config, bool resuming, RunLock lock) {
  const fs::path run_dir = a.run_dir;
  const LmData data = load_lm_data(config, run_dir, /*build=*/!resuming);
  const auto bytes = [](const std::vector<vt::TokenSegment>& segments) {
    std::int64_t n = 0;
    for (const auto& s : segments) n += s.end - s.begin;
    return n;
  };
  fmt::print("data: {}: {} train, {} validation, {} test bytes\n", data.description,
             bytes(data.corpus.train_segments()), bytes(data.corpus.validation_segments()),
             bytes(data.corpus.test_segments()));
  vt::seed_torch(config.seed);
  vt::Gpt net(gpt_options(config));
  apply_init_from(config, *net, run_dir, resuming);
  apply_freeze(config, *net);
  fmt::print("model: {}: {} parameters\n", model_summary(config), net->num_parameters());
  auto optimizer = build_optimizer(config, vt::unique_parameters(*net));
  const MainRun r = open_run(run_dir, config, checkpoint_options(config), std::move(lock));
  vt::Trainer trainer(trainer_options(config).with_model_metadata(model_metadata(net)));
  add_main_callbacks(trainer, r, config, nullptr, a, [&net, &data] {
    const LmEval test = evaluate_lm(*net, data.test);
    return Logs{{"loss", test.loss}, {"perplexity", test.perplexity}};
  });
  announce_start(run_dir, resuming, r);

  vt::TokenWindowSource train(data.train);
  vt::TokenWindowSource validation(data.validation);
  vt::FitResult fit;
  const auto started = std::chrono::steady_clock::now();
  {
    vt::StopSignals signals;
    fit = trainer.fit<vt::TokenBatch>(net.ptr(), *optimizer, train, lm_step(net), &validation);
  }
  const double fit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (fit.interrupted) return report_interrupt(run_dir, fit, r, 0, config);
  finish_lm(run_dir, net, data, fit, r, fit_seconds);
  return 0;
}

}  // namespace vigil::cli
