// CSVLogger: metrics.csv rendered from the run's history and replaced atomically.
#include "vigil/torch/csv_logger.hpp"

#include <fmt/core.h>

#include <cmath>
#include <set>

#include "vigil/io.hpp"

namespace vigil::torch {

namespace {

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

}  // namespace

std::string render_metrics_csv(const std::vector<EpochRecord>& history, char sep) {
  if (history.empty()) return {};
  std::set<std::string> names;
  for (const auto& r : history)
    for (const auto& [k, v] : r.logs) names.insert(k);
  std::vector<std::string> columns;
  for (const auto& k : names)
    if (k != "lr" && k != "seconds" && k != "epoch" && k != "step") columns.push_back(k);
  for (const char* k : {"lr", "seconds"})
    if (names.count(k)) columns.emplace_back(k);

  std::string out = fmt::format("epoch{}step", sep);
  for (const auto& c : columns) out += sep + c;
  out += '\n';
  for (const auto& r : history) {
    out += fmt::format("{}{}{}", r.epoch, sep, r.step);
    for (const auto& c : columns) {
      out += sep;
      auto it = r.logs.find(c);
      if (it != r.logs.end()) out += format_value(it->second);
    }
    out += '\n';
  }
  return out;
}

CSVLogger::CSVLogger(CSVLoggerOptions options) : options_(std::move(options)) {
  if (options_.filename.empty()) throw OptionError("CSVLogger needs a filename");
}

std::string CSVLogger::render(const std::vector<EpochRecord>& history) const {
  return render_metrics_csv(history, options_.separator);
}

void CSVLogger::write(const TrainContext& ctx) const {
  if (ctx.history.empty()) return;
  const auto parent = options_.filename.parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  atomic_write_file(options_.filename, render(ctx.history));
}

void CSVLogger::on_epoch_end(TrainContext& ctx, int, const Logs&) {
  write(ctx);
}

// Rows of epochs that ran after the checkpoint we resumed from are dropped now, not at the next
// epoch end, so that a run interrupted again right away leaves a consistent file.
void CSVLogger::on_resume(TrainContext& ctx) {
  write(ctx);
}

}  // namespace vigil::torch
