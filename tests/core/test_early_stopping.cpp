// EarlyStopper beyond the conformance file: mode inference, the rules worked by hand, limits,
// combination, warnings, bad options, and resuming from state() exactly.
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.hpp"
#include "vigil/early_stopping.hpp"

namespace {

using vigil::Combine;
using vigil::EarlyStopper;
using vigil::EarlyStoppingOptions;
using vigil::InputError;
using vigil::Mode;
using vigil::OptionError;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

EarlyStoppingOptions min_options() {
  return EarlyStoppingOptions{}.with_mode("min");
}

// Feeds val (and train, for pq) epoch by epoch; returns the stop decision's epoch or nullopt.
struct Fed {
  std::optional<long> stop_epoch;
  std::string kind;
  std::string reason;
};
Fed feed(EarlyStopper& s, const std::vector<double>& val, const std::vector<double>& train = {},
         long first_epoch = 0) {
  Fed f;
  for (std::size_t i = 0; i < val.size(); ++i) {
    vigil::Logs logs{{"val_loss", val[i]}};
    if (!train.empty()) logs["loss"] = train[i];
    const auto d = s.on_epoch_end(first_epoch + static_cast<long>(i), logs);
    if (d.stop) {
      f.stop_epoch = first_epoch + static_cast<long>(i);
      f.kind = d.reason_kind;
      f.reason = d.reason;
      return f;
    }
  }
  return f;
}

// ---- the monitor ----

TEST(Mode, AutoInfersDirectionFromTheName) {
  for (const char* name : {"val_loss", "loss", "val_mean_absolute_error", "val_mape", "perplexity"})
    EXPECT_EQ(vigil::resolve_mode(name, "auto"), Mode::Min) << name;
  for (const char* name :
       {"val_accuracy", "val_acc", "val/f1", "map50", "val_auc", "top5_accuracy"})
    EXPECT_EQ(vigil::resolve_mode(name, "auto"), Mode::Max) << name;
  EXPECT_EQ(vigil::resolve_mode("anything", "max"), Mode::Max);
  EXPECT_EQ(vigil::resolve_mode("val_accuracy", "min"), Mode::Min);
}

TEST(Mode, AutoRefusesNamesItCannotTell) {
  const auto msg =
      vigil::test::error_of<OptionError>([] { (void)vigil::resolve_mode("val_widgets", "auto"); });
  EXPECT_NE(msg.find("set mode to min or max"), std::string::npos) << msg;
  EXPECT_THROW((void)vigil::resolve_mode("val_loss", "down"), OptionError);
  EXPECT_THROW(EarlyStopper(EarlyStoppingOptions{}.with_monitor("epoch")), OptionError);
}

TEST(Improvement, KerasSignedDeltaInDouble) {
  // 0.999 + 0.001 rounds to exactly 1.0 in double: not better than 1.0.
  EXPECT_FALSE(vigil::is_improvement(Mode::Min, 0.999, 1.0, 0.001));
  EXPECT_TRUE(vigil::is_improvement(Mode::Min, 0.998, 1.0, 0.001));
  EXPECT_TRUE(vigil::is_improvement(Mode::Min, 0.998, 1.0, -0.001));  // |min_delta|
  EXPECT_FALSE(vigil::is_improvement(Mode::Max, 0.5005, 0.5, 0.001));
  EXPECT_TRUE(vigil::is_improvement(Mode::Max, 0.502, 0.5, 0.001));
  EXPECT_FALSE(vigil::is_improvement(Mode::Min, kNaN, 1.0, 0.0));
  EXPECT_TRUE(vigil::is_improvement(Mode::Min, 1.0, INFINITY, 0.0));
}

TEST(Monitor, MissingMetricNamesTheOnesThatExist) {
  EarlyStopper s(min_options());
  const auto msg = vigil::test::error_of<InputError>([&] {
    (void)s.on_epoch_end(0, {{"loss", 1.0}, {"val_acc", 0.5}});
  });
  EXPECT_NE(msg.find("val_loss"), std::string::npos) << msg;
  EXPECT_NE(msg.find("loss, val_acc"), std::string::npos) << msg;
}

TEST(Monitor, NonStrictWarnsAndSkips) {
  EarlyStopper s(min_options().with_strict(false).with_patience(1));
  auto d = s.on_epoch_end(0, {{"val_loss", 1.0}});
  EXPECT_TRUE(d.monitored);
  d = s.on_epoch_end(1, {{"loss", 0.5}});
  EXPECT_FALSE(d.monitored);
  EXPECT_FALSE(d.stop);
  EXPECT_NE(d.warning.find("val_loss"), std::string::npos);
  EXPECT_EQ(s.wait(), 0);  // a skipped epoch does not count
  d = s.on_epoch_end(2, {{"val_loss", 1.0}});
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason_kind, "patience");
}

TEST(Monitor, NumbersInJson) {
  EXPECT_EQ(vigil::number_to_json(kNaN), "nan");
  EXPECT_EQ(vigil::number_to_json(-INFINITY), "-inf");
  EXPECT_EQ(vigil::number_to_json(0.25), 0.25);
  EXPECT_TRUE(std::isinf(vigil::number_from_json("Infinity")));
  EXPECT_TRUE(std::isnan(vigil::number_from_json("NaN")));
  EXPECT_THROW((void)vigil::number_from_json("fast"), InputError);
  EXPECT_THROW((void)vigil::number_from_json(nlohmann::json::array()), InputError);
}

// ---- Keras patience bookkeeping exposed for callbacks ----

TEST(EarlyStopping, ExposesBestWaitAndImprovement) {
  EarlyStopper s(min_options().with_patience(2));
  (void)s.on_epoch_end(0, {{"val_loss", 1.0}});
  EXPECT_TRUE(s.improved_this_epoch());
  (void)s.on_epoch_end(1, {{"val_loss", 0.5}});
  EXPECT_TRUE(s.improved_this_epoch());
  (void)s.on_epoch_end(2, {{"val_loss", 0.6}});
  EXPECT_FALSE(s.improved_this_epoch());
  EXPECT_EQ(s.wait(), 1);
  EXPECT_EQ(s.best_epoch(), 1);
  EXPECT_EQ(s.best_value(), 0.5);
  EXPECT_FALSE(s.stopped());
  const auto d = s.on_epoch_end(3, {{"val_loss", 0.7}});
  EXPECT_TRUE(d.stop);
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.stop_epoch(), 3);
  EXPECT_NE(d.reason.find("did not improve for 2 epochs"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("best 0.5 at epoch 1"), std::string::npos) << d.reason;
}

TEST(EarlyStopping, EpochsMustIncrease) {
  EarlyStopper s(min_options());
  (void)s.update(3, 1.0);
  EXPECT_THROW((void)s.update(3, 0.9), InputError);
  EXPECT_THROW((void)s.update(1, 0.9), InputError);
  EXPECT_NO_THROW((void)s.update(5, 0.9));
}

// ---- Prechelt's criteria, worked by hand ----

TEST(Rules, GeneralizationLoss) {
  // E_opt = 0.8 from epoch 1; GL(2) = 100 * (0.82 / 0.8 - 1) = 2.5, GL(3) = 6.25 > 5.
  EarlyStopper s(min_options().with_rule("gl:5"));
  const auto f = feed(s, {1.0, 0.8, 0.82, 0.85, 0.9});
  EXPECT_EQ(f.stop_epoch, 3);
  EXPECT_EQ(f.kind, "gl");
  EXPECT_NE(f.reason.find("6.25%"), std::string::npos) << f.reason;
  // Patience 0 would have stopped at epoch 2; gl replaced it.
  EarlyStopper p(min_options());
  EXPECT_EQ(feed(p, {1.0, 0.8, 0.82, 0.85, 0.9}).stop_epoch, 2);
}

TEST(Rules, GeneralizationLossIsStrictlyAboveAlpha) {
  // 4.25 / 4 - 1 = 0.0625 exactly in binary: GL = 6.25.
  EarlyStopper equal(min_options().with_rule("gl:6.25"));
  EXPECT_FALSE(feed(equal, {4.0, 4.25}).stop_epoch);
  EarlyStopper below(min_options().with_rule("gl:6.24"));
  EXPECT_EQ(feed(below, {4.0, 4.25}).stop_epoch, 1);
}

TEST(Rules, GeneralizationLossInMaxMode) {
  // Accuracy falling from the best 0.8 to 0.7 loses 12.5% of it.
  EarlyStopper s(EarlyStoppingOptions{}.with_monitor("val_accuracy").with_rule("gl:12"));
  std::optional<long> stop;
  const std::vector<double> acc{0.5, 0.8, 0.75, 0.7};
  for (std::size_t i = 0; i < acc.size() && !stop; ++i)
    if (s.on_epoch_end(static_cast<long>(i), {{"val_accuracy", acc[i]}}).stop) stop = i;
  EXPECT_EQ(stop, 3);
}

TEST(Rules, ProgressQuotientAtStripEnds) {
  // Strips of 3. Strip 1 (epochs 0-2): training 1.0, 0.9, 0.8 -> P = 1000 * (0.9 / 0.8 - 1)
  // = 125; GL(2) = 0 (0.85 is the best) -> PQ 0. Strip 2 (epochs 3-5): training 0.79, 0.785,
  // 0.78 -> P = 1000 * (0.785 / 0.78 - 1) = 6.41; GL(5) = 100 * (0.9 / 0.85 - 1) = 5.88 ->
  // PQ = 0.9176. Epochs 3 and 4 have GL > 0 too, but are not strip ends.
  const std::vector<double> val{1.0, 0.9, 0.85, 0.86, 0.88, 0.9};
  const std::vector<double> train{1.0, 0.9, 0.8, 0.79, 0.785, 0.78};
  const double pq = (100.0 * (0.9 - 0.85) / 0.85) / (1000.0 * (0.785 - 0.78) / 0.78);
  ASSERT_NEAR(pq, 0.9176, 1e-4);
  EarlyStopper stops(min_options().with_rule("pq:0.91:3"));
  const auto f = feed(stops, val, train);
  EXPECT_EQ(f.stop_epoch, 5);
  EXPECT_EQ(f.kind, "pq");
  EarlyStopper keeps(min_options().with_rule("pq:0.92:3"));
  EXPECT_FALSE(feed(keeps, val, train).stop_epoch);
  EarlyStopper tiny(min_options().with_rule("pq:0.001:3"));
  EXPECT_EQ(feed(tiny, val, train).stop_epoch, 5);  // never before a strip end
}

TEST(Rules, ProgressQuotientNeedsTheTrainingMetric) {
  EarlyStopper s(min_options().with_rule("pq:0.5"));
  EXPECT_THROW((void)s.on_epoch_end(0, {{"val_loss", 1.0}}), InputError);
  EarlyStopper u(min_options().with_rule("pq:0.5"));
  EXPECT_THROW((void)u.update(0, 1.0), InputError);
  EXPECT_THROW((void)vigil::replay(std::vector<double>{1.0, 2.0}, min_options().with_rule("pq:1")),
               InputError);
}

TEST(Rules, UpSuccessiveStrips) {
  // Strips of 2: ends at epochs 1 (0.9), 3 (0.7, better), 5 (0.72, worse: 1), 7 (0.8, worse: 2).
  const std::vector<double> val{1.0, 0.9, 0.8, 0.7, 0.75, 0.72, 0.78, 0.8};
  EarlyStopper up2(min_options().with_rule("up:2:2"));
  const auto f = feed(up2, val);
  EXPECT_EQ(f.stop_epoch, 7);
  EXPECT_EQ(f.kind, "up");
  EarlyStopper up1(min_options().with_rule("up:1:2"));
  EXPECT_EQ(feed(up1, val).stop_epoch, 5);
  EarlyStopper up3(min_options().with_rule("up:3:2"));
  EXPECT_FALSE(feed(up3, val).stop_epoch);
  // A better strip end resets the run: worse, better, worse never makes two in a row.
  EarlyStopper reset(min_options().with_rule("up:2:1"));
  EXPECT_FALSE(feed(reset, {1.0, 1.1, 1.0, 1.1, 1.0}).stop_epoch);
}

// ---- the dlib-style robust rule ----

// Uniform noise in [-amp, amp] from a fixed-seed generator (same numbers everywhere).
std::vector<double> noisy(double start, double slope, double amp, int n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    const double u = static_cast<double>(gen()) / static_cast<double>(std::mt19937::max());
    out.push_back(start + slope * i + amp * (2 * u - 1));
  }
  return out;
}

TEST(Rules, CountStepsWithoutDecrease) {
  std::vector<double> down, up, flat(8, 1.0);
  for (int i = 0; i < 8; ++i) {
    down.push_back(10.0 - i);
    up.push_back(static_cast<double>(i));
  }
  EXPECT_EQ(vigil::count_steps_without_decrease(down), 0u);
  EXPECT_EQ(vigil::count_steps_without_decrease(up), 8u);
  EXPECT_EQ(vigil::count_steps_without_decrease(flat), 8u);
  // Falling for a long time, then rising for the last 4 steps.
  std::vector<double> turn{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5};
  const auto c = vigil::count_steps_without_decrease(turn);
  EXPECT_GE(c, 5u);
  EXPECT_LT(c, turn.size());
  // One huge spike as the newest value makes the plain count see stagnation; the robust
  // count discards the top 10% of values and sees the clean decrease.
  std::vector<double> spiky;
  for (int i = 0; i < 19; ++i) spiky.push_back(10.0 - 0.5 * i);
  spiky.push_back(1000);
  EXPECT_GE(vigil::count_steps_without_decrease(spiky), 3u);
  EXPECT_EQ(vigil::count_steps_without_decrease(spiky, 0.51, 0.10), 0u);
}

TEST(Rules, RobustDoesNotStopANoisyDecrease) {
  for (std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    SCOPED_TRACE(seed);
    EarlyStopper s(min_options().with_rule("robust:10"));
    EXPECT_FALSE(feed(s, noisy(2.0, -0.01, 0.02, 120, seed)).stop_epoch);
  }
}

TEST(Rules, RobustStopsANoisyPlateau) {
  for (std::uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    SCOPED_TRACE(seed);
    EarlyStopper s(min_options().with_rule("robust:10"));
    const auto f = feed(s, noisy(0.5, 0.0, 0.02, 60, seed));
    ASSERT_TRUE(f.stop_epoch);
    EXPECT_GE(*f.stop_epoch, 9);  // needs a full window of 10 values
    EXPECT_EQ(f.kind, "robust");
  }
}

TEST(Rules, RobustStopsAfterTheDecreaseEnds) {
  auto series = noisy(2.0, -0.02, 0.01, 40, 7);
  const auto tail = noisy(series.back(), 0.0, 0.01, 40, 8);
  series.insert(series.end(), tail.begin(), tail.end());
  EarlyStopper s(min_options().with_rule("robust:10"));
  const auto f = feed(s, series);
  ASSERT_TRUE(f.stop_epoch);
  EXPECT_GE(*f.stop_epoch, 40);
}

// ---- composition and limits ----

TEST(Rules, AnyFiresOnTheFirstRuleAndAllWaitsForEvery) {
  const std::vector<double> val{1.0, 0.8, 0.82, 0.85, 0.9, 0.95};
  // patience 3 fires at epoch 4, gl:5 at epoch 3 (6.25%).
  EarlyStopper any(min_options().with_patience(3).with_rule("patience,gl:5"));
  const auto a = feed(any, val);
  EXPECT_EQ(a.stop_epoch, 3);
  EXPECT_EQ(a.kind, "gl");
  EarlyStopper all(
      min_options().with_patience(3).with_rule("patience,gl:5").with_combine(Combine::All));
  const auto b = feed(all, val);
  EXPECT_EQ(b.stop_epoch, 4);
  EXPECT_EQ(b.kind, "patience");
  EXPECT_NE(b.reason.find("generalization loss"), std::string::npos) << b.reason;
}

TEST(Rules, ThresholdsAndFiniteCheckApplyWhateverTheRule) {
  EarlyStopper nan(min_options().with_rule("gl:50"));
  EXPECT_EQ(feed(nan, {1.0, kNaN}).kind, "non_finite");
  EarlyStopper thr(min_options().with_rule("up:5").with_stopping_threshold(0.5));
  EXPECT_EQ(feed(thr, {1.0, 0.4}).kind, "stopping_threshold");
}

TEST(Limits, MaxEpochs) {
  EarlyStopper s(min_options().with_patience(100).with_max_epochs(3));
  const auto f = feed(s, {5, 4, 3, 2, 1});
  EXPECT_EQ(f.stop_epoch, 2);
  EXPECT_EQ(f.kind, "max_epochs");
  EXPECT_EQ(s.best_epoch(), 2);
}

TEST(Limits, TimeBudgetUsesTheElapsedTimeGiven) {
  EarlyStopper s(
      min_options().with_patience(100).with_time_budget_seconds(25).with_start_from_epoch(10));
  EXPECT_FALSE(s.update(0, 1.0, 10.0).stop);
  EXPECT_FALSE(s.update(1, 0.9, 20.0).stop);
  const auto d = s.update(2, 0.8, 30.0);  // still in warm-up: the budget applies anyway
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason_kind, "time_budget");
  EXPECT_NE(d.reason.find("25"), std::string::npos) << d.reason;
}

TEST(Limits, ThresholdBeatsLimitOnTheSameEpoch) {
  EarlyStopper s(min_options().with_max_epochs(1).with_divergence_threshold(2.0));
  EXPECT_EQ(s.update(0, 3.0).reason_kind, "divergence_threshold");
}

// ---- options ----

TEST(Options, RejectBadValues) {
  EXPECT_THROW(EarlyStopper(min_options().with_patience(-1)), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_start_from_epoch(-2)), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_mode("sideways")), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_max_epochs(0)), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_time_budget_seconds(-5)), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_min_delta(kNaN)), OptionError);
  EXPECT_THROW(EarlyStopper(min_options().with_rules({})), OptionError);
  EXPECT_THROW(min_options().with_rule("sometimes"), OptionError);
}

TEST(Options, JsonRoundTripAndErrors) {
  auto o = min_options()
               .with_patience(4)
               .with_min_delta(0.01)
               .with_baseline(0.3)
               .with_stopping_threshold(-INFINITY)
               .with_rule("patience,robust:12:0.6")
               .with_combine(Combine::All)
               .with_max_epochs(50)
               .with_time_budget_seconds(3600);
  const auto j = o.to_json();
  EXPECT_EQ(j.at("rule"), "patience,robust:12:0.6");
  EXPECT_EQ(j.at("stopping_threshold"), "-inf");
  EXPECT_TRUE(j.at("divergence_threshold").is_null());
  const auto back = EarlyStoppingOptions::from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.to_json(), j);

  const auto over = EarlyStoppingOptions::from_json({{"patience", 2}, {"time_budget", 10}}, o);
  EXPECT_EQ(over.patience, 2);
  EXPECT_EQ(over.min_delta, 0.01);
  EXPECT_EQ(over.time_budget_seconds, 10.0);

  EXPECT_THROW((void)EarlyStoppingOptions::from_json({{"patiense", 2}}), OptionError);
  EXPECT_THROW((void)EarlyStoppingOptions::from_json({{"patience", "two"}}), OptionError);
  EXPECT_THROW((void)EarlyStoppingOptions::from_json({{"patience", 2.5}}), OptionError);
  EXPECT_THROW((void)EarlyStoppingOptions::from_json({{"check_finite", 1}}), OptionError);
  EXPECT_THROW((void)EarlyStoppingOptions::from_json({{"combine", "some"}}), OptionError);
  EXPECT_THROW((void)EarlyStoppingOptions::from_json(nlohmann::json::array()), OptionError);
}

TEST(Options, RuleSpecs) {
  const auto rules = vigil::parse_rules(" patience, gl:5,pq:0.5:4 ,up:3,robust:12:0.6");
  ASSERT_EQ(rules.size(), 5u);
  EXPECT_EQ(rules[1]->name(), "gl");
  EXPECT_EQ(rules[1]->spec(), "gl:5");
  EXPECT_EQ(rules[2]->spec(), "pq:0.5:4");
  EXPECT_TRUE(rules[2]->needs_train_metric());
  EXPECT_FALSE(rules[3]->needs_train_metric());
  EXPECT_EQ(rules[3]->spec(), "up:3:5");
  EXPECT_EQ(rules[4]->spec(), "robust:12:0.6");
  EXPECT_EQ(vigil::rules_to_string(rules), "patience,gl:5,pq:0.5:4,up:3:5,robust:12:0.6");
  EXPECT_EQ(vigil::parse_rules("robust:10")[0]->spec(), "robust:10:0.51");
  EXPECT_EQ(vigil::rules::pq(0.5)->spec(), "pq:0.5:5");
  EXPECT_THROW((void)vigil::rules::up(0), OptionError);
  for (const char* bad :
       {"", "gl", "gl:x", "gl:-1", "gl:5:1", "pq:1:0", "up:0", "up:2:x", "robust:2",
        "robust:10:0.5", "robust:10:1", "patience:3", "gl:5,", "often"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW((void)vigil::parse_rules(bad), OptionError);
  }
}

// ---- resuming ----

struct ResumeCase {
  const char* name;
  EarlyStoppingOptions options;
};

TEST(State, ResumedRunStopsWhereAnUninterruptedOneWould) {
  const auto val = noisy(1.0, -0.004, 0.03, 70, 11);
  auto train = noisy(0.9, -0.006, 0.005, 70, 12);
  std::vector<ResumeCase> cases{
      {"patience", min_options().with_patience(5)},
      {"baseline+delta", min_options().with_patience(6).with_baseline(0.85).with_min_delta(0.005)},
      {"warm-up", min_options().with_patience(4).with_start_from_epoch(7)},
      {"gl", min_options().with_rule("gl:8")},
      {"pq", min_options().with_rule("pq:2:4")},
      {"up", min_options().with_rule("up:3:3")},
      {"robust", min_options().with_rule("robust:12")},
      {"all", min_options()
                  .with_patience(3)
                  .with_rule("patience,up:2:2,robust:8")
                  .with_combine(Combine::All)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EarlyStopper whole(c.options);
    const auto expected = feed(whole, val, train);
    for (std::size_t cut = 0; cut <= val.size(); cut += 3) {
      SCOPED_TRACE("cut at " + std::to_string(cut));
      const std::vector<double> head_v(val.begin(), val.begin() + cut);
      const std::vector<double> head_t(train.begin(), train.begin() + cut);
      EarlyStopper first(c.options);
      auto got = feed(first, head_v, head_t);
      if (!got.stop_epoch) {
        const std::string saved = first.state().dump();
        EarlyStopper second(c.options);
        second.load_state(nlohmann::json::parse(saved));
        got = feed(second, std::vector<double>(val.begin() + cut, val.end()),
                   std::vector<double>(train.begin() + cut, train.end()), static_cast<long>(cut));
        EXPECT_EQ(second.best_epoch(), whole.best_epoch());
        EXPECT_EQ(second.best_value(), whole.best_value());
        EXPECT_EQ(second.state(), whole.state());
      }
      EXPECT_EQ(got.stop_epoch, expected.stop_epoch);
      EXPECT_EQ(got.kind, expected.kind);
      EXPECT_EQ(got.reason, expected.reason);
    }
  }
}

TEST(State, SurvivesNonFiniteValuesAndRejectsMismatches) {
  EarlyStopper s(min_options().with_check_finite(false).with_patience(10));
  feed(s, {kNaN, 1.0, INFINITY});
  const auto j = nlohmann::json::parse(s.state().dump());
  EarlyStopper t(min_options().with_check_finite(false).with_patience(10));
  t.load_state(j);
  EXPECT_EQ(t.state(), s.state());
  EXPECT_EQ(t.wait(), 1);

  EarlyStopper other(min_options().with_monitor("val_mse"));
  EXPECT_THROW(other.load_state(j), InputError);
  EarlyStopper other_rule(min_options().with_rule("gl:5"));
  EXPECT_THROW(other_rule.load_state(j), InputError);
  auto broken = j;
  broken.erase("wait");
  EXPECT_THROW(t.load_state(broken), InputError);
  EXPECT_EQ(t.state(), s.state());  // a failed load changes nothing
  EXPECT_THROW(t.load_state(nlohmann::json(3)), InputError);
}

TEST(State, ResetForgetsEverything) {
  EarlyStopper s(min_options().with_patience(1));
  feed(s, {1.0, 2.0, 3.0});
  EXPECT_TRUE(s.stopped());
  s.reset();
  EXPECT_FALSE(s.stopped());
  EXPECT_FALSE(s.best_epoch());
  EXPECT_EQ(s.state(), EarlyStopper(min_options().with_patience(1)).state());
}

// ---- replay ----

TEST(Replay, ResultJson) {
  const auto r =
      vigil::replay(std::vector<double>{0.9, 0.8, 0.85, 0.84}, min_options().with_patience(2));
  const auto j = r.to_json();
  EXPECT_EQ(j.at("stopped"), true);
  EXPECT_EQ(j.at("stop_epoch"), 3);
  EXPECT_EQ(j.at("best_epoch"), 1);
  EXPECT_EQ(j.at("best_value"), 0.8);
  EXPECT_EQ(j.at("reason_kind"), "patience");
  const auto none = vigil::replay(std::vector<double>{}, min_options()).to_json();
  EXPECT_EQ(none.at("stopped"), false);
  EXPECT_TRUE(none.at("stop_epoch").is_null());
  EXPECT_TRUE(none.at("best_value").is_null());
  EXPECT_TRUE(none.at("reason_kind").is_null());
  EXPECT_FALSE(none.at("reason").get<std::string>().empty());
  const auto inf =
      vigil::replay(std::vector<double>{INFINITY}, min_options().with_check_finite(false))
          .to_json();
  EXPECT_TRUE(inf.at("best_value").is_null());  // inf is not an improvement on inf
}

TEST(Replay, LogsWithEpochColumnAndTime) {
  std::vector<vigil::Logs> rows{{{"val_loss", 1.0}}, {{"val_loss", 0.9}}, {{"val_loss", 0.8}}};
  const std::vector<long> epochs{5, 6, 7};
  const std::vector<double> elapsed{10, 20, 30};
  const auto r = vigil::replay(rows, min_options().with_patience(5).with_time_budget_seconds(15),
                               epochs, elapsed);
  EXPECT_EQ(r.stop_epoch, 6);
  EXPECT_EQ(r.reason_kind, "time_budget");
  EXPECT_THROW((void)vigil::replay(rows, min_options(), std::vector<long>{1}), InputError);
}

}  // namespace
