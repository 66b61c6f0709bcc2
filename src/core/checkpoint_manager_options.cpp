// CheckpointManagerOptions: validation, and the option table that JSON in and out follow from.
#include <cmath>

#include <fmt/core.h>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/template.hpp"

namespace vigil {

namespace {

using Options = CheckpointManagerOptions;
using Field = OptionField<Options>;

// save_top_k and keep_last: an int that may be unset (JSON null).
Field optional_int_field(std::string key, std::optional<int> Options::*member, std::string help) {
  Field f;
  f.key = std::move(key);
  f.help = std::move(help);
  f.get = [member](const Options& o) {
    const auto& v = o.*member;
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  f.set = [member, k = f.key](Options& o, const nlohmann::json& j) {
    o.*member = j.is_null() ? std::nullopt : std::optional<int>(detail::option_int(k, j));
  };
  return f;
}

std::vector<Field> make_fields() {
  return {
      option_field("monitor", &Options::monitor,
                   "metric that ranks checkpoints; empty = none (default \"val_loss\")"),
      option_field("mode", &Options::mode,
                   "min, max or auto (from the monitor's name) (default \"auto\")"),
      optional_int_field("save_top_k", &Options::save_top_k,
                         "keep the k best by monitor, -1 = all (default unset)"),
      optional_int_field("keep_last", &Options::keep_last,
                         "keep the n newest, -1 = all (default unset)"),
      option_field("keep_every_n_epochs", &Options::keep_every_n_epochs,
                   "keep for good each epoch end with (epoch+1) % n == 0; 0 = off (default 0)"),
      option_field("save_best_only", &Options::save_best_only,
                   "save only when monitor improves on the best (default false)"),
      option_field("save_every_n_epochs", &Options::save_every_n_epochs,
                   "save at epoch ends with (epoch+1) % n == 0; 0 = never (default 1)"),
      option_field("save_every_n_steps", &Options::save_every_n_steps,
                   "save after steps with step % n == 0; 0 = never (default 0)"),
      option_field("save_every_seconds", &Options::save_every_seconds,
                   "also save once this many seconds passed since the last save; 0 = off "
                   "(default 0)"),
      option_field("initial_value_threshold", &Options::initial_value_threshold,
                   "a best checkpoint must beat this value first (default unset)"),
      option_field("filename", &Options::filename,
                   "checkpoint folder name template (default \"epoch-{epoch:04d}\")"),
      option_field("async", &Options::async, "submit() saves in the background (default false)"),
      option_field("async_coalesce", &Options::async_coalesce,
                   "a background save while one is in flight replaces the waiting one instead "
                   "of blocking (default false)"),
      option_field("verify_on_open", &Options::verify_on_open,
                   "hash every checkpoint file when the manager opens (default true)"),
  };
}

}  // namespace

std::span<const Field> checkpoint_manager_option_fields() {
  // Built once and never changed: a constant table, not state.
  static const std::vector<Field> fields = make_fields();
  return fields;
}

nlohmann::json CheckpointManagerOptions::to_json() const {
  return options_to_json(*this, checkpoint_manager_option_fields());
}

CheckpointManagerOptions CheckpointManagerOptions::from_json(const nlohmann::json& j,
                                                             const Options& defaults) {
  return options_from_json(j, defaults, checkpoint_manager_option_fields(),
                           "checkpoint manager options");
}

CheckpointManagerOptions CheckpointManagerOptions::from_json(const nlohmann::json& j) {
  return from_json(j, Options{});
}

void CheckpointManagerOptions::validate() const {
  if (save_top_k && *save_top_k < -1)
    throw OptionError(fmt::format("save_top_k must be -1 (all), 0 or more, not {}", *save_top_k));
  if (keep_last && *keep_last < -1)
    throw OptionError(fmt::format("keep_last must be -1 (all), 0 or more, not {}", *keep_last));
  if (keep_every_n_epochs < 0)
    throw OptionError(
        fmt::format("keep_every_n_epochs must be 0 (off) or more, not {}", keep_every_n_epochs));
  if (save_every_n_epochs < 0)
    throw OptionError(
        fmt::format("save_every_n_epochs must be 0 (never) or more, not {}", save_every_n_epochs));
  if (save_every_n_steps < 0)
    throw OptionError(
        fmt::format("save_every_n_steps must be 0 (never) or more, not {}", save_every_n_steps));
  if (!(save_every_seconds >= 0) || std::isinf(save_every_seconds))
    throw OptionError(fmt::format("save_every_seconds must be 0 (off) or a positive number, not {}",
                                  save_every_seconds));
  if (monitor.empty()) {
    if (save_top_k && *save_top_k > 0)
      throw OptionError("save_top_k needs a monitor (a metric to rank checkpoints by)");
    if (save_best_only) throw OptionError("save_best_only needs a monitor");
  }
  if (best_stem.empty() || best_stem.find_first_of("/\\") != std::string::npos)
    throw OptionError(
        fmt::format("best_stem must be a tensor file's stem such as \"model\", not "
                    "\"{}\"",
                    best_stem));
  if (initial_value_threshold && std::isnan(*initial_value_threshold))
    throw OptionError("initial_value_threshold must not be NaN");
  // Fails early on a bad template instead of at the first save, hours into training.
  auto tmpl = NameTemplate::parse(filename);
  (void)tmpl.render(0, 0, {});
}

}  // namespace vigil
