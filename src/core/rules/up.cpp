// Prechelt's UP_s: stop once the value got worse at the end of s successive strips.
#include <fmt/format.h>

#include "detail/text.hpp"
#include "rules/builtin.hpp"
#include "vigil/early_stopping_options.hpp"

namespace vigil::detail {
namespace {

class UpRule final : public StoppingCriterion {
 public:
  UpRule(int successive, int strip) : successive_(successive), strip_(strip) {}
  std::string_view name() const override { return "up"; }
  std::string spec() const override { return fmt::format("up:{}:{}", successive_, strip_); }

  bool observe(const RuleContext& c) override {
    ++count_;
    if (count_ % strip_ != 0) return false;
    if (last_strip_value_) ups_ = c.oriented > *last_strip_value_ ? ups_ + 1 : 0;
    last_strip_value_ = c.oriented;
    return ups_ >= successive_;
  }

  std::string explain(const RuleContext& c) const override {
    return fmt::format("{} got worse at the end of {} in a row of {} (UP{})", c.options.monitor,
                       plural(ups_, "strip"), plural(strip_, c.period), successive_);
  }

  nlohmann::json state() const override {
    return {{"up_count", count_},
            {"last_strip_value",
             last_strip_value_ ? number_to_json(*last_strip_value_) : nlohmann::json(nullptr)},
            {"ups", ups_}};
  }
  void load_state(const nlohmann::json& j) override {
    count_ = j.at("up_count").get<long>();
    last_strip_value_.reset();
    if (!j.at("last_strip_value").is_null())
      last_strip_value_ = number_from_json(j.at("last_strip_value"));
    ups_ = j.at("ups").get<long>();
  }
  std::unique_ptr<StoppingCriterion> clone() const override {
    return std::make_unique<UpRule>(*this);
  }

 private:
  long successive_;
  long strip_;
  // Monitored epochs seen, the oriented value at the previous strip end, and strips in a row
  // that ended worse.
  long count_ = 0;
  std::optional<double> last_strip_value_;
  long ups_ = 0;
};

}  // namespace

std::unique_ptr<StoppingCriterion> make_up_rule(const RuleSpec& spec) {
  spec.expect_parameters(1, 2, "up:S[:STRIP], e.g. up:3 or up:3:5");
  const int successive = spec.whole_number(0, "S");
  if (successive < 1) spec.fail("S must be at least 1");
  const int strip = spec.size() == 2 ? spec.whole_number(1, "STRIP") : 5;
  if (strip < 1) spec.fail("the strip length must be at least 1 epoch");
  return std::make_unique<UpRule>(successive, strip);
}

}  // namespace vigil::detail
