// Finding, reading and recording the reference runs of the median and percentile rules.
#include "vigil/reference_runs.hpp"

#include <glob.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <memory>
#include <system_error>

#include <fmt/format.h>

#include "detail/input_file.hpp"
#include "vigil/error.hpp"
#include "vigil/metrics_log.hpp"
#include "vigil/monitor.hpp"
#include "vigil/safetensors.hpp"

namespace vigil {
namespace {

// The paths `pattern` matches, sorted; none when it matches nothing.
std::vector<std::string> glob_paths(const std::string& pattern) {
  glob_t g{};
  const std::unique_ptr<glob_t, void (*)(glob_t*)> owner(&g, globfree);
  // Without GLOB_ERR: a folder of the pattern that does not exist (or cannot be read) matches
  // nothing, as in a shell.
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  if (rc == GLOB_NOMATCH) return {};
  if (rc != 0)
    throw InputError(fmt::format("cannot search for reference runs '{}': {}", pattern,
                                 rc == GLOB_NOSPACE ? "out of memory" : "a folder cannot be read"));
  std::vector<std::string> out(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  std::sort(out.begin(), out.end());
  return out;
}

bool inside(const std::filesystem::path& file, const std::filesystem::path& dir) {
  std::error_code ec;
  const auto f = std::filesystem::weakly_canonical(file, ec);
  if (ec) return false;
  const auto d = std::filesystem::weakly_canonical(dir, ec);
  if (ec) return false;
  const auto [end, _] = std::mismatch(d.begin(), d.end(), f.begin(), f.end());
  return end == d.end();
}

ReferenceRun read_run(const std::string& path, std::string_view monitor) {
  detail::check_input_file(path, "reference run");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot open reference run '{}'", path));
  const std::string text =
      detail::read_bounded(in, std::size_t{1} << 30, fmt::format("reference run '{}'", path));
  if (in.bad()) throw InputError(fmt::format("cannot read reference run '{}'", path));
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    throw InputError(fmt::format("reference run '{}' is empty", path));
  const MetricsLog log = text[first] == '{' ? MetricsLog::parse_json_lines(text, path)
                                            : MetricsLog::parse_csv(text, path);
  const auto column = log.column(monitor);  // throws naming the columns that exist
  ReferenceRun run;
  run.path = path;
  run.xxh3 = xxh3_64(std::as_bytes(std::span(text.data(), text.size())));
  run.values.assign(column.begin(), column.end());
  return run;
}

}  // namespace

std::vector<std::vector<double>> ReferenceRuns::curves() const {
  std::vector<std::vector<double>> out;
  out.reserve(runs.size());
  for (const auto& r : runs) out.push_back(r.values);
  return out;
}

nlohmann::json ReferenceRuns::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : runs) {
    nlohmann::json values = nlohmann::json::array();
    for (double v : r.values) values.push_back(number_to_json(v));
    list.push_back(
        {{"path", r.path}, {"xxh3", fmt::format("{:016x}", r.xxh3)}, {"values", values}});
  }
  return {{"glob", glob}, {"monitor", monitor}, {"runs", std::move(list)}};
}

ReferenceRuns ReferenceRuns::from_json(const nlohmann::json& j) {
  try {
    ReferenceRuns out;
    out.glob = j.at("glob").get<std::string>();
    out.monitor = j.at("monitor").get<std::string>();
    for (const auto& r : j.at("runs")) {
      ReferenceRun run;
      run.path = r.at("path").get<std::string>();
      const auto hex = r.at("xxh3").get<std::string>();
      const auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), run.xxh3, 16);
      if (hex.size() != 16 || ec != std::errc() || ptr != hex.data() + hex.size())
        throw InputError(fmt::format("xxh3 '{}' is not 16 hex digits", hex));
      for (const auto& v : r.at("values")) run.values.push_back(number_from_json(v));
      out.runs.push_back(std::move(run));
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("reference runs record is malformed: {}", e.what()));
  } catch (const InputError& e) {
    throw InputError(fmt::format("reference runs record is malformed: {}", e.what()));
  }
}

ReferenceRuns find_reference_runs(std::string_view glob, std::string_view monitor,
                                  const std::filesystem::path& exclude) {
  ReferenceRuns out;
  out.glob = std::string(glob);
  out.monitor = std::string(monitor);
  if (glob.empty()) throw InputError("the reference runs' glob is empty");
  std::size_t excluded = 0;
  for (auto path : glob_paths(out.glob)) {
    // A run folder stands for the metrics.csv in it, so 'runs/*' works as well as
    // 'runs/*/metrics.csv'.
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      if (!std::filesystem::exists(std::filesystem::path(path) / "metrics.csv", ec)) continue;
      path = (std::filesystem::path(path) / "metrics.csv").string();
    }
    if (!exclude.empty() && inside(path, exclude)) {
      ++excluded;
      continue;
    }
    out.runs.push_back(read_run(path, monitor));
  }
  if (out.runs.empty())
    throw InputError(fmt::format("reference runs '{}' match no metrics log{}", out.glob,
                                 excluded > 0 ? " besides the run's own" : ""));
  return out;
}

}  // namespace vigil
