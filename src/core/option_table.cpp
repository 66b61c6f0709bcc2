// The JSON readers behind option tables: one message shape for every wrong value.
#include "vigil/option_table.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "safetensors/format.hpp"
#include "vigil/monitor.hpp"

namespace vigil::detail {
namespace {

[[noreturn]] void bad_type(std::string_view key, std::string_view want, const nlohmann::json& v) {
  throw OptionError(fmt::format("option '{}' must be {}, not {}", key, want, v.dump()));
}

}  // namespace

double option_number(std::string_view key, const nlohmann::json& v) {
  try {
    return number_from_json(v);
  } catch (const InputError&) {
    bad_type(key, "a number", v);
  }
}

std::optional<double> option_optional_number(std::string_view key, const nlohmann::json& v) {
  if (v.is_null()) return std::nullopt;
  return option_number(key, v);
}

namespace {

// A whole number in [lo, hi]; a float counts when it is whole and exact (|d| <= 2^53). Out of
// range, the message gives the range rather than calling 1e20 "not a whole number".
long whole_number_within(std::string_view key, const nlohmann::json& v, long lo, long hi) {
  const auto out_of_range = [&] {
    throw OptionError(fmt::format("option '{}' must be a whole number from {} to {}, not {}", key,
                                  lo, hi, v.dump()));
  };
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) out_of_range();
    return static_cast<long>(v.get<std::uint64_t>());
  }
  if (v.is_number_integer()) {
    const long l = v.get<long>();
    if (l < lo || l > hi) out_of_range();
    return l;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d)) {
      constexpr double kExact = 9007199254740992.0;  // 2^53: every whole double below is exact
      if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) out_of_range();
      if (std::fabs(d) > kExact) bad_type(key, "a whole number written in digits", v);
      return static_cast<long>(d);
    }
  }
  bad_type(key, "a whole number", v);
}

}  // namespace

long option_integer(std::string_view key, const nlohmann::json& v) {
  return whole_number_within(key, v, std::numeric_limits<long>::min(),
                             std::numeric_limits<long>::max());
}

int option_int(std::string_view key, const nlohmann::json& v) {
  return static_cast<int>(whole_number_within(key, v, std::numeric_limits<int>::min(),
                                              std::numeric_limits<int>::max()));
}

std::uint64_t option_unsigned(std::string_view key, const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  const long l = option_integer(key, v);
  if (l < 0) bad_type(key, "a whole number of 0 or more", v);
  return static_cast<std::uint64_t>(l);
}

bool option_bool(std::string_view key, const nlohmann::json& v) {
  if (!v.is_boolean()) bad_type(key, "true or false", v);
  return v.get<bool>();
}

std::string option_string(std::string_view key, const nlohmann::json& v) {
  if (!v.is_string()) bad_type(key, "a string", v);
  // Options are written back out as JSON (run.json, answers, checkpoints): refusing text JSON
  // cannot hold here names the option, where a later write would fail with a bare type_error.
  if (!detail::is_utf8(v.get_ref<const std::string&>()))
    throw OptionError(
        fmt::format("option '{}' must be UTF-8 text, not {}", key,
                    v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  return v.get<std::string>();
}

nlohmann::json text_to_json(std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  long l = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), l);
  if (ec == std::errc() && p == text.data() + text.size() && !text.empty()) return l;
  double d = 0;
  auto [q, ec2] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec2 == std::errc() && q == text.data() + text.size() && !text.empty()) return d;
  return std::string(text);  // "nan", "inf" and other spellings are read by option_number
}

nlohmann::json OptionCodec<double>::get(double v) {
  return number_to_json(v);
}

nlohmann::json OptionCodec<std::optional<double>>::get(const std::optional<double>& v) {
  return v ? number_to_json(*v) : nlohmann::json(nullptr);
}

}  // namespace vigil::detail
