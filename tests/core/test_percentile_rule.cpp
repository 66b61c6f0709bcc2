// The median and percentile rules against hand-computed cases of Optuna's PercentilePruner
// semantics: start-up runs, warm-up, intervals, the minimum number of reference values, NaN,
// max mode; numpy's nanpercentile; their state across a resume.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "vigil/early_stopping.hpp"
#include "vigil/replay.hpp"
#include "vigil/stopping_rules.hpp"

using namespace vigil;

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// Five reference runs whose value at step i is 1.25 - 0.125 * i + 0.125 * (k - 2), exact in
// binary: the median at step i is 1.25 - 0.125 * i (1.25, 1.125, 1.0, 0.875, 0.75).
std::vector<std::vector<double>> five_runs() {
  std::vector<std::vector<double>> runs;
  for (int k = 0; k < 5; ++k) {
    std::vector<double> run;
    for (int i = 0; i < 5; ++i) run.push_back(1.25 - 0.125 * i + 0.125 * (k - 2));
    runs.push_back(run);
  }
  return runs;
}

EarlyStoppingOptions median_options() {
  EarlyStoppingOptions o;
  o.with_rule("median").with_mode(ModeSetting::Min).with_check_finite(false);
  o.reference = five_runs();
  return o;
}

// The epoch after which the replay stops, or -1.
long stop_of(const std::vector<double>& values, const EarlyStoppingOptions& o) {
  const ReplayResult r = replay(values, o);
  return r.stopped ? *r.stop_epoch : -1;
}

}  // namespace

TEST(NanPercentile, MatchesNumpysLinearInterpolation) {
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(nan_percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(nan_percentile(v, 25), 1.75);
  EXPECT_DOUBLE_EQ(nan_percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(nan_percentile(v, 75), 3.25);
  EXPECT_DOUBLE_EQ(nan_percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(nan_percentile(std::vector<double>{kNan, 1, kNan, 2}, 50), 1.5);
  EXPECT_DOUBLE_EQ(nan_percentile(std::vector<double>{7}, 30), 7);
  EXPECT_TRUE(std::isnan(nan_percentile(std::vector<double>{kNan, kNan}, 50)));
  EXPECT_TRUE(std::isnan(nan_percentile(std::vector<double>{}, 50)));
}

TEST(PercentileRule, StopsWhenTheBestSoFarIsWorseThanTheMedianAtThatStep) {
  auto o = median_options();
  // Step 0: best 1.2 <= median 1.25; step 1: best 1.15 > 1.125.
  EXPECT_EQ(stop_of({1.2, 1.15, 1.0}, o), 1);
  // Always at the median, which is not worse: never.
  EXPECT_EQ(stop_of({1.25, 1.125, 1.0, 0.875, 0.75}, o), -1);
  // The best so far counts, not the last value: 1.0 at step 0 carries the run to step 2.
  EXPECT_EQ(stop_of({1.0, 5.0, 5.0, 5.0}, o), 3);
  const ReplayResult r = replay(std::vector<double>{1.2, 1.15}, o);
  EXPECT_EQ(r.reason_kind, "median");
  EXPECT_NE(r.reason.find("50th percentile of 5 earlier runs at epoch 1"), std::string::npos)
      << r.reason;
}

TEST(PercentileRule, FewerReferenceRunsThanTheStartUpCountNeverStop) {
  auto o = median_options();
  o.n_startup_trials = 6;
  EXPECT_EQ(stop_of({9, 9, 9}, o), -1);
  o.n_startup_trials = 5;
  EXPECT_EQ(stop_of({9, 9, 9}, o), 0);
  // No reference at all never stops, even with no start-up count.
  o.n_startup_trials = 0;
  o.reference.clear();
  EXPECT_EQ(stop_of({9, 9, 9}, o), -1);
}

TEST(PercentileRule, NoStopDuringWarmUpAndOnlyAtIntervalSteps) {
  auto o = median_options();
  o.n_warmup_steps = 2;
  // Worse than the median from step 0, judged first at step 2 (best 1.2 > 1.0).
  EXPECT_EQ(stop_of({1.3, 1.25, 1.2, 1.15}, o), 2);
  o.n_warmup_steps = 1;
  // Step 1: 1.05 <= 1.125; step 2: 1.05 > 1.0 stops with interval 1 ...
  EXPECT_EQ(stop_of({1.1, 1.05, 1.05, 1.05}, o), 2);
  // ... but with interval 2 only steps 1, 3, 5 are judged.
  o.interval_steps = 2;
  EXPECT_EQ(stop_of({1.1, 1.05, 1.05, 1.05}, o), 3);
}

TEST(PercentileRule, AnIntervalStepThatWasNotMonitoredIsJudgedAtTheNextOne) {
  // start_from_epoch leaves the first epochs out; with warm-up 0 and interval 3 the judged steps
  // are 0, 3, 6: the first step fed at or after one of them is judged, as in Optuna.
  auto o = median_options();
  o.interval_steps = 3;
  o.start_from_epoch = 3;
  EXPECT_EQ(stop_of({0, 0, 0, 2, 2}, o), 3);
  o.start_from_epoch = 4;  // step 3 was not fed, so step 4 is judged in its place
  EXPECT_EQ(stop_of({0, 0, 0, 0, 2, 2}, o), 4);
}

TEST(PercentileRule, TooFewReferenceValuesAtAStepGiveNoDecision) {
  auto o = median_options();
  for (std::size_t k = 2; k < 5; ++k) o.reference[k].resize(2);  // three runs end after step 1
  o.n_min_trials = 3;
  EXPECT_EQ(stop_of({1.2, 1.1, 9, 9}, o), -1);  // steps 2, 3 have 2 values
  o.n_min_trials = 2;
  EXPECT_EQ(stop_of({1.2, 1.1, 9, 9}, o), 2);  // median of {0.75, 0.875}
  // NaN reference values count as reported values but are left out of the percentile.
  o.reference = {{kNan}, {1.0}, {2.0}};
  o.n_startup_trials = 3;
  o.n_min_trials = 3;
  EXPECT_EQ(stop_of({1.6}, o), 0);  // median of {1, 2} is 1.5
  o.n_min_trials = 4;
  EXPECT_EQ(stop_of({1.6}, o), -1);
}

TEST(PercentileRule, ABestThatIsStillNanStopsAtOnce) {
  auto o = median_options();
  const ReplayResult r = replay(std::vector<double>{kNan, 0.0}, o);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(*r.stop_epoch, 0);
  EXPECT_EQ(r.reason_kind, "median");
  // A NaN after a number leaves the best as it was.
  EXPECT_EQ(stop_of({1.1, kNan, kNan}, o), 2);  // step 2: best 1.1 > 1.0
}

TEST(PercentileRule, MaxModeUsesTheHundredMinusPthPercentile) {
  EarlyStoppingOptions o;
  o.with_rule("percentile").with_percentile(25).with_monitor("val_accuracy");
  o.reference = {{0.5}, {0.6}, {0.7}, {0.8}, {0.9}};  // 75th percentile 0.8, median 0.7
  EXPECT_EQ(stop_of({0.75}, o), 0);
  EXPECT_EQ(stop_of({0.85}, o), -1);
  o.with_rule("median").percentile.reset();
  EXPECT_EQ(stop_of({0.75}, o), -1);
  EXPECT_EQ(stop_of({0.65}, o), 0);
}

TEST(PercentileRule, OptionsAreChecked) {
  EarlyStoppingOptions o;
  o.with_rule("percentile");
  EXPECT_THROW(o.validate(), OptionError);  // no percentile
  o.with_percentile(101);
  EXPECT_THROW(o.validate(), OptionError);
  o.with_percentile(10);
  EXPECT_NO_THROW(o.validate());
  o.with_rule("median");
  EXPECT_THROW(o.validate(), OptionError);  // median with P != 50
  o.with_percentile(50);
  EXPECT_NO_THROW(o.validate());
  EXPECT_THROW(EarlyStoppingOptions{}.with_interval_steps(0).validate(), OptionError);
  EXPECT_THROW(EarlyStoppingOptions{}.with_n_min_trials(0).validate(), OptionError);
  EXPECT_THROW(EarlyStoppingOptions{}.with_n_startup_trials(-1).validate(), OptionError);
  EXPECT_THROW(EarlyStoppingOptions{}.with_n_warmup_steps(-1).validate(), OptionError);
  EXPECT_THROW((void)parse_rules("median:3"), OptionError);
  // The counts travel through JSON; the reference does not.
  auto j = median_options().with_n_warmup_steps(4).to_json();
  EXPECT_EQ(j.at("n_warmup_steps"), 4);
  EXPECT_EQ(j.at("rule"), "median");
  EXPECT_FALSE(j.contains("reference"));
  EXPECT_EQ(EarlyStoppingOptions::from_json(j).n_warmup_steps, 4);
}

TEST(PercentileRule, ItsStateCarriesAResume) {
  const auto o = median_options();
  // The best so far, 1.0 from epoch 0, keeps the run at or below the median at steps 1 and 2;
  // a rule that forgot it would stop at step 2 (1.12 > 1.0).
  const std::vector<double> values = {1.0, 1.12, 1.12};
  EXPECT_EQ(stop_of(values, o), -1);
  EarlyStopper first(o);
  (void)first.update(0, values[0]);
  EarlyStopper resumed(o);
  resumed.load_state(first.state());
  EarlyStopper forgetful(o);
  long resumed_stop = -1, forgetful_stop = -1;
  for (long e = 1; e < 3; ++e) {
    if (resumed.update(e, values[e]).stop && resumed_stop < 0) resumed_stop = e;
    if (forgetful.update(e, values[e]).stop && forgetful_stop < 0) forgetful_stop = e;
  }
  EXPECT_EQ(resumed_stop, -1);
  EXPECT_EQ(forgetful_stop, 2);
}
