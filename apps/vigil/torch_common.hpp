// What `vigil train` and `vigil eval` share: the run's options (run.json), the
// rules for changing them on resume, and loading the data set and model they
// describe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/early_stopping.hpp"
#include "vigil/option_table.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/models.hpp"

namespace vigil::cli {

/// The options of a training run, as run.json records them (keys are the flag
/// names with '_').
struct RunConfig {
  // Data.
  std::string data{vigil::torch::kFashionMnistDir};  ///< IDX folder, "csv:FILE" or "text:PATH"
  std::string target;                                ///< csv: the column to predict
  std::string task = "auto";                         ///< csv: auto|classification|regression
  double validation_split = 0.1;  ///< fraction of the training set held out for validation
  double test_split = 0.2;        ///< csv: fraction held out as the test set
  std::int64_t limit_train = 0;   ///< use only the first N training examples (0 = all)
  std::int64_t limit_test = 0;    ///< use only the first N test examples (0 = all)
  /// Also evaluate the test set at every validation and log it (test_loss, ...) in metrics.csv:
  /// curves for judging stopping rules, never read by training, stopping or checkpoints.
  bool eval_test_every_epoch = false;
  // Model.
  std::string model = "mlp";
  std::vector<std::int64_t> hidden{256, 256};
  std::vector<std::int64_t> channels{16, 32};
  double dropout = 0.0;
  bool batch_norm = false;
  // gpt (vigil/torch/gpt.hpp); --preset sets the ones not given.
  std::string preset;         ///< "", "small" or "base"
  std::int64_t context = 64;  ///< tokens per window
  std::int64_t layers = 2;
  std::int64_t heads = 4;
  std::int64_t embed = 64;
  // Optimisation.
  int epochs = 30;
  std::int64_t batch_size = 64;
  double lr = 1e-3;
  std::string optimizer = "adam";
  double momentum = 0.0;
  double weight_decay = 0.0;
  std::uint64_t seed = 0;
  int threads = 0;
  std::int64_t max_steps = 0;          ///< end after N optimizer steps (0 = by epochs)
  std::int64_t val_every_n_steps = 0;  ///< validate every N steps (0 = every epoch)
  int accumulate = 1;                  ///< micro-batches per optimizer step
  double clip_grad_norm = 0;           ///< clip the gradients' global norm (0 = off)
  // The lr schedule (LRSchedule; none when constant without warm-up).
  std::string lr_schedule = "constant";  ///< constant|step:SIZE:GAMMA|cosine|linear
  std::int64_t warmup_steps = 0;         ///< linear warm-up steps
  double final_lr = 0.0;                 ///< cosine/linear: the lr reached at the last step
  // Early stopping (the core options) and restore_best_weights.
  EarlyStoppingOptions early_stopping = EarlyStoppingOptions{}.with_patience(3);
  bool restore_best_weights = true;
  // The median/percentile rules' earlier runs: the glob given, and (set at the first start) the
  // curves read from what it matched, which a resume reuses.
  std::string reference_runs;
  nlohmann::json reference_curves;
  // Checkpoints.
  int save_top_k = 1;
  int keep_last = 2;
  int save_every_n_epochs = 1;
  std::int64_t save_every_n_steps = 0;
  bool save_best_only = false;
  bool async_save = false;
  std::string filename = "epoch-{epoch:04d}";
  // ReduceLROnPlateau (off unless reduce_lr_patience >= 0).
  int reduce_lr_patience = -1;
  double reduce_lr_factor = 0.1;
  double min_lr = 0.0;
  int cooldown = 0;
  // An exponential moving average of the weights (off unless ema is set), see vigil/torch/ema.hpp.
  std::optional<double> ema;  ///< its decay, in (0, 1)
  bool ema_validate = false;  ///< validate (and keep as best) the averaged weights
  // Warm start: the weights a fresh run begins from, and (set at that start) what was read.
  std::string init_from;
  nlohmann::json init_source;
  // Parameters that do not train (vigil/torch/freeze.hpp): a regex over state_dict names.
  std::string freeze;
  // Set at the first start of a CSV run: the training features' statistics.
  nlohmann::json standardizer;
  // Set at the first start (or the first resume of a run made before run ids): what ties the
  // run's checkpoints to it.
  std::string run_id;

  /// Every field of run_fields(), in run.json's shape.
  nlohmann::json to_json() const;
  /// Keys absent from `j` (or null) keep the values of `defaults`. Throws OptionError for a key
  /// run.json does not have (listing the ones it has), and InputError for a value of the wrong
  /// type.
  static RunConfig from_json(const nlohmann::json& j, const RunConfig& defaults);
  static RunConfig from_json(const nlohmann::json& j) { return from_json(j, RunConfig{}); }
};

/// Whether a run.json key may take another value when a run resumes.
enum class OnResume {
  MayChange,  ///< e.g. epochs, patience: given again, the new value applies
  Frozen,     ///< e.g. data, model shape, seed: another value is refused (start with --fresh)
};

/// One top-level key of run.json: the field (key, help line, reader, writer), the --help group
/// of its flag (empty: no flag of its own) and what a resume may do with it.
struct RunField {
  OptionField<RunConfig> field;
  std::string group;
  OnResume on_resume = OnResume::MayChange;
};

/// RunConfig's fields, one per top-level key of run.json, in the order of `vigil train --help`.
std::span<const RunField> run_fields();

/// Keys of run.json that cannot change when a run resumes (data, model shape,
/// seed, ...); nested keys are written "early_stopping.monitor".
const std::set<std::string>& frozen_keys();

/// For a resume: starts from `recorded` (the run.json) and overrides it with
/// the keys the user gave explicitly in `given`. A frozen key with another
/// value throws OptionError naming the flag, both values, and --fresh.
nlohmann::json merge_for_resume(const nlohmann::json& recorded, const nlohmann::json& given,
                                const std::set<std::string>& explicit_keys,
                                const std::filesystem::path& run_dir);

/// Parses a JSON file (run.json); InputError naming it when it cannot be read or parsed.
nlohmann::json read_json_file(const std::filesystem::path& path);

/// The data sets of a run, ready for the model.
struct RunData {
  vigil::torch::Dataset train;
  vigil::torch::Dataset validation;
  vigil::torch::Dataset test;
  vigil::torch::ModelSpec spec;  ///< input shape and outputs set from the data
  std::string description;       ///< e.g. "Fashion-MNIST (54000 train, 6000 validation)"
  bool classification = true;
};

/// Loads what `config` describes. `need_train` false loads only the test set
/// (for eval). Fills config.standardizer for a CSV run the first time (later
/// runs reuse the recorded one).
RunData load_run_data(RunConfig& config, bool need_train = true);

/// Parses "256,256" (empty string = no hidden layer); throws OptionError for
/// bad values.
std::vector<std::int64_t> parse_sizes(const std::string& text, const char* flag);
std::string sizes_to_string(const std::vector<std::int64_t>& sizes);

}  // namespace vigil::cli
