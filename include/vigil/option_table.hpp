// A table that describes each field of an options struct once (its JSON key, its help line, how
// it reads and writes), from which JSON in and out, command-line flags and error listings follow.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/monitor.hpp"

namespace vigil {

/// How a field takes a value on the command line.
enum class FlagKind {
  Value,   ///< `--key VALUE`
  Switch,  ///< `--key` sets true (and `--no-key` false when `negatable`)
};

/// One field of an options struct `Options`. Make entries with option_field() (plain members)
/// or fill the functions yourself for fields with their own spelling (an enum, a rule list).
template <class Options>
struct OptionField {
  /// The JSON key (run.json, `vigil replay --batch`); the flag is `--` + key with '_' -> '-'
  /// unless `flag` says otherwise.
  std::string key;
  /// One line for `--help` and the reference.
  std::string help;
  /// The field as JSON (non-finite numbers as "nan"/"inf"/"-inf", unset optionals as null).
  std::function<nlohmann::json(const Options&)> get;
  /// Sets the field from JSON; throws OptionError naming `key` for a value of the wrong type.
  std::function<void(Options&, const nlohmann::json&)> set;
  /// Sets the field from command-line text; empty = parse the text as for `set` (a JSON
  /// number, true/false, or else a string).
  std::function<void(Options&, std::string_view)> set_text = {};
  /// CLI11 names of the flag when not derived from `key`, e.g. "--time-budget".
  std::string flag = {};
  /// Further JSON keys accepted on input (never written), e.g. "time_budget".
  std::vector<std::string> aliases = {};
  FlagKind kind = FlagKind::Value;
  /// For a Switch: `--no-<flag>` sets false.
  bool negatable = false;
};

namespace detail {
/// Readers that throw OptionError("option 'KEY' must be ..., not VALUE").
double option_number(std::string_view key, const nlohmann::json& v);
std::optional<double> option_optional_number(std::string_view key, const nlohmann::json& v);
long option_integer(std::string_view key, const nlohmann::json& v);
int option_int(std::string_view key, const nlohmann::json& v);
std::uint64_t option_unsigned(std::string_view key, const nlohmann::json& v);
bool option_bool(std::string_view key, const nlohmann::json& v);
std::string option_string(std::string_view key, const nlohmann::json& v);
/// Command-line text as JSON: a number or true/false where it reads as one, else a string.
nlohmann::json text_to_json(std::string_view text);

template <class T>
struct OptionCodec;
template <>
struct OptionCodec<double> {
  static nlohmann::json get(double v);
  static double set(std::string_view key, const nlohmann::json& j) { return option_number(key, j); }
};
template <>
struct OptionCodec<std::optional<double>> {
  static nlohmann::json get(const std::optional<double>& v);
  static std::optional<double> set(std::string_view key, const nlohmann::json& j) {
    return option_optional_number(key, j);
  }
};
/// bool is a switch, not a number.
template <class T>
concept WholeNumber = std::is_integral_v<T> && !std::is_same_v<T, bool>;
/// Whole numbers: unsigned ones refuse negatives, int and narrower are checked against int's
/// range, wider ones against long's.
template <WholeNumber T>
struct OptionCodec<T> {
  static nlohmann::json get(T v) { return v; }
  static T set(std::string_view key, const nlohmann::json& j) {
    if constexpr (std::is_unsigned_v<T>) {
      return static_cast<T>(option_unsigned(key, j));
    } else if constexpr (sizeof(T) < sizeof(long)) {
      return static_cast<T>(option_int(key, j));
    } else {
      return static_cast<T>(option_integer(key, j));
    }
  }
};
template <>
struct OptionCodec<std::optional<long>> {
  static nlohmann::json get(const std::optional<long>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  static std::optional<long> set(std::string_view key, const nlohmann::json& j) {
    if (j.is_null()) return std::nullopt;
    return option_integer(key, j);
  }
};
template <>
struct OptionCodec<ModeSetting> {
  static nlohmann::json get(ModeSetting v) { return std::string(mode_name(v)); }
  static ModeSetting set(std::string_view key, const nlohmann::json& j) {
    return parse_mode_setting(option_string(key, j));
  }
};
template <>
struct OptionCodec<bool> {
  static nlohmann::json get(bool v) { return v; }
  static bool set(std::string_view key, const nlohmann::json& j) { return option_bool(key, j); }
};
template <>
struct OptionCodec<std::string> {
  static nlohmann::json get(const std::string& v) { return v; }
  static std::string set(std::string_view key, const nlohmann::json& j) {
    return option_string(key, j);
  }
};
}  // namespace detail

/// An entry for a plain member (numbers, bool, string, optional number). A string member reads
/// command-line text as it is (no number parsing).
template <class Options, class T>
OptionField<Options> option_field(std::string key, T Options::*member, std::string help) {
  using Codec = detail::OptionCodec<T>;
  OptionField<Options> f;
  f.key = std::move(key);
  f.help = std::move(help);
  f.get = [member](const Options& o) { return Codec::get(o.*member); };
  f.set = [member, k = f.key](Options& o, const nlohmann::json& j) {
    o.*member = Codec::set(k, j);
  };
  if constexpr (std::is_same_v<T, std::string>) {
    f.set_text = [member, k = f.key](Options& o, std::string_view text) {
      o.*member = detail::option_string(k, nlohmann::json(std::string(text)));  // UTF-8 checked
    };
  }
  if constexpr (std::is_same_v<T, bool>) f.kind = FlagKind::Switch;
  return f;
}

/// The command-line names of a field: its `flag`, or `--` + key with '_' replaced by '-'.
template <class Options>
std::string flag_names(const OptionField<Options>& f) {
  if (!f.flag.empty()) return f.flag;
  std::string s = "--" + f.key;
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

/// "a, b, c": the keys of a table, for error messages.
template <class Options>
std::string known_keys(std::span<const OptionField<Options>> table) {
  std::string s;
  for (const auto& f : table) s += (s.empty() ? "" : ", ") + f.key;
  return s;
}

/// The field with this key or alias, or nullptr.
template <class Options>
const OptionField<Options>* find_field(std::span<const OptionField<Options>> table,
                                       std::string_view key) {
  for (const auto& f : table) {
    if (f.key == key) return &f;
    for (const auto& a : f.aliases)
      if (a == key) return &f;
  }
  return nullptr;
}

/// Every field of `options` as one JSON object, in table order.
template <class Options>
nlohmann::json options_to_json(const Options& options,
                               std::span<const OptionField<Options>> table) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : table) j[f.key] = f.get(options);
  return j;
}

/// `defaults` with the keys present in `j` read over it. Throws OptionError for a `j` that is
/// not an object (naming `what`), an unknown key (listing the known ones) or a bad value.
template <class Options>
Options options_from_json(const nlohmann::json& j, const Options& defaults,
                          std::span<const OptionField<Options>> table, std::string_view what) {
  if (!j.is_object())
    throw OptionError(std::string(what) + " must be a JSON object, not " + j.dump());
  Options o = defaults;
  for (const auto& [key, v] : j.items()) {
    const auto* f = find_field(table, key);
    if (f == nullptr)
      throw OptionError("unknown option '" + key + "' (known: " + known_keys(table) + ")");
    f->set(o, v);
  }
  return o;
}

/// Sets one field from command-line text (as a flag would).
template <class Options>
void set_from_text(Options& options, const OptionField<Options>& f, std::string_view text) {
  if (f.set_text) {
    f.set_text(options, text);
  } else {
    f.set(options, detail::text_to_json(text));
  }
}

}  // namespace vigil
