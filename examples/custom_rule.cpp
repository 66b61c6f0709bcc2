// A stopping rule of your own: "stop once the value has not improved by at least 1 % (relative)
// on the best of the last N epochs". Defined here, outside the library, registered under the
// name "relative", and used both as an object and through a rule spec.
//
//   example_custom_rule
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vigil/early_stopping.hpp"

namespace {

class RelativeImprovementRule final : public vigil::StoppingCriterion {
 public:
  /// Stop when the newest value is not 1 % better than the best of the `epochs` before it.
  explicit RelativeImprovementRule(int epochs) : epochs_(epochs) {}

  std::string_view name() const override { return "relative"; }
  std::string spec() const override { return fmt::format("relative:{}", epochs_); }

  bool observe(const vigil::RuleContext& c) override {
    // Oriented values: lower is better whatever the mode.
    history_.push_back(c.oriented);
    if (history_.size() <= static_cast<std::size_t>(epochs_)) return false;
    if (history_.size() > static_cast<std::size_t>(epochs_) + 1) history_.pop_front();
    double before = history_.front();
    for (std::size_t i = 0; i + 1 < history_.size(); ++i) before = std::min(before, history_[i]);
    gain_ = (before - history_.back()) / std::fabs(before);
    return gain_ < 0.01;
  }

  std::string explain(const vigil::RuleContext& c) const override {
    return fmt::format("{} improved by {:.2f}% on the best of the previous {} epochs (< 1%)",
                       c.options.monitor, 100 * gain_, epochs_);
  }

  // Its memory, so a resumed run decides exactly as an uninterrupted one.
  nlohmann::json state() const override {
    return {{"history", std::vector<double>(history_.begin(), history_.end())}};
  }
  void load_state(const nlohmann::json& j) override {
    const auto values = j.at("history").get<std::vector<double>>();
    history_.assign(values.begin(), values.end());
  }

  std::unique_ptr<vigil::StoppingCriterion> clone() const override {
    return std::make_unique<RelativeImprovementRule>(*this);
  }

 private:
  int epochs_;
  std::deque<double> history_;  // the last epochs_ + 1 oriented values
  double gain_ = 0;             // of the last full window, for explain()
};

}  // namespace

int main() {
  const std::vector<double> val_loss{1.0, 0.8, 0.7, 0.65, 0.62, 0.61, 0.605, 0.603, 0.602, 0.6};

  // 1. The rule as an object.
  vigil::EarlyStopper direct(vigil::EarlyStoppingOptions{}.with_rules(
      {std::make_shared<const RelativeImprovementRule>(3)}));
  for (std::size_t epoch = 0; epoch < val_loss.size(); ++epoch) {
    const auto d = direct.on_epoch_end(static_cast<long>(epoch), {{"val_loss", val_loss[epoch]}});
    if (d.stop) {
      fmt::print("object: stopped after epoch {} ({}): {}\n", epoch, d.reason_kind, d.reason);
      break;
    }
  }

  // 2. The rule by name, next to a built-in one: register it in a copy of the built-ins.
  auto registry = vigil::RuleRegistry::builtin();
  registry.add("relative", "relative:N", [](const vigil::RuleSpec& spec) {
    spec.expect_parameters(1, 1, "relative:N, e.g. relative:3");
    const int epochs = spec.whole_number(0, "N");
    if (epochs < 1) spec.fail("N must be at least 1");
    return std::make_unique<RelativeImprovementRule>(epochs);
  });
  const auto options =
      vigil::EarlyStoppingOptions{}.with_registry(registry).with_rule("gl:20,relative:3");
  const auto r = vigil::replay(val_loss, options);
  fmt::print("spec {}: {}\n", options.to_json().at("rule").get<std::string>(), r.to_json().dump());
  return r.stopped ? 0 : 1;
}
