// Retention policies on hand-made checkpoint lists, without a disk: each built-in alone, their
// union as CheckpointManagerOptions describes it, and a randomized comparison with a direct
// reading of the documented rules.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include <fmt/core.h>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/retention.hpp"

namespace vigil {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Records = std::vector<CheckpointRecord>;
using Flags = std::vector<bool>;

// One record per value (none = unmonitored), epochs 0, 1, 2, ..., sequences 1, 2, 3, ...; the
// last one is the newest.
Records records_of(const std::vector<std::optional<double>>& values) {
  Records out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    CheckpointRecord r;
    r.name = fmt::format("c{}", i);
    r.sequence = i + 1;
    r.epoch = static_cast<std::int64_t>(i);
    r.step = static_cast<std::int64_t>(10 * (i + 1));
    r.value = values[i];
    r.is_newest = i + 1 == values.size();
    out.push_back(r);
  }
  return out;
}

TEST(Retention, TopKKeepsTheKBestInEitherMode) {
  auto rs = records_of({0.5, 0.4, 0.6, 0.3, 0.45});
  EXPECT_EQ(KeepTopK(2, Mode::Min).keep(rs), (Flags{false, true, false, true, false}));
  EXPECT_EQ(KeepTopK(2, Mode::Max).keep(rs), (Flags{true, false, true, false, false}));
  EXPECT_EQ(KeepTopK(0, Mode::Min).keep(rs), Flags(5, false));
  EXPECT_EQ(KeepTopK(-1, Mode::Min).keep(rs), Flags(5, true));
  EXPECT_EQ(KeepTopK(99, Mode::Min).keep(rs), Flags(5, true));
}

TEST(Retention, TopKTiesKeepTheNewer) {
  auto rs = records_of({0.5, 0.5, 0.5});
  EXPECT_EQ(KeepTopK(1, Mode::Min).keep(rs), (Flags{false, false, true}));
  EXPECT_EQ(KeepTopK(2, Mode::Max).keep(rs), (Flags{false, true, true}));
  // The sequence decides, not the position in the list.
  std::swap(rs[0].sequence, rs[2].sequence);
  EXPECT_EQ(KeepTopK(1, Mode::Min).keep(rs), (Flags{true, false, false}));
}

TEST(Retention, TopKRanksNaNLastAndNeverRanksUnmonitored) {
  auto rs = records_of({kNaN, 0.7, std::nullopt, kNaN, 0.9});
  EXPECT_EQ(KeepTopK(1, Mode::Min).keep(rs), (Flags{false, true, false, false, false}));
  EXPECT_EQ(KeepTopK(1, Mode::Max).keep(rs), (Flags{false, false, false, false, true}));
  // After the numbers, the newer NaN comes first.
  EXPECT_EQ(KeepTopK(3, Mode::Min).keep(rs), (Flags{false, true, false, true, true}));
  // -1 keeps every ranked record, still not the unmonitored one.
  EXPECT_EQ(KeepTopK(-1, Mode::Min).keep(rs), (Flags{true, true, false, true, true}));
  // Infinities are ordinary values.
  auto inf = records_of({std::numeric_limits<double>::infinity(), 1.0, kNaN});
  EXPECT_EQ(KeepTopK(1, Mode::Max).keep(inf), (Flags{true, false, false}));
  EXPECT_EQ(KeepTopK(2, Mode::Min).keep(inf), (Flags{true, true, false}));
}

TEST(Retention, KeepLastNCountsFromTheNewest) {
  auto rs = records_of({0.1, std::nullopt, 0.3, 0.4});
  EXPECT_EQ(KeepLastN(2).keep(rs), (Flags{false, false, true, true}));
  EXPECT_EQ(KeepLastN(0).keep(rs), Flags(4, false));
  EXPECT_EQ(KeepLastN(-1).keep(rs), Flags(4, true));
  EXPECT_EQ(KeepLastN(9).keep(rs), Flags(4, true));
  EXPECT_TRUE(KeepLastN(3).keep({}).empty());
}

TEST(Retention, KeepEveryNEpochsKeepsEpochEndsOnly) {
  auto rs = records_of({1, 2, 3, 4, 5, 6});
  rs[5].epoch = 2;  // a mid-epoch save in epoch 2
  rs[5].epoch_end = false;
  EXPECT_EQ(KeepEveryNEpochs(3).keep(rs), (Flags{false, false, true, false, false, false}));
  EXPECT_EQ(KeepEveryNEpochs(1).keep(rs), (Flags{true, true, true, true, true, false}));
  EXPECT_EQ(KeepEveryNEpochs(0).keep(rs), Flags(6, false));
}

TEST(Retention, KeepBestAndKeepNewestFollowTheMarks) {
  auto rs = records_of({0.3, 0.2, 0.4});
  rs[1].is_best = true;
  EXPECT_EQ(KeepBest{}.keep(rs), (Flags{false, true, false}));
  EXPECT_EQ(KeepNewest{}.keep(rs), (Flags{false, false, true}));
  EXPECT_EQ(KeepBest{}.keep(records_of({0.3})), Flags{false});
}

TEST(Retention, AnyOfIsTheUnion) {
  auto rs = records_of({0.5, 0.4, 0.6, 0.3, 0.45, 0.7});
  AnyOf u({std::make_shared<KeepTopK>(1, Mode::Min), std::make_shared<KeepLastN>(2), nullptr});
  EXPECT_EQ(u.keep(rs), (Flags{false, false, false, true, true, true}));
  EXPECT_EQ(AnyOf(std::vector<std::shared_ptr<const RetentionPolicy>>{}).keep(rs), Flags(6, false));
}

// A policy of the caller's own: keeps checkpoints whose step is a multiple of 40.
struct KeepRoundSteps final : RetentionPolicy {
  std::vector<bool> keep(std::span<const CheckpointRecord> records) const override {
    std::vector<bool> out;
    for (const auto& r : records) out.push_back(r.step % 40 == 0);
    return out;
  }
};

struct WrongSize final : RetentionPolicy {
  std::vector<bool> keep(std::span<const CheckpointRecord>) const override { return {true}; }
};

TEST(Retention, PlanFollowsTheOptions) {
  auto rs = records_of({0.5, 0.4, 0.6, 0.3, 0.45, 0.7});
  rs[3].is_best = true;
  using O = CheckpointManagerOptions;
  // Neither save_top_k nor keep_last: everything is kept, keep_every_n_epochs alone changes
  // nothing.
  auto plan = retention_plan(O{}.with_keep_every_n_epochs(2), rs);
  EXPECT_EQ(plan.keep.size(), 6u);
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_EQ(retention_policy(O{}), nullptr);

  plan = retention_plan(O{}.with_keep_last(1), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c3", "c5"}));  // best and newest
  EXPECT_EQ(plan.remove, (std::vector<std::string>{"c0", "c1", "c2", "c4"}));

  plan = retention_plan(O{}.with_save_top_k(2).with_keep_every_n_epochs(3), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c1", "c2", "c3", "c5"}));

  plan = retention_plan(O{}.with_save_top_k(-1).with_keep_last(0), rs);
  EXPECT_EQ(plan.keep.size(), 6u);

  // "auto" resolves from the monitor's name: accuracy is maximised.
  plan = retention_plan(O{}.with_monitor("val_accuracy").with_save_top_k(1), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c3", "c5"}));  // 0.7 is the newest too
  plan = retention_plan(O{}.with_monitor("val_accuracy").with_save_top_k(2), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c2", "c3", "c5"}));
}

TEST(Retention, ACustomPolicyJoinsTheUnion) {
  auto rs = records_of({0.5, 0.4, 0.6, 0.3, 0.45, 0.7});  // steps 10 ... 60
  using O = CheckpointManagerOptions;
  auto mine = std::make_shared<KeepRoundSteps>();
  // Alone it turns rotation on (the newest is kept too).
  auto plan = retention_plan(O{}.with_retention(mine), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c3", "c5"}));
  plan = retention_plan(O{}.with_retention(mine).with_keep_last(2), rs);
  EXPECT_EQ(plan.keep, (std::vector<std::string>{"c3", "c4", "c5"}));
  // An answer of the wrong length removes nothing.
  EXPECT_THROW((void)retention_plan(O{}.with_retention(std::make_shared<WrongSize>()), rs), Error);
}

// ---- A direct reading of the README's rules, compared with the policies on random lists ----

struct RandomCase {
  Records records;
  CheckpointManagerOptions options;
  Mode mode = Mode::Min;
};

bool better(Mode mode, double a, double b) {
  return mode == Mode::Min ? a < b : a > b;
}

// Record j outranks record i for top-k: a number beats NaN, a better number beats a worse one,
// and between equal values (or two NaN) the newer wins.
bool outranks(const CheckpointRecord& j, const CheckpointRecord& i, Mode mode) {
  const double vj = *j.value, vi = *i.value;
  if (std::isnan(vj) != std::isnan(vi)) return std::isnan(vi);
  if (!std::isnan(vj) && vj != vi) return better(mode, vj, vi);
  return j.sequence > i.sequence;
}

std::vector<std::string> reference_keep(const RandomCase& c) {
  const auto& o = c.options;
  const auto& rs = c.records;
  std::vector<std::string> out;
  for (const auto& r : rs) {
    bool keep = !o.save_top_k && !o.keep_last;  // no rotation: everything stays
    keep = keep || r.is_best || r.is_newest;
    if (o.keep_last) {
      std::size_t newer = 0;
      for (const auto& other : rs) newer += other.sequence > r.sequence;
      keep = keep || *o.keep_last == -1 || newer < static_cast<std::size_t>(*o.keep_last);
    }
    if (o.save_top_k && r.value) {
      std::size_t ahead = 0;
      for (const auto& other : rs) ahead += other.value && outranks(other, r, c.mode);
      keep = keep || *o.save_top_k == -1 || ahead < static_cast<std::size_t>(*o.save_top_k);
    }
    if (o.keep_every_n_epochs > 0 && r.epoch_end)
      keep = keep || (r.epoch + 1) % o.keep_every_n_epochs == 0;
    if (keep) out.push_back(r.name);
  }
  return out;
}

RandomCase random_case(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  RandomCase c;
  c.mode = pick(0, 1) ? Mode::Max : Mode::Min;
  c.options.with_mode(c.mode == Mode::Max ? "max" : "min");
  if (pick(0, 3)) c.options.with_save_top_k(pick(-1, 4));
  if (pick(0, 3)) c.options.with_keep_last(pick(-1, 4));
  c.options.with_keep_every_n_epochs(pick(0, 3));
  // Few distinct values so that ties are common.
  const std::vector<std::optional<double>> values{0.1, 0.2, 0.3, kNaN, std::nullopt};
  const int n = pick(0, 9);
  std::uint64_t sequence = 0;
  std::int64_t epoch = 0;
  std::vector<std::size_t> monitored;
  for (int i = 0; i < n; ++i) {
    CheckpointRecord r;
    r.name = fmt::format("c{}", i);
    sequence += static_cast<std::uint64_t>(pick(1, 3));
    epoch += pick(0, 1);
    r.sequence = sequence;
    r.epoch = epoch;
    r.step = 10 * i;
    r.epoch_end = pick(0, 3) != 0;
    r.value = values[static_cast<std::size_t>(pick(0, 4))];
    if (r.value) monitored.push_back(c.records.size());
    c.records.push_back(r);
  }
  if (!c.records.empty()) c.records.back().is_newest = true;
  if (!monitored.empty() && pick(0, 4))
    c.records[monitored[static_cast<std::size_t>(pick(0, static_cast<int>(monitored.size()) - 1))]]
        .is_best = true;
  return c;
}

TEST(Retention, MatchesTheDocumentedRulesOnRandomLists) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 5000; ++trial) {
    const auto c = random_case(rng);
    const auto plan = retention_plan(c.options, c.records);
    ASSERT_EQ(plan.keep, reference_keep(c))
        << "trial " << trial << ", options " << c.options.save_top_k.value_or(-9) << "/"
        << c.options.keep_last.value_or(-9) << "/" << c.options.keep_every_n_epochs;
    ASSERT_EQ(plan.keep.size() + plan.remove.size(), c.records.size());
  }
}

}  // namespace
}  // namespace vigil
