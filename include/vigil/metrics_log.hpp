// Reading a metrics log into named numeric columns: the CSV `vigil train` writes as
// DIR/metrics.csv (epoch, step, metrics..., lr, seconds) or JSON lines (one object per epoch).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/monitor.hpp"

namespace vigil {

/// A table of per-epoch numbers. Cells may be missing (an empty CSV cell, a key absent from a
/// JSON line, or null); column() shows them as NaN and rows_as_logs() leaves them out.
/// "nan", "inf", "-inf" (any case, optional sign) are read as non-finite numbers.
class MetricsLog {
 public:
  /// Reads a file: JSON lines if its first non-blank character is '{', CSV otherwise (the
  /// separator is ',' unless the header has none and has a tab or ';'). Throws InputError
  /// naming the file (and line) for a missing or unreadable file, an empty file, a header
  /// without columns, duplicate column names, a row with the wrong number of cells, or a cell
  /// that is not a number.
  static MetricsLog read(const std::filesystem::path& path);
  /// Parses CSV text; `source` names it in error messages.
  static MetricsLog parse_csv(std::string_view text, std::string_view source = "metrics log");
  /// Parses JSON lines (blank lines skipped); values must be numbers, the strings
  /// "nan"/"inf"/"-inf", or null (missing). Columns appear in order of first appearance.
  static MetricsLog parse_json_lines(std::string_view text,
                                     std::string_view source = "metrics log");

  /// Column names in file order.
  const std::vector<std::string>& columns() const { return names_; }
  std::size_t rows() const { return rows_; }
  bool has_column(std::string_view name) const;
  /// The column's values, NaN where a cell is missing. Throws InputError naming the columns
  /// that exist when there is no such column.
  std::span<const double> column(std::string_view name) const;
  /// Whether the cell holds a value (false for a missing cell).
  bool has_value(std::size_t row, std::string_view name) const;
  /// Every row as metric name -> value, missing cells left out (what a training loop would
  /// have passed to a callback).
  std::vector<Logs> rows_as_logs() const;
  /// Where the table came from (a path or the `source` given to parse_*).
  const std::string& source() const { return source_; }

 private:
  std::size_t index_of(std::string_view name) const;
  std::string source_;
  std::vector<std::string> names_;
  std::vector<std::vector<double>> values_;  // per column
  std::vector<std::vector<bool>> present_;   // per column
  std::size_t rows_ = 0;
};

}  // namespace vigil
