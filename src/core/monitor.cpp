// The monitored metric: direction inference, Keras' improvement test, non-finite JSON numbers.
#include "vigil/monitor.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "detail/enum_names.hpp"

namespace vigil {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string> tokens(std::string_view name) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : lower(name)) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      cur.push_back(c);
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Exact token match, or match once trailing digits are dropped ("map50", "top5", "acc1").
bool token_in(const std::string& token, std::span<const std::string_view> set) {
  std::string_view t = token;
  for (auto s : set)
    if (t == s) return true;
  auto end = t.find_last_not_of("0123456789");
  if (end == std::string_view::npos || end + 1 == t.size()) return false;
  t = t.substr(0, end + 1);
  for (auto s : set)
    if (t == s) return true;
  return false;
}

constexpr std::string_view kMaxNames[] = {
    "accuracy", "acc",      "auc",         "auroc",       "precision", "recall", "f1",
    "fbeta",    "fmeasure", "iou",         "miou",        "jaccard",   "dice",   "map",
    "ap",       "score",    "top",         "r2",          "bleu",      "rouge",  "ndcg",
    "psnr",     "ssim",     "sensitivity", "specificity", "mcc",       "kappa"};
constexpr std::string_view kMinNames[] = {
    "loss",    "error", "err",        "mse", "mae", "rmse",         "mape",
    "msle",    "rmsle", "perplexity", "ppl", "nll", "crossentropy", "entropy",
    "cer",     "wer",   "hinge",      "kld", "kl",  "divergence",   "huber",
    "logcosh", "bpd",   "distance",   "cost"};

constexpr detail::EnumName<ModeSetting> kModeSettingNames[] = {
    {ModeSetting::Min, "min"}, {ModeSetting::Max, "max"}, {ModeSetting::Auto, "auto"}};

}  // namespace

std::string_view mode_name(Mode mode) {
  return mode == Mode::Min ? "min" : "max";
}

std::string_view mode_name(ModeSetting setting) {
  return detail::name_of(kModeSettingNames, setting, "auto");
}

ModeSetting parse_mode_setting(std::string_view text) {
  if (const auto setting = detail::value_named(kModeSettingNames, text)) return *setting;
  throw OptionError(fmt::format("unknown mode '{}': use min, max or auto", text));
}

Mode resolve_mode(std::string_view monitor, ModeSetting setting) {
  if (setting == ModeSetting::Min) return Mode::Min;
  if (setting == ModeSetting::Max) return Mode::Max;
  bool wants_min = false;
  bool wants_max = false;
  for (const auto& t : tokens(monitor)) {
    wants_min = wants_min || token_in(t, kMinNames);
    wants_max = wants_max || token_in(t, kMaxNames);
  }
  if (wants_min != wants_max) return wants_min ? Mode::Min : Mode::Max;
  throw OptionError(fmt::format(
      "mode auto cannot tell whether '{}' should be minimised or maximised: set mode to min or "
      "max",
      monitor));
}

Mode resolve_mode(std::string_view monitor, std::string_view setting) {
  return resolve_mode(monitor, parse_mode_setting(setting));
}

bool is_improvement(Mode mode, double current, double reference, double min_delta) {
  // Keras keeps a signed delta (negative for min) and tests `current - delta` against the
  // reference; the same double operations are done here so results match bit for bit.
  const double signed_delta = mode == Mode::Min ? -std::fabs(min_delta) : std::fabs(min_delta);
  const double shifted = current - signed_delta;
  return mode == Mode::Min ? shifted < reference : shifted > reference;
}

const double* find_metric(const Logs& logs, std::string_view monitor, bool strict) {
  auto it = logs.find(std::string(monitor));
  if (it != logs.end()) return &it->second;
  if (!strict) return nullptr;
  std::string names;
  for (const auto& [name, value] : logs) {
    if (!names.empty()) names += ", ";
    names += name;
  }
  if (names.empty()) names = "none";
  throw InputError(fmt::format(
      "metric '{}' is not in the logs (available: {}); check the monitor option", monitor, names));
}

nlohmann::json number_to_json(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

double number_from_json(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const std::string s = lower(value.get_ref<const std::string&>());
    if (s == "nan" || s == "+nan" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf" || s == "+inf" || s == "infinity" || s == "+infinity")
      return std::numeric_limits<double>::infinity();
    if (s == "-inf" || s == "-infinity") return -std::numeric_limits<double>::infinity();
    throw InputError(
        fmt::format("'{}' is not a number (use a JSON number, \"nan\", \"inf\" or "
                    "\"-inf\")",
                    value.get_ref<const std::string&>()));
  }
  throw InputError(
      fmt::format("{} is not a number (use a JSON number, \"nan\", \"inf\" or "
                  "\"-inf\")",
                  value.dump()));
}

}  // namespace vigil
