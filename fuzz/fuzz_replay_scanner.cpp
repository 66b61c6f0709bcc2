// Differential libFuzzer target for the `vigil replay --batch` line scanner: whatever the scanner
// accepts must read exactly as nlohmann's full parser reads it. Refusing is always allowed (the
// full parser then answers); the few intended differences are asserted as such.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/json_scan.hpp"
#include "vigil/monitor.hpp"

namespace {

using nlohmann::json;
using vigil::detail::BatchCase;
using vigil::detail::JsonMember;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<std::uint64_t>(a[i]) != std::bit_cast<std::uint64_t>(b[i])) return false;
  return true;
}

// Intended differences of split_json_object(): it refuses every text with a NUL byte (nlohmann
// reads one outside a string as the end of the input and ignores the rest) and every key that
// is not printable ASCII without escapes; it lists repeated keys, where nlohmann's DOM keeps
// the last. Member values are split by structure only, so the text is JSON exactly when each
// member value is.
void check_split(std::string_view s) {
  const auto members = vigil::detail::split_json_object(s);
  if (!members) return;
  check(s.find('\0') == std::string_view::npos);
  bool all_valid = true;
  for (const auto& m : *members) {
    for (char c : m.key) check(static_cast<unsigned char>(c) >= 0x20 && c < 0x7f && c != '\\');
    all_valid = all_valid && json::accept(m.value);
  }
  check(json::accept(s) == all_valid);
  if (!all_valid) return;
  std::map<std::string_view, const JsonMember*> last;
  for (const auto& m : *members) last[m.key] = &m;
  const json j = json::parse(s);
  check(j.is_object() && j.size() == last.size());
  for (const auto& [key, m] : last) {
    const auto it = j.find(key);
    check(it != j.end() && *it == json::parse(m->value));
  }
}

// read_number_array() accepts plain-number arrays only, each number read to the bit as
// number_from_json() reads nlohmann's DOM ("-0" included: nlohmann stores it as the integer 0).
void check_numbers(std::string_view s) {
  std::vector<double> fast;
  if (!vigil::detail::read_number_array(s, fast)) return;
  const json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
  check(j.is_array() && j.size() == fast.size());
  std::vector<double> full;
  for (const auto& x : j) {
    check(x.is_number());
    full.push_back(vigil::number_from_json(x));
  }
  check(same_bits(fast, full));
}

// A line scan_batch_case() accepts parses without error to the same case. It refuses lines
// that repeat one of its keys, so no earlier duplicate goes unchecked.
void check_batch_case(std::string_view s) {
  BatchCase fast;
  if (!vigil::detail::scan_batch_case(s, fast)) return;
  const auto members = vigil::detail::split_json_object(s);
  check(members.has_value());
  std::map<std::string_view, int> seen;
  for (const auto& m : *members) ++seen[m.key];
  for (const char* key : {"values", "train_values", "elapsed_seconds", "options", "name"})
    check(seen[key] <= 1);
  BatchCase full;
  try {
    vigil::detail::parse_batch_case(s, full);
  } catch (...) {
    check(false);
  }
  check(same_bits(fast.values, full.values));
  check(same_bits(fast.train_values, full.train_values));
  check(same_bits(fast.elapsed_seconds, full.elapsed_seconds));
  check(fast.options == full.options);
  check(fast.name == full.name);
}

// A line read_batch_case() answers holds no NUL byte (nlohmann would stop reading there) and
// nests no deeper than kMaxJsonDepth (the serializer recurses once per level).
void check_read(std::string_view s) {
  BatchCase c;
  try {
    vigil::detail::read_batch_case(s, c);
  } catch (const std::exception&) {
    return;
  }
  check(s.find('\0') == std::string_view::npos);
  int deepest = 0;
  (void)json::parse(s, [&deepest](int depth, json::parse_event_t, json&) {
    deepest = std::max(deepest, depth);
    return true;
  });
  check(deepest <= vigil::detail::kMaxJsonDepth);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  check_split(s);
  check_numbers(s);
  check_batch_case(s);
  check_read(s);
  return 0;
}
