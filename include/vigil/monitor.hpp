// The monitored metric: its direction (min/max, inferred from the name with mode "auto"),
// Keras' improvement test, the logs map, and JSON for values that may be NaN or infinite.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"

namespace vigil {

/// Which way is better for a metric.
enum class Mode { Min, Max };

/// How an options struct chooses the direction: explicitly, or Auto from the monitor's name
/// (see resolve_mode). Spelled "min", "max" and "auto" in JSON and on the command line.
enum class ModeSetting { Auto, Min, Max };

/// Metrics of one epoch (or batch) by name, e.g. {"loss": 0.3, "val_loss": 0.35}.
using Logs = std::map<std::string, double>;

/// "min" or "max".
[[nodiscard]] std::string_view mode_name(Mode mode);
/// "auto", "min" or "max".
[[nodiscard]] std::string_view mode_name(ModeSetting setting);
/// Reads "min", "max" or "auto"; throws OptionError for anything else.
[[nodiscard]] ModeSetting parse_mode_setting(std::string_view text);

/// Resolves a mode setting for `monitor`. With Auto, names like accuracy/acc/auc/precision/
/// recall/f1/iou/map/score are maximised and loss/error/mse/mae/perplexity-like names
/// minimised; anything else throws OptionError asking for a mode.
[[nodiscard]] Mode resolve_mode(std::string_view monitor, ModeSetting setting);
/// The same with the setting as text ("min", "max" or "auto"); any other text throws
/// OptionError.
[[nodiscard]] Mode resolve_mode(std::string_view monitor, std::string_view setting);

/// Keras' test with its signed delta d (-|min_delta| for Min, +|min_delta| for Max): for Min,
/// (current - d) < reference, i.e. current + |min_delta| < reference; for Max,
/// (current - d) > reference. Computed in double exactly that way. NaN never improves.
[[nodiscard]] bool is_improvement(Mode mode, double current, double reference, double min_delta);

/// Looks `monitor` up in `logs`. If absent: throws InputError naming the metrics that exist
/// when `strict`, else returns nullptr (the caller warns and skips).
[[nodiscard]] const double* find_metric(const Logs& logs, std::string_view monitor,
                                        bool strict = true);

/// JSON has no NaN or infinity: those are written as the strings "nan", "inf", "-inf".
[[nodiscard]] nlohmann::json number_to_json(double value);
/// Reads a number or one of the strings "nan", "inf", "-inf" (also "+inf", "infinity",
/// case-insensitive); throws InputError otherwise.
[[nodiscard]] double number_from_json(const nlohmann::json& value);

}  // namespace vigil
