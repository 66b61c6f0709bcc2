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

/// Metrics of one epoch (or batch) by name, e.g. {"loss": 0.3, "val_loss": 0.35}.
using Logs = std::map<std::string, double>;

/// "min" or "max".
std::string_view mode_name(Mode mode);

/// Resolves a mode setting ("min", "max" or "auto") for `monitor`. With "auto", names like
/// accuracy/acc/auc/precision/recall/f1/iou/map/score are maximised and loss/error/mse/mae/
/// perplexity-like names minimised; anything else throws OptionError asking for a mode.
/// Any other setting throws OptionError.
Mode resolve_mode(std::string_view monitor, std::string_view setting);

/// Keras' test with its signed delta d (-|min_delta| for Min, +|min_delta| for Max): for Min,
/// (current - d) < reference, i.e. current + |min_delta| < reference; for Max,
/// (current - d) > reference. Computed in double exactly that way. NaN never improves.
bool is_improvement(Mode mode, double current, double reference, double min_delta);

/// Looks `monitor` up in `logs`. If absent: throws InputError naming the metrics that exist
/// when `strict`, else returns nullptr (the caller warns and skips).
const double* find_metric(const Logs& logs, std::string_view monitor, bool strict = true);

/// JSON has no NaN or infinity: those are written as the strings "nan", "inf", "-inf".
nlohmann::json number_to_json(double value);
/// Reads a number or one of the strings "nan", "inf", "-inf" (also "+inf", "infinity",
/// case-insensitive); throws InputError otherwise.
double number_from_json(const nlohmann::json& value);

}  // namespace vigil
