// Every case of shared/conformance/early_stopping.json through EarlyStopper (via replay) and,
// to check the incremental API on its own, epoch by epoch through on_epoch_end.
#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/early_stopping.hpp"

namespace {

using nlohmann::json;

struct Case {
  std::string name;
  std::vector<double> values;
  json options;
  json expected;
};

std::vector<Case> load_cases() {
  const auto path = vigil::test::shared_dir() / "conformance" / "early_stopping.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  const json doc = json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : doc.at("cases")) {
    Case k;
    k.name = c.at("name").get<std::string>();
    for (const auto& v : c.at("values")) k.values.push_back(vigil::number_from_json(v));
    k.options = c.at("options");
    k.expected = c.at("expected");
    cases.push_back(std::move(k));
  }
  return cases;
}

std::optional<long> opt_long(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<long>(j.get<long>());
}

void expect_matches(const Case& c, bool stopped, std::optional<long> stop_epoch,
                    std::optional<long> best_epoch, std::optional<double> best_value,
                    const std::string& kind) {
  const json& e = c.expected;
  EXPECT_EQ(stopped, e.at("stopped").get<bool>());
  EXPECT_EQ(stop_epoch, opt_long(e.at("stop_epoch")));
  EXPECT_EQ(best_epoch, opt_long(e.at("best_epoch")));
  if (e.at("best_value").is_null()) {
    EXPECT_FALSE(best_value.has_value());
  } else {
    ASSERT_TRUE(best_value.has_value());
    // The best is one of the inputs, so it must come back bit for bit.
    EXPECT_EQ(*best_value, vigil::number_from_json(e.at("best_value")));
  }
  const std::string want_kind =
      e.at("reason_kind").is_null() ? "" : e.at("reason_kind").get<std::string>();
  EXPECT_EQ(kind, want_kind);
}

TEST(Conformance, FileHasCases) {
  const auto cases = load_cases();
  EXPECT_GE(cases.size(), 100u);
}

TEST(Conformance, EveryCaseThroughReplay) {
  for (const auto& c : load_cases()) {
    SCOPED_TRACE("case " + c.name);
    const auto options = vigil::EarlyStoppingOptions::from_json(c.options);
    const auto r = vigil::replay(c.values, options);
    expect_matches(c, r.stopped, r.stop_epoch, r.best_epoch, r.best_value, r.reason_kind);
    if (r.stopped) {
      EXPECT_FALSE(r.reason.empty());
      EXPECT_EQ(r.epochs_run, *r.stop_epoch + 1);
    }
  }
}

TEST(Conformance, EveryCaseEpochByEpochThroughLogs) {
  for (const auto& c : load_cases()) {
    SCOPED_TRACE("case " + c.name);
    auto options = vigil::EarlyStoppingOptions::from_json(c.options);
    options.with_monitor("val_metric");  // a name auto mode could not resolve: mode is explicit
    vigil::EarlyStopper s(options);
    for (std::size_t i = 0; i < c.values.size(); ++i) {
      const auto d = s.on_epoch_end(static_cast<long>(i), {{"val_metric", c.values[i]}});
      if (d.stop) {
        EXPECT_EQ(d.reason_kind, s.stop_reason_kind());
        break;
      }
    }
    expect_matches(c, s.stopped(), s.stop_epoch(), s.best_epoch(), s.best_value(),
                   s.stop_reason_kind());
  }
}

}  // namespace
