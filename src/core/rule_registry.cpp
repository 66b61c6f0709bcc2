// Rule specs to rules: splitting an item, reading its parameters, and the name -> factory table.
#include "vigil/rule_registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"

namespace vigil {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

// ---- RuleSpec ----

RuleSpec::RuleSpec(std::string_view item) : text_(detail::trim(item)) {
  for (auto p : split(text_, ':')) parts_.emplace_back(detail::trim(p));
}

const std::string& RuleSpec::part(std::size_t i) const {
  if (i + 1 >= parts_.size()) fail(fmt::format("parameter {} is missing", i + 1));
  return parts_[i + 1];
}

void RuleSpec::expect_parameters(std::size_t min, std::size_t max, std::string_view usage) const {
  if (size() < min || size() > max) fail(fmt::format("expected {}", usage));
}

double RuleSpec::number(std::size_t i, std::string_view what) const {
  const std::string& text = part(i);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    fail(fmt::format("{} '{}' is not a number", what, text));
  return v;
}

int RuleSpec::whole_number(std::size_t i, std::string_view what) const {
  const std::string& text = part(i);
  int v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    fail(fmt::format("{} '{}' is not a whole number", what, text));
  return v;
}

void RuleSpec::fail(std::string_view problem) const {
  throw OptionError(fmt::format("rule '{}': {}", text_, problem));
}

// ---- RuleRegistry ----

const RuleRegistry& RuleRegistry::builtin() {
  // Immutable once built; users extend a copy.
  static const RuleRegistry registry = [] {
    RuleRegistry r;
    r.add("patience", "patience", detail::make_patience_rule);
    r.add("gl", "gl:ALPHA", detail::make_gl_rule);
    r.add("pq", "pq:ALPHA[:STRIP]", detail::make_pq_rule);
    r.add("up", "up:S[:STRIP]", detail::make_up_rule);
    r.add("robust", "robust:STEPS[:PROB]", detail::make_robust_rule);
    r.add("median", "median", detail::make_median_rule);
    r.add("percentile", "percentile", detail::make_percentile_rule);
    return r;
  }();
  return registry;
}

RuleRegistry& RuleRegistry::add(std::string name, std::string syntax, RuleFactory make) {
  if (!valid_name(name))
    throw OptionError(
        fmt::format("rule name '{}' must be lower-case letters, digits and '_'", name));
  if (contains(name)) throw OptionError(fmt::format("rule '{}' is already registered", name));
  if (!make) throw OptionError(fmt::format("rule '{}' has no factory", name));
  entries_.push_back(Entry{std::move(name), std::move(syntax), std::move(make)});
  return *this;
}

bool RuleRegistry::contains(std::string_view name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Entry& e) { return e.name == name; });
}

std::shared_ptr<const StoppingCriterion> RuleRegistry::make(std::string_view item) const {
  const RuleSpec spec(item);
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const Entry& e) { return e.name == spec.name(); });
  if (it == entries_.end()) {
    std::string known;
    for (std::size_t i = 0; i < entries_.size(); ++i)
      known += (i == 0 ? "" : i + 1 == entries_.size() ? " or " : ", ") + entries_[i].syntax;
    throw OptionError(fmt::format("unknown rule '{}': use {}", spec.text(), known));
  }
  std::shared_ptr<const StoppingCriterion> rule = it->make(spec);
  if (!rule) throw OptionError(fmt::format("rule '{}': its factory made nothing", spec.text()));
  // A stop's reason_kind is the rule's name, so it must be the one specs use.
  if (rule->name() != it->name)
    throw OptionError(
        fmt::format("rule '{}': the factory registered as '{}' made a rule named '{}'", spec.text(),
                    it->name, rule->name()));
  return rule;
}

RuleList RuleRegistry::parse(std::string_view spec) const {
  RuleList rules;
  for (auto item : split(spec, ',')) {
    item = detail::trim(item);
    if (item.empty())
      throw OptionError(
          fmt::format("rule spec '{}' has an empty item: list rules like 'patience,gl:5'", spec));
    rules.push_back(make(item));
  }
  return rules;
}

std::string RuleRegistry::syntax(std::string_view separator) const {
  std::string out;
  for (const auto& e : entries_) out += (out.empty() ? "" : std::string(separator)) + e.syntax;
  return out;
}

}  // namespace vigil
