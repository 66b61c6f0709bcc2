// run.json, resume rules and data loading shared by `vigil train` and `vigil
// eval`.
#include "torch_common.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

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

std::string sizes_to_string(const std::vector<std::int64_t>& sizes) {
  return fmt::format("{}", fmt::join(sizes, ","));
}

nlohmann::json RunConfig::to_json() const {
  return {
      {"data", data},
      {"target", target},
      {"task", task},
      {"validation_split", validation_split},
      {"test_split", test_split},
      {"limit_train", limit_train},
      {"limit_test", limit_test},
      {"model", model},
      {"hidden", hidden},
      {"channels", channels},
      {"dropout", dropout},
      {"batch_norm", batch_norm},
      {"epochs", epochs},
      {"batch_size", batch_size},
      {"lr", lr},
      {"optimizer", optimizer},
      {"momentum", momentum},
      {"weight_decay", weight_decay},
      {"seed", seed},
      {"threads", threads},
      {"early_stopping", early_stopping.to_json()},
      {"restore_best_weights", restore_best_weights},
      {"save_top_k", save_top_k},
      {"keep_last", keep_last},
      {"save_every_n_epochs", save_every_n_epochs},
      {"save_every_n_steps", save_every_n_steps},
      {"save_best_only", save_best_only},
      {"async_save", async_save},
      {"filename", filename},
      {"reduce_lr_patience", reduce_lr_patience},
      {"reduce_lr_factor", reduce_lr_factor},
      {"min_lr", min_lr},
      {"cooldown", cooldown},
      {"standardizer", standardizer},
  };
}

RunConfig RunConfig::from_json(const nlohmann::json& j, const RunConfig& d) {
  if (!j.is_object()) throw InputError("run.json is not a JSON object");
  RunConfig c = d;
  try {
    auto get = [&](const char* key, auto& field) {
      if (j.contains(key) && !j.at(key).is_null()) j.at(key).get_to(field);
    };
    get("data", c.data);
    get("target", c.target);
    get("task", c.task);
    get("validation_split", c.validation_split);
    get("test_split", c.test_split);
    get("limit_train", c.limit_train);
    get("limit_test", c.limit_test);
    get("model", c.model);
    get("hidden", c.hidden);
    get("channels", c.channels);
    get("dropout", c.dropout);
    get("batch_norm", c.batch_norm);
    get("epochs", c.epochs);
    get("batch_size", c.batch_size);
    get("lr", c.lr);
    get("optimizer", c.optimizer);
    get("momentum", c.momentum);
    get("weight_decay", c.weight_decay);
    get("seed", c.seed);
    get("threads", c.threads);
    if (j.contains("early_stopping"))
      c.early_stopping = EarlyStoppingOptions::from_json(j.at("early_stopping"), d.early_stopping);
    get("restore_best_weights", c.restore_best_weights);
    get("save_top_k", c.save_top_k);
    get("keep_last", c.keep_last);
    get("save_every_n_epochs", c.save_every_n_epochs);
    get("save_every_n_steps", c.save_every_n_steps);
    get("save_best_only", c.save_best_only);
    get("async_save", c.async_save);
    get("filename", c.filename);
    get("reduce_lr_patience", c.reduce_lr_patience);
    get("reduce_lr_factor", c.reduce_lr_factor);
    get("min_lr", c.min_lr);
    get("cooldown", c.cooldown);
    if (j.contains("standardizer")) c.standardizer = j.at("standardizer");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("run.json has a value of the wrong type ({})", e.what()));
  }
  return c;
}

const std::set<std::string>& frozen_keys() {
  static const std::set<std::string> keys = {"data",
                                             "target",
                                             "task",
                                             "validation_split",
                                             "test_split",
                                             "limit_train",
                                             "model",
                                             "hidden",
                                             "channels",
                                             "dropout",
                                             "batch_norm",
                                             "batch_size",
                                             "lr",
                                             "optimizer",
                                             "momentum",
                                             "weight_decay",
                                             "seed",
                                             "early_stopping.monitor",
                                             "early_stopping.mode",
                                             "early_stopping.rule"};
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
    const auto ptr = nlohmann::json::json_pointer("/" + [&] {
      std::string p = key;
      for (auto& ch : p)
        if (ch == '.') ch = '/';
      return p;
    }());
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
    auto tt = vt::train_validation_split(csv.data, c.test_split, seed ^ 0x7e57'0000'0000'7e57ULL);
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
