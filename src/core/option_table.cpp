// The JSON readers behind option tables: one message shape for every wrong value.
#include "vigil/option_table.hpp"

#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

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

long option_integer(std::string_view key, const nlohmann::json& v) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<long>::max()))
      bad_type(key, "a whole number in range", v);
    return v.get<long>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return static_cast<long>(d);
  }
  bad_type(key, "a whole number", v);
}

int option_int(std::string_view key, const nlohmann::json& v) {
  const long l = option_integer(key, v);
  if (l < std::numeric_limits<int>::min() || l > std::numeric_limits<int>::max())
    bad_type(key, "a whole number in range", v);
  return static_cast<int>(l);
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
