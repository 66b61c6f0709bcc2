// Stopping rules as an open interface: states written by vigil 0.1 (version 1) still load, a
// rule of one's own takes one class and one registration line, and the options table describes
// every option once (JSON keys, the unknown-key listing, the flags `vigil replay` shows).
#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_support.hpp"
#include "vigil/early_stopping.hpp"

namespace {

using nlohmann::json;
using vigil::EarlyStopper;
using vigil::EarlyStoppingOptions;
using vigil::OptionError;

// ---- states of version 1 ----

// The options, the state after epoch 10 and the state after epoch 20 as vigil 0.1 wrote them
// (every rule state held all of strip_count/strip_sum/strip_min/up_count/last_strip_value/ups/
// window), and the decisions it took on epochs 11-20.
EarlyStoppingOptions v1_options() {
  return EarlyStoppingOptions{}.with_mode("min").with_patience(100).with_rule(
      "patience,gl:30,pq:50:3,up:3:2,robust:12");
}
constexpr const char* kV1StateAfterEpoch10 =
    R"({"best":0.79,"best_epoch":7,"epochs_monitored":11,"improved":false,"last_epoch":10,"mode":"min","monitor":"val_loss","opt":0.79,"reason":"","reason_kind":null,"rule":"patience,gl:30,pq:50:3,up:3:2,robust:12:0.51","rules":[{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[]},{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[]},{"last_strip_value":null,"strip_count":2,"strip_min":0.73,"strip_sum":1.4649999999999999,"up_count":0,"ups":0,"window":[]},{"last_strip_value":0.83,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":11,"ups":1,"window":[]},{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[1.0,0.9,0.85,0.87,0.8,0.82,0.84,0.79,0.81,0.83,0.86]}],"stop_epoch":null,"stopped":false,"version":1,"wait":3})";
constexpr const char* kV1StateAfterEpoch20 =
    R"({"best":0.79,"best_epoch":7,"epochs_monitored":21,"improved":false,"last_epoch":20,"mode":"min","monitor":"val_loss","opt":0.79,"reason":"val_loss shows no confident decrease (probability 0.51) over the last 12 epochs; best 0.79 at epoch 7","reason_kind":"robust","rule":"patience,gl:30,pq:50:3,up:3:2,robust:12:0.51","rules":[{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[]},{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[]},{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[]},{"last_strip_value":1.4,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":21,"ups":6,"window":[]},{"last_strip_value":null,"strip_count":0,"strip_min":"inf","strip_sum":0.0,"up_count":0,"ups":0,"window":[0.83,0.86,0.85,0.9,0.95,1.0,1.05,1.1,1.2,1.3,1.4,1.5]}],"stop_epoch":12,"stopped":true,"version":1,"wait":13})";

struct Decision {
  long epoch;
  const char* kind;
  const char* reason;
};
const Decision kV1Decisions[] = {
    {11, "", ""},
    {12, "robust",
     "val_loss shows no confident decrease (probability 0.51) over the last 12 epochs; best 0.79 "
     "at epoch 7"},
    {13, "up",
     "val_loss got worse at the end of 3 strips in a row of 2 epochs (UP3); best 0.79 at epoch 7"},
    {14, "robust",
     "val_loss shows no confident decrease (probability 0.51) over the last 12 epochs; best 0.79 "
     "at epoch 7"},
    {15, "gl",
     "generalization loss GL = 32.91% exceeds 30 at epoch 15 (val_loss = 1.05); best 0.79 at "
     "epoch 7"},
    {16, "gl",
     "generalization loss GL = 39.24% exceeds 30 at epoch 16 (val_loss = 1.1); best 0.79 at epoch "
     "7"},
    {17, "gl",
     "generalization loss GL = 51.9% exceeds 30 at epoch 17 (val_loss = 1.2); best 0.79 at epoch "
     "7"},
    {18, "gl",
     "generalization loss GL = 64.56% exceeds 30 at epoch 18 (val_loss = 1.3); best 0.79 at epoch "
     "7"},
    {19, "gl",
     "generalization loss GL = 77.22% exceeds 30 at epoch 19 (val_loss = 1.4); best 0.79 at epoch "
     "7"},
    {20, "gl",
     "generalization loss GL = 89.87% exceeds 30 at epoch 20 (val_loss = 1.5); best 0.79 at epoch "
     "7"},
};

TEST(StateVersion1, LoadsAndContinuesAsTheOldVersionDid) {
  EarlyStopper s(v1_options());
  s.load_state(json::parse(kV1StateAfterEpoch10));
  const std::vector<double> val{0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5};
  for (std::size_t i = 0; i < val.size(); ++i) {
    const Decision& want = kV1Decisions[i];
    SCOPED_TRACE(want.epoch);
    const auto d = s.on_epoch_end(want.epoch, {{"val_loss", val[i]}, {"loss", 0.72 - 0.001 * i}});
    EXPECT_EQ(d.stop, std::string(want.kind) != "");
    EXPECT_EQ(d.reason_kind, want.kind);
    EXPECT_EQ(d.reason, want.reason);
  }
  // Everything but the version and the rule states is as the old version wrote it; each rule
  // state now holds only its own keys, with the old values.
  auto got = s.state();
  auto old = json::parse(kV1StateAfterEpoch20);
  EXPECT_EQ(got.at("version"), 2);
  const auto got_rules = got.at("rules");
  const auto old_rules = old.at("rules");
  for (auto* j : {&got, &old}) {
    j->erase("version");
    j->erase("rules");
  }
  EXPECT_EQ(got, old);
  ASSERT_EQ(got_rules.size(), old_rules.size());
  const std::vector<std::set<std::string>> keys{{},
                                                {},
                                                {"strip_count", "strip_sum", "strip_min"},
                                                {"up_count", "last_strip_value", "ups"},
                                                {"window"}};
  for (std::size_t i = 0; i < got_rules.size(); ++i) {
    SCOPED_TRACE(i);
    std::set<std::string> have;
    for (const auto& [k, v] : got_rules[i].items()) {
      have.insert(k);
      EXPECT_EQ(v, old_rules[i].at(k)) << k;
    }
    EXPECT_EQ(have, keys[i]);
  }
  // And the new state loads back.
  EarlyStopper t(v1_options());
  t.load_state(s.state());
  EXPECT_EQ(t.state(), s.state());
}

TEST(StateVersion1, UnknownVersionsAndReasonsAreRefused) {
  auto j = json::parse(kV1StateAfterEpoch20);
  EarlyStopper s(v1_options());
  j["version"] = 3;
  EXPECT_THROW(s.load_state(j), vigil::InputError);
  j["version"] = 1;
  j["reason_kind"] = "sometimes";
  EXPECT_THROW(s.load_state(j), vigil::InputError);
  j["reason_kind"] = "robust";
  j["rules"][4].erase("window");
  EXPECT_THROW(s.load_state(j), vigil::InputError);
}

// ---- a rule of one's own ----

// Stops once the value has been above a fixed ceiling for `n` monitored epochs in a row.
class AboveRule final : public vigil::StoppingCriterion {
 public:
  AboveRule(double ceiling, int n) : ceiling_(ceiling), n_(n) {}
  std::string_view name() const override { return "above"; }
  std::string spec() const override { return fmt::format("above:{}:{}", ceiling_, n_); }
  bool observe(const vigil::RuleContext& c) override {
    run_ = c.value > ceiling_ ? run_ + 1 : 0;
    return run_ >= n_;
  }
  std::string explain(const vigil::RuleContext& c) const override {
    return fmt::format("{} above {} for {} epochs", c.options.monitor, ceiling_, run_);
  }
  json state() const override { return {{"run", run_}}; }
  void load_state(const json& j) override { run_ = j.at("run").get<int>(); }
  std::unique_ptr<vigil::StoppingCriterion> clone() const override {
    return std::make_unique<AboveRule>(*this);
  }

 private:
  double ceiling_;
  int n_;
  int run_ = 0;
};

TEST(CustomRule, OneClassAndOneRegistration) {
  auto registry = vigil::RuleRegistry::builtin();
  registry.add("above", "above:CEILING:N", [](const vigil::RuleSpec& s) {
    s.expect_parameters(2, 2, "above:CEILING:N");
    return std::make_unique<AboveRule>(s.number(0, "CEILING"), s.whole_number(1, "N"));
  });
  const auto options = EarlyStoppingOptions{}.with_registry(registry).with_rule("gl:200,above:2:2");
  EXPECT_EQ(options.to_json().at("rule"), "gl:200,above:2:2");

  const auto r = vigil::replay(std::vector<double>{3, 1, 2.5, 1.5, 2.5, 2.6, 1}, options);
  EXPECT_EQ(r.stop_epoch, 5);
  EXPECT_EQ(r.reason_kind, "above");
  EXPECT_EQ(r.reason, "val_loss above 2 for 2 epochs; best 1 at epoch 1");
  EXPECT_EQ(r.to_json().at("reason_kind"), "above");

  // It resumes like a built-in rule, and JSON options find it through the defaults' registry.
  EarlyStopper a(options);
  (void)a.update(0, 3.0);
  EXPECT_EQ(a.state().at("rules")[1], (json{{"run", 1}}));
  EarlyStopper b(EarlyStoppingOptions::from_json({{"rule", "gl:200,above:2:2"}}, options));
  b.load_state(a.state());
  EXPECT_TRUE(b.update(1, 2.5).stop);

  // Without the registry the rule is unknown; the message lists the registered syntaxes.
  try {
    (void)vigil::parse_rules("above:2:2");
    FAIL() << "no error";
  } catch (const OptionError& e) {
    EXPECT_STREQ(e.what(),
                 "unknown rule 'above:2:2': use patience, gl:ALPHA, pq:ALPHA[:STRIP], "
                 "up:S[:STRIP], robust:STEPS[:PROB], median or percentile");
  }
  try {
    (void)registry.parse("nope");
    FAIL() << "no error";
  } catch (const OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("or above:CEILING:N"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)registry.parse("above:2"), OptionError);
  EXPECT_THROW(registry.add("above", "above", [](const vigil::RuleSpec&) { return nullptr; }),
               OptionError);
  EXPECT_THROW(registry.add("Bad-Name", "x", [](const vigil::RuleSpec&) { return nullptr; }),
               OptionError);
  EXPECT_FALSE(vigil::RuleRegistry::builtin().contains("above"));
}

TEST(CustomRule, BuiltInSpecErrorsAreUnchanged) {
  const std::pair<const char*, const char*> cases[] = {
      {"gl", "rule 'gl': expected gl:ALPHA, e.g. gl:5"},
      {"gl:x", "rule 'gl:x': ALPHA 'x' is not a number"},
      {"gl:-1", "rule 'gl:-1': ALPHA must be >= 0"},
      {"pq:1:0", "rule 'pq:1:0': the strip length must be at least 1 epoch"},
      {"up:2:x", "rule 'up:2:x': STRIP 'x' is not a whole number"},
      {"robust:2", "rule 'robust:2': STEPS must be at least 3"},
      {"robust:10:1", "rule 'robust:10:1': PROB must be between 0.5 and 1 (exclusive)"},
      {"patience:3",
       "rule 'patience:3': expected 'patience' without parameters (set the count with the "
       "patience option)"},
      {"gl:5,", "rule spec 'gl:5,' has an empty item: list rules like 'patience,gl:5'"},
  };
  for (const auto& [spec, message] : cases) {
    SCOPED_TRACE(spec);
    try {
      (void)vigil::parse_rules(spec);
      FAIL() << "no error";
    } catch (const OptionError& e) {
      EXPECT_STREQ(e.what(), message);
    }
  }
}

// ---- the options table ----

std::span<const vigil::OptionField<EarlyStoppingOptions>> fields() {
  return vigil::early_stopping_option_fields();
}

TEST(OptionsTable, EveryKeyRoundTripsThroughJson) {
  // A value other than the default for every key of the table.
  const json values{{"monitor", "val_acc"},
                    {"mode", "max"},
                    {"patience", 7},
                    {"min_delta", 0.25},
                    {"baseline", "-inf"},
                    {"start_from_epoch", 3},
                    {"check_finite", false},
                    {"stopping_threshold", 0.5},
                    {"divergence_threshold", 9.5},
                    {"strict", false},
                    {"rule", "patience,up:2:3"},
                    {"combine", "all"},
                    {"max_epochs", 40},
                    {"time_budget_seconds", 60.5},
                    {"train_monitor", "train_loss"},
                    {"percentile", 25.0},
                    {"n_startup_trials", 2},
                    {"n_warmup_steps", 3},
                    {"interval_steps", 4},
                    {"n_min_trials", 5}};
  const json defaults = EarlyStoppingOptions{}.to_json();
  ASSERT_EQ(values.size(), fields().size());
  for (const auto& f : fields()) {
    SCOPED_TRACE(f.key);
    ASSERT_TRUE(values.contains(f.key));
    ASSERT_NE(values.at(f.key), defaults.at(f.key));
    const auto o = EarlyStoppingOptions::from_json({{f.key, values.at(f.key)}});
    json want = defaults;
    want[f.key] = values.at(f.key);
    EXPECT_EQ(o.to_json(), want);
    EXPECT_EQ(EarlyStoppingOptions::from_json(o.to_json()).to_json(), want);
    for (const auto& alias : f.aliases)
      EXPECT_EQ(EarlyStoppingOptions::from_json({{alias, values.at(f.key)}}).to_json(), want);
  }
  EXPECT_EQ(EarlyStoppingOptions::from_json(values).to_json(), values);
  EXPECT_EQ(EarlyStoppingOptions::from_json({{"rules", {"patience", "gl:5"}}}).to_json().at("rule"),
            "patience,gl:5");
}

TEST(OptionsTable, UnknownKeyListsExactlyTheTablesKeys) {
  std::string keys;
  for (const auto& f : fields()) keys += (keys.empty() ? "" : ", ") + f.key;
  try {
    (void)EarlyStoppingOptions::from_json({{"patiense", 2}});
    FAIL() << "no error";
  } catch (const OptionError& e) {
    EXPECT_EQ(std::string(e.what()), "unknown option 'patiense' (known: " + keys + ")");
  }
  EXPECT_EQ(keys,
            "monitor, mode, patience, min_delta, baseline, start_from_epoch, check_finite, "
            "stopping_threshold, divergence_threshold, strict, rule, combine, max_epochs, "
            "time_budget_seconds, train_monitor, percentile, n_startup_trials, n_warmup_steps, "
            "interval_steps, n_min_trials");
  for (const auto& f : fields()) EXPECT_FALSE(f.help.empty()) << f.key;
}

// Every flag name a field answers to: its flag_names (without CLI11's '!' for a flag that sets
// false), and --no-NAME for a negatable switch.
std::set<std::string> table_flags() {
  std::set<std::string> out;
  for (const auto& f : fields()) {
    std::string names = vigil::flag_names(f);
    for (std::size_t start = 0; start <= names.size();) {
      auto end = names.find(',', start);
      if (end == std::string::npos) end = names.size();
      std::string name = names.substr(start, end - start);
      if (!name.empty() && name[0] == '!') name.erase(0, 1);
      out.insert(name);
      if (f.negatable) out.insert("--no-" + name.substr(2));
      start = end + 1;
    }
  }
  return out;
}

TEST(OptionsTable, EveryEarlyStoppingFlagOfReplayResolvesToAField) {
  const auto help = vigil::test::run_process({VIGIL_CLI, "replay", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  // The flags of replay itself (what to replay and how to print it), not early-stopping options.
  const std::set<std::string> own{"--help",  "--values",   "--log",           "--batch",
                                  "--json",  "--evaluate", "--test-monitor",  "--test-mode",
                                  "--rules", "--plot",     "--reference-runs"};
  const auto known = table_flags();
  const std::regex flag("(^|[\\s,])(--[a-z][a-z0-9-]*)");
  std::set<std::string> seen;
  std::istringstream lines(help.out);
  for (std::string line; std::getline(lines, line);) {
    // Only the first column names flags; descriptions may mention others.
    const auto first = line.find_first_not_of(' ');
    if (first == std::string::npos || line.compare(first, 1, "-") != 0) continue;
    const auto gap = line.find("  ", first);
    const std::string names = line.substr(first, gap == std::string::npos ? gap : gap - first);
    for (std::sregex_iterator it(names.begin(), names.end(), flag), end; it != end; ++it) {
      const std::string name = (*it)[2];
      if (own.count(name)) continue;
      seen.insert(name);
      EXPECT_TRUE(known.count(name)) << name << " is not in early_stopping_option_fields()";
    }
  }
  EXPECT_GE(seen.size(), fields().size()) << help.out;
}

}  // namespace

TEST(StoppingRules, MessagesNameThePeriodTheLoopFeeds) {
  EarlyStopper s(EarlyStoppingOptions{}.with_monitor("val_loss").with_patience(2));
  s.set_period_name("validation");
  for (long i = 0; i < 3; ++i) (void)s.update(i, 1.0);
  ASSERT_TRUE(s.stopped());
  EXPECT_EQ(s.stop_reason(),
            "val_loss did not improve for 2 validations (patience 2); best 1 at validation 0");
}
