// Pieces the report's sections share: a target and how figures, ratios and states are printed.
#pragma once

#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "suite.hpp"

namespace vigil::bench {

/// One target of an issue: `value` compared with `threshold`; `explanation` says why a miss is.
struct Target {
  std::string name;
  std::string figure;
  double value = 0;
  std::string comparison;  ///< ">=" or "<="
  double threshold = 0;
  std::string unit;
  std::string explanation;

  [[nodiscard]] bool met() const {
    return comparison == ">=" ? value >= threshold : value <= threshold;
  }
};

/// "12.3 ms", "456 ms", "1.23 s".
inline std::string secs(double s) {
  if (s < 0.01) return fmt::format("{:.2f} ms", s * 1000);
  if (s < 1) return fmt::format("{:.0f} ms", s * 1000);
  return fmt::format("{:.2f} s", s);
}

/// A figure as "median (min – max)".
inline std::string fig(const nlohmann::json& f) {
  return fmt::format("{} ({} – {})", secs(f["median"].get<double>()), secs(f["min"].get<double>()),
                     secs(f["max"].get<double>()));
}

/// A ratio as "4.21x", or "–" when the run has none.
inline std::string fmt_ratio(const nlohmann::json& ratios, const std::string& key,
                             const char* suffix = "x") {
  if (!ratios.contains(key)) return "–";
  return fmt::format("{:.2f}{}", ratios[key].get<double>(), suffix);
}

/// Calls row(label, prefix, bytes) for each state whose figures hold `prefix + probe`, where
/// prefix is `head` + the state's label + "." (e.g. "save.1GiB.f32.").
template <class Row>
void for_each_state(const Config& cfg, const nlohmann::json& F, const std::string& head,
                    const std::string& probe, Row row) {
  for (const auto& [bytes, dtype] : cfg.states) {
    const auto label = state_label(bytes, dtype);
    const auto prefix = head + label + ".";
    if (F.contains(prefix + probe)) row(label, prefix, bytes);
  }
}

/// The ratios and targets of the sharing benchmark (bench_sharing, bench_sharing_run).
void sharing_targets(const Config& cfg, const Results& res, nlohmann::json& ratios,
                     std::vector<Target>& targets);
/// Its section of BENCHMARKS.md.
std::string sharing_markdown(const Config& cfg, const nlohmann::json& report);

}  // namespace vigil::bench
