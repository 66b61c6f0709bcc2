// run.json, resume rules and data loading shared by `vigil train` and `vigil
// eval`.
#include "torch_common.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>

#include "vigil/error.hpp"

namespace vigil::cli {

namespace vt = vigil::torch;

std::vector<std::int64_t> parse_sizes(const std::string& text, const char* flag) {
  std::vector<std::int64_t> out;
  if (text.empty()) return out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto comma = text.find(',', pos);
    const auto part =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc{} || end != part.data() + part.size() || v < 1)
      throw OptionError(
          fmt::format("{} takes positive integers separated by commas, got '{}'", flag, text));
    out.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot read {}", path.string()));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{} is not valid JSON ({})", path.string(), e.what()));
  }
}

std::string sizes_to_string(const std::vector<std::int64_t>& sizes) {
  return fmt::format("{}", fmt::join(sizes, ","));
}

namespace {

// A plain member as run.json holds it. Null keeps the value, as an absent key does. A value of
// the wrong type is bad input (the file's, exit 1), while the same reader behind a flag reports
// an OptionError naming the key.
template <class T>
OptionField<RunConfig> member(std::string key, T RunConfig::*m, std::string help) {
  auto f = option_field(std::move(key), m, std::move(help));
  if (!f.set_text)
    f.set_text = [set = f.set](RunConfig& c, std::string_view text) {
      set(c, vigil::detail::text_to_json(text));
    };
  f.set = [set = f.set](RunConfig& c, const nlohmann::json& v) {
    if (v.is_null()) return;
    try {
      set(c, v);
    } catch (const OptionError& e) {
      throw InputError(fmt::format("run.json has a value of the wrong type ({})", e.what()));
    }
  };
  return f;
}

// A list of layer sizes: a JSON array in run.json, "256,256" on the command line.
OptionField<RunConfig> sizes(std::string key, std::vector<std::int64_t> RunConfig::*m,
                             std::string help) {
  OptionField<RunConfig> f;
  f.key = std::move(key);
  f.help = std::move(help);
  f.get = [m](const RunConfig& c) { return nlohmann::json(c.*m); };
  f.set = [m, key = f.key](RunConfig& c, const nlohmann::json& v) {
    if (v.is_null()) return;
    std::vector<std::int64_t> out;
    if (v.is_array())
      for (const auto& item : v)
        if (item.is_number_integer()) out.push_back(item.get<std::int64_t>());
    if (!v.is_array() || out.size() != v.size())
      throw InputError(
          fmt::format("run.json has a value of the wrong type (option '{}' must be "
                      "a list of whole numbers, not {})",
                      key, v.dump()));
    c.*m = std::move(out);
  };
  f.set_text = [m, flag = flag_names(f)](RunConfig& c, std::string_view text) {
    c.*m = parse_sizes(std::string(text), flag.c_str());
  };
  return f;
}

constexpr const char* kData = "Data";
constexpr const char* kModel = "Model";
constexpr const char* kOpt = "Optimisation";
constexpr const char* kStop = "Early stopping";
constexpr const char* kCkpt = "Checkpoints";
constexpr auto kFrozen = OnResume::Frozen;
constexpr auto kMayChange = OnResume::MayChange;

// The early-stopping keys a resume may not change (the rest of that object may).
constexpr const char* kFrozenEarlyStopping[] = {"monitor", "mode", "rule"};

// run.json's "early_stopping" object, written and read by EarlyStoppingOptions itself.
OptionField<RunConfig> early_stopping_object() {
  OptionField<RunConfig> f;
  f.key = "early_stopping";
  f.help = "The early-stopping options (EarlyStoppingOptions::to_json)";
  f.get = [](const RunConfig& c) { return c.early_stopping.to_json(); };
  f.set = [](RunConfig& c, const nlohmann::json& v) {
    c.early_stopping = EarlyStoppingOptions::from_json(v, c.early_stopping);
  };
  return f;
}

// A record made at the first start (a JSON value kept as it is), never given as a flag.
OptionField<RunConfig> record_field(std::string key, std::string help,
                                    nlohmann::json RunConfig::*member) {
  OptionField<RunConfig> f;
  f.key = std::move(key);
  f.help = std::move(help);
  f.get = [member](const RunConfig& c) { return c.*member; };
  f.set = [member](RunConfig& c, const nlohmann::json& v) { c.*member = v; };
  return f;
}

std::vector<RunField> make_run_fields() {
  using C = RunConfig;
  auto restore = member("restore_best_weights", &C::restore_best_weights,
                        "Load the best epoch's weights when training ends (default on)");
  restore.negatable = true;
  return {
      {member("data", &C::data,
              "Folder of the Fashion-MNIST IDX files (.gz or raw), csv:FILE for a CSV table, or "
              "text:PATH (a text file or a folder of them) for --model gpt (default "
              "text:/usr/share/games/fortunes)"),
       kData, kFrozen},
      {member("target", &C::target, "CSV: the column to predict"), kData, kFrozen},
      {member("task", &C::task, "CSV: auto, classification or regression"), kData, kFrozen},
      {member("validation_split", &C::validation_split,
              "Fraction of the training set held out for validation (by --seed)"),
       kData, kFrozen},
      {member("test_split", &C::test_split, "CSV: fraction of the rows held out as test set"),
       kData, kFrozen},
      {member("limit_train", &C::limit_train, "Use only the first N training examples (0 = all)"),
       kData, kFrozen},
      {member("limit_test", &C::limit_test, "Use only the first N test examples (0 = all)"), kData,
       kMayChange},
      {member("eval_test_every_epoch", &C::eval_test_every_epoch,
              "Also evaluate the test set after every validation and log test_loss (and "
              "test_accuracy or test_perplexity) in metrics.csv: a record for judging stopping "
              "rules afterwards, NOT for model selection (--monitor test_* is refused); training, "
              "stopping, checkpoints and result.json are unchanged"),
       kData, kFrozen},

      {member("model", &C::model,
              "mlp, cnn, or gpt (a byte-level transformer language model on --data text:PATH)"),
       kModel, kFrozen},
      {sizes("hidden", &C::hidden, "Hidden layer sizes, e.g. 256,256"), kModel, kFrozen},
      {sizes("channels", &C::channels, "cnn: channels of each conv block"), kModel, kFrozen},
      {member("dropout", &C::dropout,
              "Dropout after each hidden layer, or in each gpt block (0 = none)"),
       kModel, kFrozen},
      {member("batch_norm", &C::batch_norm, "cnn: BatchNorm2d after each convolution"), kModel,
       kFrozen},
      {member("preset", &C::preset,
              "gpt: small (6 layers, 6 heads, 384 wide, context 256) or base (12, 12, 768, 1024) "
              "for the sizes not given (default: 2 layers, 4 heads, 64 wide, context 64)"),
       kModel, kFrozen},
      {member("context", &C::context, "gpt: tokens (bytes) each prediction sees"), kModel, kFrozen},
      {member("layers", &C::layers, "gpt: transformer blocks"), kModel, kFrozen},
      {member("heads", &C::heads, "gpt: attention heads (must divide --embed)"), kModel, kFrozen},
      {member("embed", &C::embed, "gpt: width of the embeddings and blocks"), kModel, kFrozen},

      {member("init_from", &C::init_from,
              "Start from these weights (a .safetensors file, a checkpoint folder or a run "
              "directory's best), weights only: optimizer and schedule start fresh"),
       kModel, kFrozen},
      {member("freeze", &C::freeze,
              "Parameters whose names match this regex do not train (requires_grad false), e.g. "
              "'^(1|3)\\.' for the second and fourth layers of an mlp; searched anywhere in the "
              "state_dict name"),
       kModel, kFrozen},

      {member("epochs", &C::epochs, "Epochs to train at most"), kOpt, kMayChange},
      {member("batch_size", &C::batch_size, "Examples per batch"), kOpt, kFrozen},
      {member("lr", &C::lr, "Learning rate"), kOpt, kFrozen},
      {member("optimizer", &C::optimizer, "sgd, adam, adamw, rmsprop or adagrad"), kOpt, kFrozen},
      {member("momentum", &C::momentum, "sgd/rmsprop momentum"), kOpt, kFrozen},
      {member("weight_decay", &C::weight_decay, "Weight decay"), kOpt, kFrozen},
      {member("seed", &C::seed, "Seeds weights, validation split and data order"), kOpt, kFrozen},
      {member("threads", &C::threads,
              "libtorch threads (0 = libtorch's default; 1 = bit-reproducible)"),
       kOpt, kMayChange},
      {member("max_steps", &C::max_steps,
              "End after N optimizer steps, even inside an epoch (0 = after --epochs)"),
       kOpt, kMayChange},
      {member("val_every_n_steps", &C::val_every_n_steps,
              "Validate, early-stop and checkpoint every N optimizer steps instead of every "
              "epoch (0 = every epoch); patience then counts validations"),
       kOpt, kFrozen},
      {member("accumulate", &C::accumulate,
              "Average the gradients of N batches into one optimizer step"),
       kOpt, kFrozen},
      {member("clip_grad_norm", &C::clip_grad_norm,
              "Clip the gradients' global L2 norm to X before each step (0 = off)"),
       kOpt, kFrozen},
      {member("lr_schedule", &C::lr_schedule,
              "constant, step:SIZE:GAMMA (lr *= GAMMA every SIZE steps), cosine or linear (from "
              "--lr to --final-lr over all the planned steps), after the warm-up"),
       kOpt, kFrozen},
      {member("warmup_steps", &C::warmup_steps,
              "Optimizer steps of linear warm-up to --lr (0 = none)"),
       kOpt, kFrozen},
      {member("final_lr", &C::final_lr, "cosine/linear: the lr at the last planned step"), kOpt,
       kFrozen},
      {member("reduce_lr_patience", &C::reduce_lr_patience,
              "ReduceLROnPlateau: epochs without improvement before reducing the lr (-1 = off)"),
       kOpt, kMayChange},
      {member("reduce_lr_factor", &C::reduce_lr_factor, "ReduceLROnPlateau: lr *= factor"), kOpt,
       kMayChange},
      {member("min_lr", &C::min_lr, "ReduceLROnPlateau: lower bound of the lr"), kOpt, kMayChange},
      {member("cooldown", &C::cooldown, "ReduceLROnPlateau: epochs to wait after a reduction"),
       kOpt, kMayChange},
      {member("ema", &C::ema,
              "Keep an exponential moving average of the weights with this decay, in (0, 1), "
              "e.g. 0.999; checkpointed as ema.safetensors (default off)"),
       kOpt, kFrozen},
      {member("ema_validate", &C::ema_validate,
              "Validate the averaged weights (needs --ema): best/ and the restored best weights "
              "are averaged ones"),
       kOpt, kFrozen},

      // Its flags are the early-stopping options' own (torch_train_flags.cpp); some of its keys
      // are frozen (kFrozenEarlyStopping).
      {early_stopping_object(), "", kMayChange},
      {restore, kStop, kMayChange},
      {member("reference_runs", &C::reference_runs,
              "--rule median|percentile: a glob of earlier runs' metrics.csv (or run folders) to "
              "compare with; read at the first start, the same curves on resume"),
       kStop, kFrozen},

      {member("save_top_k", &C::save_top_k,
              "Keep the k best checkpoints by --monitor (-1 = all, 0 = no such rule)"),
       kCkpt, kMayChange},
      {member("keep_last", &C::keep_last,
              "Keep the n newest checkpoints (-1 = all, 0 = no such rule)"),
       kCkpt, kMayChange},
      {member("save_every_n_epochs", &C::save_every_n_epochs,
              "Checkpoint every n epochs (0 = never at epoch ends)"),
       kCkpt, kMayChange},
      {member("save_every_n_steps", &C::save_every_n_steps,
              "Also checkpoint every n optimizer steps (0 = off)"),
       kCkpt, kMayChange},
      {member("save_best_only", &C::save_best_only, "Checkpoint only when --monitor improves"),
       kCkpt, kMayChange},
      {member("async_save", &C::async_save, "Write checkpoints in the background"), kCkpt,
       kMayChange},
      {member("filename", &C::filename,
              "Checkpoint folder name template, e.g. epoch-{epoch:04d}-{val_loss:.4f}"),
       kCkpt, kMayChange},

      // Computed from the data, never given: no flag.
      {record_field("standardizer",
                    "CSV: the training features' mean and deviation, set at the first start",
                    &C::standardizer),
       "", kMayChange},
      {record_field(
           "init_source",
           "Warm start: the weights file read at the first start, its XXH3 and tensor count",
           &C::init_source),
       "", kMayChange},
      {record_field(
           "reference_curves",
           "median/percentile: the reference runs read at the first start (paths, XXH3, values)",
           &C::reference_curves),
       "", kMayChange},
      // A record, not an option: it is never given, so it is never compared on resume.
      {member("run_id", &C::run_id,
              "The run's id, made at its first start; every checkpoint records it"),
       "", kMayChange},
  };
}

// The fields alone, for the generic table functions.
std::span<const OptionField<RunConfig>> config_fields() {
  static const std::vector<OptionField<RunConfig>> fields = [] {
    std::vector<OptionField<RunConfig>> out;
    for (const auto& f : run_fields()) out.push_back(f.field);
    return out;
  }();
  return fields;
}

}  // namespace

std::span<const RunField> run_fields() {
  static const std::vector<RunField> fields = make_run_fields();
  return fields;
}

nlohmann::json RunConfig::to_json() const {
  return options_to_json(*this, config_fields());
}

RunConfig RunConfig::from_json(const nlohmann::json& j, const RunConfig& d) {
  if (!j.is_object()) throw InputError("run.json is not a JSON object");
  // A mistyped key would otherwise be dropped silently and its option take its default on
  // resume. run.json has always had exactly these keys, so no older spelling is accepted.
  for (const auto& [key, value] : j.items())
    if (find_field(config_fields(), key) == nullptr)
      throw OptionError(fmt::format("run.json has an unknown key '{}' (known: {})", key,
                                    known_keys(config_fields())));
  return options_from_json(j, d, config_fields(), "run.json");
}

const std::set<std::string>& frozen_keys() {
  static const std::set<std::string> keys = [] {
    std::set<std::string> out;
    for (const auto& f : run_fields())
      if (f.on_resume == OnResume::Frozen) out.insert(f.field.key);
    for (const char* key : kFrozenEarlyStopping) out.insert(std::string("early_stopping.") + key);
    return out;
  }();
  return keys;
}

namespace {

std::string flag_of(const std::string& key) {
  auto k = key.rfind("early_stopping.", 0) == 0 ? key.substr(15) : key;
  if (k == "rules") k = "rule";
  std::string f = "--";
  for (char ch : k) f += ch == '_' ? '-' : ch;
  return f;
}

std::string show(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array() && std::all_of(v.begin(), v.end(), [](auto& x) { return x.is_number(); })) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x.dump();
    return s.empty() ? "(none)" : s;
  }
  return v.dump();
}

}  // namespace

nlohmann::json merge_for_resume(const nlohmann::json& recorded, const nlohmann::json& given,
                                const std::set<std::string>& explicit_keys,
                                const std::filesystem::path& run_dir) {
  nlohmann::json merged = recorded;
  for (const auto& key : explicit_keys) {
    // "early_stopping.patience" -> "/early_stopping/patience".
    std::string path = "/";
    path.append(key);
    std::replace(path.begin(), path.end(), '.', '/');
    const auto ptr = nlohmann::json::json_pointer(path);
    if (!given.contains(ptr)) continue;
    const auto& now = given.at(ptr);
    if (frozen_keys().count(key) && merged.contains(ptr) && merged.at(ptr) != now) {
      throw OptionError(fmt::format(
          "{} cannot change when resuming {} (the run was started "
          "with {} {}, now {}): drop the "
          "flag to resume, or add --fresh to start a new run (the "
          "old one is moved aside)",
          flag_of(key), run_dir.string(), flag_of(key), show(merged.at(ptr)), show(now)));
    }
    merged[ptr] = now;
  }
  return merged;
}

RunData load_run_data(RunConfig& c, bool need_train) {
  RunData out;
  const std::uint64_t seed = c.seed;
  if (c.data.rfind("csv:", 0) == 0) {
    const std::filesystem::path file = c.data.substr(4);
    if (c.target.empty())
      throw OptionError("--data csv:FILE needs --target COLUMN, the column to predict");
    auto csv = vt::load_csv(
        file, vt::CsvOptions{}.with_target(c.target).with_task(vt::parse_task(c.task)));
    // The test rows are held out first, with their own seed, so that
    // --limit-train and the validation split never change which rows are
    // tested.
    auto tt =
        vt::train_validation_split(csv.data, c.test_split, seed ^ 0x7e57'0000'0000'7e57ULL, "test");
    vt::Dataset pool = c.limit_train > 0 ? tt.train.head(c.limit_train) : tt.train;
    auto tv = vt::train_validation_split(pool, c.validation_split, seed);
    vt::Standardizer st;
    if (c.standardizer.is_object()) {
      st = vt::Standardizer::from_json(c.standardizer);
    } else {
      st = vt::Standardizer::fit(tv.train.features);
      c.standardizer = st.to_json();
    }
    out.test = c.limit_test > 0 ? tt.validation.head(c.limit_test) : tt.validation;
    out.test.features = st.apply(out.test.features);
    if (need_train) {
      out.train = tv.train;
      out.validation = tv.validation;
      out.train.features = st.apply(out.train.features);
      if (out.validation.size() > 0) out.validation.features = st.apply(out.validation.features);
    }
    out.classification = csv.task == vt::Task::Classification;
    out.spec.input_shape = {static_cast<std::int64_t>(csv.feature_names.size())};
    out.spec.outputs = out.classification ? csv.num_classes : 1;
    out.description = fmt::format("{} ({} {}, target {})", file.string(),
                                  out.classification ? "classification" : "regression",
                                  fmt::format("{} rows", csv.data.size()), c.target);
  } else {
    auto opts = vt::FashionMnistOptions{}.with_root(c.data);
    if (need_train) {
      auto train = vt::load_fashion_mnist(
          vt::Split::Train,
          vt::FashionMnistOptions(opts).with_limit(
              c.limit_train > 0 ? std::optional<std::int64_t>(c.limit_train) : std::nullopt));
      auto tv = vt::train_validation_split(train, c.validation_split, seed);
      out.train = std::move(tv.train);
      out.validation = std::move(tv.validation);
    }
    out.test = vt::load_fashion_mnist(
        vt::Split::Test,
        vt::FashionMnistOptions(opts).with_limit(
            c.limit_test > 0 ? std::optional<std::int64_t>(c.limit_test) : std::nullopt));
    out.classification = true;
    out.spec.input_shape = {1, 28, 28};
    out.spec.outputs = 10;
    out.description = fmt::format("Fashion-MNIST from {}", c.data);
  }
  out.spec.kind = c.model;
  out.spec.hidden = c.hidden;
  out.spec.channels = c.channels;
  out.spec.dropout = c.dropout;
  out.spec.batch_norm = c.batch_norm;
  out.spec.validate();
  return out;
}

}  // namespace vigil::cli
