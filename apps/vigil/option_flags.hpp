// Command-line flags from an option table (vigil/option_table.hpp): one CLI11 option per field,
// so a flag's name, help line, default and reader are the ones its JSON key has. Header-only:
// both `vigil` (core only) and `vigil-torch` register flags with it.
#pragma once

#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "vigil/option_table.hpp"

namespace vigil::cli {

/// Prepended to each field's key in the `keyed` list of add_option_flags(), for a table whose
/// JSON object sits inside another one (e.g. "early_stopping." in run.json).
struct KeyPrefix {
  std::string value;
};

namespace flag_text {

/// A field's JSON value written as --help shows a default: the way CLI11 prints the C++ value
/// (numbers as a stream writes them, strings bare, lists joined by commas); empty for null.
inline std::string default_text(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream s;
    s << v.get<double>();
    return s.str();
  }
  if (v.is_array()) {
    std::string s;
    for (const auto& item : v) s += (s.empty() ? "" : ",") + default_text(item);
    return s;
  }
  return v.dump();
}

/// CLI11's name for the type of a value (INT, UINT, FLOAT, TEXT), read from its JSON type.
inline std::string type_name(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return "UINT";
  if (v.is_number_integer()) return "INT";
  if (v.is_number_float()) return "FLOAT";
  return "TEXT";
}

}  // namespace flag_text

/// Adds one option to `cmd` for each field, in `group`, writing into `target` (which must outlive
/// the parse). A Value field takes one string and reads it with set_from_text(), so a bad value
/// is reported by the table's reader, naming the key; its --help default is the field's value in
/// `target` now. A Switch is a flag (`--no-<name>` as well when negatable); given twice, the last
/// one wins. When `keyed` is not null, each option is recorded with its key (after `prefix`), so
/// that a caller can tell which keys were given on the command line.
template <class Options>
void add_option_flags(CLI::App* cmd, std::span<const OptionField<Options>> fields, Options& target,
                      const std::string& group, const KeyPrefix& prefix,
                      std::vector<std::pair<CLI::Option*, std::string>>* keyed) {
  for (const auto& f : fields) {
    const std::string names = flag_names(f);
    CLI::Option* opt = nullptr;
    if (f.kind == FlagKind::Switch) {
      std::string all = names;
      if (f.negatable) all += ",!--no-" + names.substr(2, names.find(',') - 2);
      // CLI11 counts `--x` as +1 and `--no-x` as -1; with TakeLast only the last one is seen.
      opt = cmd->add_flag_function(
                   all, [&target, f](std::int64_t count) { f.set(target, count > 0); }, f.help)
                ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    } else {
      const nlohmann::json now = f.get(target);
      opt = cmd->add_option(
                   names,
                   [&target, f](const CLI::results_t& results) {
                     set_from_text(target, f, results.back());
                     return true;
                   },
                   f.help)
                ->type_name(flag_text::type_name(now))
                ->type_size(1)
                ->expected(1)
                ->default_str(flag_text::default_text(now));
    }
    opt->group(group);
    if (keyed != nullptr) keyed->emplace_back(opt, prefix.value + f.key);
  }
}

}  // namespace vigil::cli
