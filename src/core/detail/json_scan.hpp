// Reading `vigil replay --batch` lines fast: a small JSON scanner for the common shape of a line
// (plain keys, arrays of plain numbers), with nlohmann's full parser as the authority for the
// rest. Not part of the public API.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace vigil::detail {

/// One top-level member of a JSON object: its key as written and the raw text of its value.
struct JsonMember {
  std::string_view key;
  std::string_view value;
};

/// Nesting deeper than this in one line of untrusted JSON is refused: nlohmann's serializer and
/// comparisons recurse once per level, and no vigil input needs more than a few levels.
inline constexpr int kMaxJsonDepth = 64;

/// Throws InputError if `s` holds a NUL byte (nlohmann's lexer would end the text there and
/// ignore what follows) or nests arrays/objects deeper than kMaxJsonDepth outside strings.
void check_json_text(std::string_view s);

/// Moves `i` past JSON white space (space, tab, LF, CR).
void skip_json_ws(std::string_view s, std::size_t& i);

/// Moves `i` past the JSON value starting at s[i], checking only its structure (balanced
/// brackets outside strings); false if the text ends inside it. The value itself is unchecked.
bool skip_json_value(std::string_view s, std::size_t& i);

/// The top-level members of the JSON object that is all of `s`, in order and with duplicates,
/// or nullopt when the scanner cannot vouch for the split. Keys must be printable ASCII without
/// escapes, and `s` must hold no NUL byte; member values are split by structure
/// only, so the caller still validates each of them.
std::optional<std::vector<JsonMember>> split_json_object(std::string_view s);

/// Length of the JSON number (RFC 8259 grammar) at the start of `s`, 0 if there is none.
std::size_t json_number_length(std::string_view s);

/// A JSON array of plain numbers, all of `s`, into `out`, each as number_from_json() reads
/// nlohmann's DOM of it; false for anything else, including numbers out of double's range.
bool read_number_array(std::string_view s, std::vector<double>& out);

/// One `vigil replay --batch` case: {"values": [...], "options": {...}} with optional
/// "train_values", "elapsed_seconds", "reference" (the median/percentile rules' earlier runs: an
/// array of value arrays) and "name"; other members are ignored.
struct BatchCase {
  std::vector<double> values;
  std::vector<double> train_values;
  std::vector<double> elapsed_seconds;
  std::vector<std::vector<double>> reference;
  std::optional<nlohmann::json> options;
  std::optional<nlohmann::json> name;
};

/// The fast path: true if the scanner read all of `line` into `out`, with exactly what
/// parse_batch_case() would give; false hands the line to the full parser (so does a line that
/// repeats one of the case's keys).
bool scan_batch_case(std::string_view line, BatchCase& out);

/// The full parser. Throws nlohmann::json::parse_error for text that is not JSON and
/// vigil::InputError for a line of the wrong shape.
void parse_batch_case(std::string_view line, BatchCase& out);

/// scan_batch_case(), else parse_batch_case(). `out`'s buffers are reused from line to line.
void read_batch_case(std::string_view line, BatchCase& out);

}  // namespace vigil::detail
