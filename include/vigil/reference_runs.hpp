// The earlier runs that the median and percentile rules compare a run with: the metrics logs a
// glob matches, read once at the start and recorded, so a resumed run judges by the same curves.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil {

/// One reference run: its metrics log, the log's XXH3-64 as read, and its monitored values.
struct ReferenceRun {
  std::string path;
  std::uint64_t xxh3 = 0;
  /// The monitored metric, one value per row (a missing cell is NaN).
  std::vector<double> values;
};

/// The reference runs of one run, as recorded in its run.json ("reference_runs").
struct ReferenceRuns {
  /// The glob they were found with.
  std::string glob;
  /// The metric read from each.
  std::string monitor;
  std::vector<ReferenceRun> runs;

  /// Every run's values: what EarlyStoppingOptions::reference takes.
  [[nodiscard]] std::vector<std::vector<double>> curves() const;
  /// {"glob", "monitor", "runs": [{"path", "xxh3" (16 hex digits), "values"}]}, non-finite
  /// values as "nan"/"inf"/"-inf".
  [[nodiscard]] nlohmann::json to_json() const;
  /// Reads to_json()'s object; throws InputError naming what is malformed.
  [[nodiscard]] static ReferenceRuns from_json(const nlohmann::json& j);
};

/// The metrics logs (CSV or JSON lines) that `glob` matches (POSIX glob, sorted; a matched folder
/// stands for the metrics.csv in it, and is skipped without one), each read for `monitor`,
/// leaving out `exclude` and anything inside it (the run's own folder or log; empty: nothing).
/// Throws InputError when nothing is left, or naming a file that cannot be read or lacks the
/// metric.
[[nodiscard]] ReferenceRuns find_reference_runs(std::string_view glob, std::string_view monitor,
                                                const std::filesystem::path& exclude = {});

}  // namespace vigil
