// The `vigil replay --batch` line scanner. Profiled on 100,000 cases (bench/notes.md), most of
// the time went into nlohmann building a DOM of every number array (a lexer call per character,
// strtod, a heap node per number). A line is therefore first split into its top-level members;
// number arrays are read with std::from_chars after a strict check of JSON's number grammar, and
// every other member is still parsed by nlohmann. A line the scanner does not accept in full
// goes through the full parser, so answers and error messages are the same either way.
#include "detail/json_scan.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "vigil/error.hpp"
#include "vigil/monitor.hpp"

namespace vigil::detail {

void check_json_text(std::string_view s) {
  if (const auto nul = s.find('\0'); nul != std::string_view::npos)
    throw InputError(fmt::format("at column {}: a NUL byte, which JSON text cannot hold", nul + 1));
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw InputError(
            fmt::format("at column {}: arrays and objects nest more than {} levels deep", i + 1,
                        kMaxJsonDepth));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

void skip_json_ws(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
}

bool skip_json_value(std::string_view s, std::size_t& i) {
  int depth = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
      if (i >= s.size()) return false;
      ++i;  // the closing quote
      if (depth == 0) return true;
    } else if (c == '[' || c == '{') {
      ++depth;
      ++i;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return true;  // closes the enclosing object: a scalar ended
      ++i;
      if (--depth == 0) return true;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      return true;
    } else {
      ++i;
    }
  }
  return depth == 0;
}

namespace {

// A key the scanner can take as written: no escapes, and printable ASCII, so that nlohmann's
// UTF-8 check of it cannot fail (an ignored member's key is never looked at again).
bool plain_key_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u < 0x7f && c != '\\';
}

// One `"key": value` at s[i], or nullopt.
std::optional<JsonMember> read_member(std::string_view s, std::size_t& i) {
  skip_json_ws(s, i);
  if (i >= s.size() || s[i] != '"') return std::nullopt;
  const std::size_t k = ++i;
  while (i < s.size() && s[i] != '"') {
    if (!plain_key_char(s[i])) return std::nullopt;
    ++i;
  }
  if (i >= s.size()) return std::nullopt;
  const std::string_view key = s.substr(k, i - k);
  ++i;
  skip_json_ws(s, i);
  if (i >= s.size() || s[i] != ':') return std::nullopt;
  ++i;
  skip_json_ws(s, i);
  const std::size_t v = i;
  if (v >= s.size() || !skip_json_value(s, i) || i == v) return std::nullopt;
  return JsonMember{key, s.substr(v, i - v)};
}

}  // namespace

std::optional<std::vector<JsonMember>> split_json_object(std::string_view s) {
  // nlohmann reads a NUL byte outside a string as the end of the input (and ignores the rest),
  // so a member value "1\0" would pass its check; such lines are the full parser's to judge.
  if (s.find('\0') != std::string_view::npos) return std::nullopt;
  std::vector<JsonMember> out;
  std::size_t i = 0;
  skip_json_ws(s, i);
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  ++i;
  skip_json_ws(s, i);
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    for (;;) {
      auto member = read_member(s, i);
      if (!member) return std::nullopt;
      out.push_back(*member);
      skip_json_ws(s, i);
      if (i >= s.size()) return std::nullopt;
      if (s[i] == ',') {
        ++i;
        continue;
      }
      if (s[i] != '}') return std::nullopt;
      ++i;
      break;
    }
  }
  skip_json_ws(s, i);
  if (i != s.size()) return std::nullopt;
  return out;
}

std::size_t json_number_length(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - b;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return 0;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return 0;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return 0;
  }
  return i;
}

namespace {

// The number `text` (grammar already checked) as nlohmann's DOM gives it to number_from_json().
std::optional<double> read_number(std::string_view text) {
  double v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  // Out of range (1e999) is left to the full parser, which has its own rule for it.
  if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) return std::nullopt;
  // nlohmann stores "-0" as the integer 0, which has no sign.
  if (v == 0 && text.find_first_of(".eE") == std::string_view::npos) v = 0;
  return v;
}

}  // namespace

bool read_number_array(std::string_view s, std::vector<double>& out) {
  out.clear();
  std::size_t i = 0;
  if (s.empty() || s[i] != '[') return false;
  ++i;
  skip_json_ws(s, i);
  if (i < s.size() && s[i] == ']') return i + 1 == s.size();
  for (;;) {
    skip_json_ws(s, i);
    const std::size_t n = json_number_length(s.substr(i));
    if (n == 0) return false;
    const auto v = read_number(s.substr(i, n));
    if (!v) return false;
    out.push_back(*v);
    i += n;
    skip_json_ws(s, i);
    if (i >= s.size()) return false;
    if (s[i] == ']') return i + 1 == s.size();
    if (s[i] != ',') return false;
    ++i;
  }
}

namespace {

// A member's value parsed by nlohmann, or nullopt if it is not JSON.
std::optional<nlohmann::json> parse_member(const JsonMember& m) {
  auto j = nlohmann::json::parse(m.value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace

bool scan_batch_case(std::string_view line, BatchCase& out) {
  const auto members = split_json_object(line);
  if (!members) return false;
  const JsonMember *values = nullptr, *train = nullptr, *elapsed = nullptr, *options = nullptr,
                   *name = nullptr;
  for (const auto& m : *members) {
    const JsonMember** known = m.key == "values"            ? &values
                               : m.key == "train_values"    ? &train
                               : m.key == "elapsed_seconds" ? &elapsed
                               : m.key == "options"         ? &options
                               : m.key == "name"            ? &name
                                                            : nullptr;
    // Reference curves are left to the full parser: they are rare and nest one level deeper.
    if (m.key == "reference") return false;
    if (known == nullptr) {
      if (!nlohmann::json::accept(m.value)) return false;  // ignored, but it must be JSON
      continue;
    }
    // The DOM keeps the last of repeated keys, but the earlier ones must be valid JSON too.
    if (*known != nullptr) return false;
    *known = &m;
  }
  if (values == nullptr || !read_number_array(values->value, out.values)) return false;
  out.train_values.clear();
  if (train != nullptr && !read_number_array(train->value, out.train_values)) return false;
  out.elapsed_seconds.clear();
  if (elapsed != nullptr && !read_number_array(elapsed->value, out.elapsed_seconds)) return false;
  out.reference.clear();
  out.options.reset();
  if (options != nullptr && !(out.options = parse_member(*options))) return false;
  out.name.reset();
  if (name != nullptr && !(out.name = parse_member(*name))) return false;
  return true;
}

namespace {

// The numbers of array member `key` of `j` into `out` (cleared first); absent leaves it empty.
void numbers_of(const nlohmann::json& j, const char* key, std::vector<double>& out) {
  out.clear();
  const auto a = j.find(key);
  if (a == j.end()) return;
  if (!a->is_array()) throw InputError(fmt::format("\"{}\" must be an array of numbers", key));
  for (const auto& x : *a) out.push_back(number_from_json(x));
}

}  // namespace

void parse_batch_case(std::string_view line, BatchCase& out) {
  // The DOM keeps the last of repeated keys: {"values":[1],"values":[2]} would be answered for
  // one of two cases without a word, so a case key given twice is an error.
  std::vector<std::string> keys;
  auto j = nlohmann::json::parse(
      line, [&keys](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (depth == 1 && event == nlohmann::json::parse_event_t::key) {
          const auto& key = parsed.get_ref<const std::string&>();
          if (key != "values" && key != "train_values" && key != "elapsed_seconds" &&
              key != "options" && key != "name" && key != "reference")
            return true;  // ignored keys may repeat, as the scanner lets them
          if (std::find(keys.begin(), keys.end(), key) != keys.end())
            throw InputError(fmt::format("the key \"{}\" appears twice in the line", key));
          keys.push_back(key);
        }
        return true;
      });
  if (!j.is_object()) throw InputError("a batch line must be a JSON object with \"values\"");
  const auto v = j.find("values");
  if (v == j.end() || !v->is_array())
    throw InputError("a batch line needs \"values\": an array of numbers");
  numbers_of(j, "values", out.values);
  numbers_of(j, "train_values", out.train_values);
  numbers_of(j, "elapsed_seconds", out.elapsed_seconds);
  out.reference.clear();
  if (const auto r = j.find("reference"); r != j.end()) {
    if (!r->is_array())
      throw InputError("\"reference\" must be an array of runs, each an array of numbers");
    for (const auto& run : *r) {
      if (!run.is_array())
        throw InputError(
            fmt::format("\"reference\" run {} must be an array of numbers (one per step), not {}",
                        out.reference.size() + 1, run.type_name()));
      auto& values = out.reference.emplace_back();
      for (const auto& x : run) values.push_back(number_from_json(x));
    }
  }
  out.options.reset();
  if (const auto o = j.find("options"); o != j.end()) out.options = std::move(*o);
  out.name.reset();
  if (const auto n = j.find("name"); n != j.end()) out.name = std::move(*n);
}

void read_batch_case(std::string_view line, BatchCase& out) {
  check_json_text(line);
  if (!scan_batch_case(line, out)) parse_batch_case(line, out);
}

}  // namespace vigil::detail
