// Rule specs ("patience,gl:5") to stopping rules: a registry maps each rule name to a factory.
// RuleRegistry::builtin() knows vigil's rules; copy it and add() your own to use them by name.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/stopping_rule.hpp"

namespace vigil {

/// Rules as EarlyStoppingOptions holds them: shared and never modified (the stopper clones them).
using RuleList = std::vector<std::shared_ptr<const StoppingCriterion>>;

/// One item of a rule spec, split at ':': "pq:0.5:5" has the name "pq" and the parameters "0.5"
/// and "5". Its readers throw OptionError with the messages every rule shares.
class RuleSpec {
 public:
  /// Splits `item` (spaces around the parts are dropped).
  explicit RuleSpec(std::string_view item);

  /// The whole item, as written.
  [[nodiscard]] std::string_view text() const { return text_; }
  /// The part before the first ':'.
  [[nodiscard]] std::string_view name() const { return parts_.front(); }
  /// How many parameters follow the name.
  [[nodiscard]] std::size_t size() const { return parts_.size() - 1; }

  /// Throws "rule 'ITEM': expected USAGE" unless there are `min` to `max` parameters; `usage`
  /// is e.g. "pq:ALPHA[:STRIP], e.g. pq:0.5 or pq:0.5:5".
  void expect_parameters(std::size_t min, std::size_t max, std::string_view usage) const;
  /// Parameter `i` (0 = the first after the name) as a finite number; `what` names it in the
  /// error, e.g. "ALPHA".
  [[nodiscard]] double number(std::size_t i, std::string_view what) const;
  /// Parameter `i` as a whole number.
  [[nodiscard]] int whole_number(std::size_t i, std::string_view what) const;
  /// Throws OptionError("rule 'ITEM': PROBLEM"), e.g. fail("ALPHA must be >= 0").
  [[noreturn]] void fail(std::string_view problem) const;

 private:
  const std::string& part(std::size_t i) const;
  std::string text_;
  std::vector<std::string> parts_;
};

/// Makes a rule from its spec item; throws OptionError for bad parameters.
using RuleFactory = std::function<std::unique_ptr<StoppingCriterion>(const RuleSpec& spec)>;

/// Rule names and their factories. A plain value: copy builtin(), add() to the copy, and give it
/// to EarlyStoppingOptions::with_registry (or parse_rules) where specs should know the new rule.
class RuleRegistry {
 public:
  /// An empty registry.
  RuleRegistry() = default;
  /// patience, gl, pq, up, robust, median and percentile (see vigil/stopping_rules.hpp).
  [[nodiscard]] static const RuleRegistry& builtin();

  /// Registers a rule. `name` is what specs start with and the reason_kind of its stops;
  /// `syntax` is shown when a spec names an unknown rule, e.g. "pq:ALPHA[:STRIP]". Throws
  /// OptionError if the name is taken or is not lower-case letters, digits and '_'.
  RuleRegistry& add(std::string name, std::string syntax, RuleFactory make);

  /// A rule of this name is registered.
  [[nodiscard]] bool contains(std::string_view name) const;
  /// The rule of one spec item, e.g. "gl:5"; throws OptionError naming the item.
  [[nodiscard]] std::shared_ptr<const StoppingCriterion> make(std::string_view item) const;
  /// A comma-separated list of items (spaces around items allowed); throws OptionError for an
  /// empty spec or item, an unknown rule or bad parameters.
  [[nodiscard]] RuleList parse(std::string_view spec) const;
  /// "patience|gl:ALPHA|...": the syntax of every rule, in registration order.
  [[nodiscard]] std::string syntax(std::string_view separator = "|") const;

 private:
  struct Entry {
    std::string name;
    std::string syntax;
    RuleFactory make;
  };
  std::vector<Entry> entries_;
};

}  // namespace vigil
