// `vigil train --model gpt`: a byte-level transformer language model on a text corpus (its data,
// model, step and report); `vigil eval` and `vigil generate` load what it saved.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include "torch_common.hpp"
#include "torch_train.hpp"
#include "vigil/run_lock.hpp"
#include "vigil/torch/gpt.hpp"
#include "vigil/torch/text_corpus.hpp"
#include "vigil/torch/token_windows.hpp"

namespace vigil::cli {

/// The corpus `--model gpt` reads when --data is not given.
inline constexpr const char* kDefaultTextData = "text:/usr/share/games/fortunes";

/// Whether `config` describes a language-model run.
bool is_lm(const RunConfig& config);

/// For a fresh run: the language model's defaults for every option not in `given` (run.json
/// keys), and --preset's sizes. Throws OptionError for an unknown preset, a preset or text data
/// without --model gpt, or gpt without text data.
void apply_lm_defaults(RunConfig& config, const std::set<std::string>& given);

/// Refuses what a language-model run cannot do (OptionError naming the flag): no --max-steps or
/// --val-every-n-steps (its windows are endless), CSV options.
void check_lm(const RunConfig& config);

/// The model `config` describes (validated; OptionError naming the flag).
vigil::torch::GptOptions gpt_options(const RunConfig& config);

/// "gpt, 1 layer, 2 heads, 32 wide, context 32".
std::string model_summary(const RunConfig& config);

/// A run's corpus and the three window sources' options.
struct LmData {
  vigil::torch::TextCorpus corpus;
  vigil::torch::TokenWindowOptions train;       ///< random windows, endless
  vigil::torch::TokenWindowOptions validation;  ///< every window of the validation split
  vigil::torch::TokenWindowOptions test;        ///< every window of the test split
  std::string description;
};

/// The run's own copy of its corpus, in RUN_DIR/data: made from --data at the first start and
/// reopened (size and XXH3 checked) afterwards, so that a run resumes, evaluates and generates
/// from the bytes it trained on even if the source changes.
std::filesystem::path corpus_dir(const std::filesystem::path& run_dir);

/// Opens (or, when `build` and it is absent, makes) the corpus of the run in `run_dir`.
LmData load_lm_data(const RunConfig& config, const std::filesystem::path& run_dir, bool build);

/// Test loss in nats per byte of `model` on every window `test` describes.
struct LmEval {
  double loss = 0;
  double perplexity = 0;
  std::int64_t tokens = 0;  ///< targets scored
};
LmEval evaluate_lm(vigil::torch::GptImpl& model, const vigil::torch::TokenWindowOptions& test);

/// Trains the language model `config` describes (resolved: defaults applied, or run.json's on
/// resume); returns the exit code.
int run_lm_train(const TrainArgs& a, RunConfig& config, bool resuming, RunLock lock);

}  // namespace vigil::cli
