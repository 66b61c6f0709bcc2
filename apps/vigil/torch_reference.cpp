// --reference-runs: the earlier runs the median and percentile rules compare a run with, read
// once at its first start and recorded in run.json, so a resume judges by the same curves.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "torch_run.hpp"
#include "vigil/error.hpp"
#include "vigil/reference_runs.hpp"

namespace vigil::cli {

void apply_reference_runs(RunConfig& config, const std::filesystem::path& run_dir, bool resuming) {
  auto& o = config.early_stopping;
  const bool wanted = std::any_of(o.rules.begin(), o.rules.end(), [](const auto& r) {
    return r->name() == "median" || r->name() == "percentile";
  });
  if (!wanted) {
    if (!config.reference_runs.empty())
      throw OptionError(fmt::format(
          "--reference-runs is read only by --rule median or percentile, not by --rule {}",
          rules_to_string(o.rules)));
    return;
  }
  if (config.reference_runs.empty())
    throw OptionError(fmt::format(
        "--rule {} compares the run with earlier ones: give their metrics.csv files with "
        "--reference-runs GLOB (e.g. 'runs/*/metrics.csv')",
        rules_to_string(o.rules)));
  ReferenceRuns runs;
  if (resuming && config.reference_curves.is_object()) {
    runs = ReferenceRuns::from_json(config.reference_curves);
  } else {
    runs = find_reference_runs(config.reference_runs, o.monitor, run_dir);
    config.reference_curves = runs.to_json();
    fmt::print("reference runs: {} matched by {} (recorded in run.json; a resume uses the same)\n",
               runs.runs.size(), config.reference_runs);
  }
  if (runs.monitor != o.monitor)
    throw InputError(fmt::format(
        "the recorded reference runs hold {}, but the run monitors {}; start with --fresh",
        runs.monitor, o.monitor));
  o.reference = runs.curves();
}

}  // namespace vigil::cli
