// Metrics-log reader: CSV (as CSVLogger writes it) or JSON lines, into numeric columns.
#include "vigil/metrics_log.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include "detail/input_file.hpp"
#include "detail/json_scan.hpp"
#include "detail/text.hpp"
#include "safetensors/format.hpp"

namespace vigil {
namespace {

using detail::trim;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A number, or nan/inf/-inf/infinity in any case with an optional sign.
bool parse_cell(std::string_view text, double& out) {
  std::string_view body = text;
  bool negative = false;
  if (!body.empty() && (body.front() == '+' || body.front() == '-')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (iequals(body, "nan")) {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (iequals(body, "inf") || iequals(body, "infinity")) {
    out = negative ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
    return true;
  }
  // from_chars rejects a leading '+', which some writers emit.
  std::string_view digits = (!text.empty() && text.front() == '+') ? body : text;
  if (digits.empty()) return false;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

// Splits one CSV line; fields may be double-quoted (with "" for a quote).
std::vector<std::string> split_csv(std::string_view line, char sep) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(std::move(cur));
  return out;
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    auto pos = text.find('\n');
    auto line = text.substr(0, pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (pos == std::string_view::npos) break;
    text.remove_prefix(pos + 1);
  }
  return out;
}

}  // namespace

MetricsLog MetricsLog::read(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(
        fmt::format("metrics log '{}' is a folder; give the metrics.csv inside it", path.string()));
  detail::check_input_file(path, "metrics log");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot open metrics log '{}'", path.string()));
  // A log of a million epochs is a few hundred MB: more is not a metrics log.
  const std::string text = detail::read_bounded(in, std::size_t{1} << 30,
                                                fmt::format("metrics log '{}'", path.string()));
  if (in.bad()) throw InputError(fmt::format("cannot read metrics log '{}'", path.string()));
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    throw InputError(fmt::format("metrics log '{}' is empty", path.string()));
  return text[first] == '{' ? parse_json_lines(text, path.string())
                            : parse_csv(text, path.string());
}

MetricsLog MetricsLog::parse_csv(std::string_view text, std::string_view source) {
  MetricsLog log;
  log.source_ = std::string(source);
  const auto lines = lines_of(text);
  std::size_t header_line = 0;
  while (header_line < lines.size() && trim(lines[header_line]).empty()) ++header_line;
  if (header_line == lines.size())
    throw InputError(fmt::format("metrics log '{}' is empty", source));
  const std::string_view header = lines[header_line];
  char sep = ',';
  if (header.find(',') == std::string_view::npos) {
    if (header.find('\t') != std::string_view::npos) {
      sep = '\t';
    } else if (header.find(';') != std::string_view::npos) {
      sep = ';';
    }
  }
  for (auto& name : split_csv(header, sep)) {
    std::string n(trim(name));
    if (n.empty())
      throw InputError(
          fmt::format("{}:{}: the header has an empty column name", source, header_line + 1));
    if (std::find(log.names_.begin(), log.names_.end(), n) != log.names_.end())
      throw InputError(fmt::format("{}:{}: column '{}' appears twice in the header", source,
                                   header_line + 1, n));
    // Column names reach JSON answers and plots: text that JSON cannot hold is refused here.
    if (!detail::is_utf8(n))
      throw InputError(fmt::format("{}:{}: column {} of the header is not UTF-8 text", source,
                                   header_line + 1, log.names_.size() + 1));
    log.names_.push_back(std::move(n));
  }
  const std::size_t ncols = log.names_.size();
  log.values_.resize(ncols);
  log.present_.resize(ncols);
  for (std::size_t li = header_line + 1; li < lines.size(); ++li) {
    if (trim(lines[li]).empty()) continue;
    const auto cells = split_csv(lines[li], sep);
    if (cells.size() != ncols)
      throw InputError(fmt::format("{}:{}: {} cells but the header has {} columns", source, li + 1,
                                   cells.size(), ncols));
    for (std::size_t c = 0; c < ncols; ++c) {
      const auto cell = trim(cells[c]);
      double v = std::numeric_limits<double>::quiet_NaN();
      const bool present = !cell.empty();
      if (present && !parse_cell(cell, v))
        throw InputError(fmt::format("{}:{}: column '{}': '{}' is not a number", source, li + 1,
                                     log.names_[c], cell));
      log.values_[c].push_back(v);
      log.present_[c].push_back(present);
    }
    ++log.rows_;
  }
  return log;
}

MetricsLog MetricsLog::parse_json_lines(std::string_view text, std::string_view source) {
  MetricsLog log;
  log.source_ = std::string(source);
  const auto lines = lines_of(text);
  for (std::size_t li = 0; li < lines.size(); ++li) {
    if (trim(lines[li]).empty()) continue;
    nlohmann::json row;
    try {
      detail::check_json_text(lines[li]);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}:{}: {}", source, li + 1, e.what()));
    }
    try {
      row = nlohmann::json::parse(lines[li]);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(fmt::format("{}:{}: not valid JSON ({})", source, li + 1, e.what()));
    }
    if (!row.is_object())
      throw InputError(
          fmt::format("{}:{}: each line must be a JSON object of metric values", source, li + 1));
    for (const auto& [key, value] : row.items()) {
      auto c = static_cast<std::size_t>(std::find(log.names_.begin(), log.names_.end(), key) -
                                        log.names_.begin());
      if (c == log.names_.size()) {
        // A column first seen now is missing in every earlier row.
        log.names_.push_back(key);
        log.values_.emplace_back(log.rows_, std::numeric_limits<double>::quiet_NaN());
        log.present_.emplace_back(log.rows_, false);
      }
      double v = std::numeric_limits<double>::quiet_NaN();
      bool present = !value.is_null();
      if (present) {
        if (value.is_number()) {
          v = value.get<double>();
        } else if (!value.is_string() ||
                   !parse_cell(trim(value.get_ref<const std::string&>()), v)) {
          throw InputError(
              fmt::format("{}:{}: '{}': {} is not a number", source, li + 1, key, value.dump()));
        }
      }
      log.values_[c].push_back(v);
      log.present_[c].push_back(present);
    }
    ++log.rows_;
    for (std::size_t c = 0; c < log.names_.size(); ++c) {
      if (log.values_[c].size() < log.rows_) {
        log.values_[c].push_back(std::numeric_limits<double>::quiet_NaN());
        log.present_[c].push_back(false);
      }
    }
  }
  if (log.rows_ == 0) throw InputError(fmt::format("metrics log '{}' is empty", source));
  return log;
}

std::size_t MetricsLog::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return i;
  return names_.size();
}

bool MetricsLog::has_column(std::string_view name) const {
  return index_of(name) < names_.size();
}

std::span<const double> MetricsLog::column(std::string_view name) const {
  const auto i = index_of(name);
  if (i == names_.size()) {
    throw InputError(fmt::format("metrics log '{}' has no column '{}' (columns: {})", source_, name,
                                 detail::name_list(names_, 20)));
  }
  return values_[i];
}

bool MetricsLog::has_value(std::size_t row, std::string_view name) const {
  const auto i = index_of(name);
  return i < names_.size() && row < rows_ && present_[i][row];
}

std::vector<Logs> MetricsLog::rows_as_logs() const {
  std::vector<Logs> out(rows_);
  for (std::size_t c = 0; c < names_.size(); ++c)
    for (std::size_t r = 0; r < rows_; ++r)
      if (present_[c][r]) out[r].emplace(names_[c], values_[c][r]);
  return out;
}

}  // namespace vigil
