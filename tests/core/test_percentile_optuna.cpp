// The median and percentile rules agree with Optuna's own PercentilePruner on random cases:
// Debian's python3-optuna builds a study of completed reference trials, reports a run step by
// step and says where it prunes; the same run replayed through vigil must stop there. Skipped
// when /usr/bin/python3 cannot import optuna.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/replay.hpp"

using namespace vigil;
using vigil::test::TempDir;

namespace {

constexpr int kNoOptuna = 77;

// Prints one JSON line per case: the run, its reference runs, the pruner's settings and the
// step Optuna prunes at (null: never). Values come from a few levels so ties are common, with
// some NaN and infinities; reference runs have unequal lengths.
const char* kScript = R"PY(
import json, math, random, sys
try:
    import optuna
except ImportError:
    sys.exit(77)
optuna.logging.set_verbosity(optuna.logging.ERROR)
from optuna.trial import TrialState, create_trial

def spell(v):
    if math.isnan(v): return "nan"
    if math.isinf(v): return "inf" if v > 0 else "-inf"
    return v

def value(rng):
    r = rng.random()
    if r < 0.03: return float("nan")
    if r < 0.04: return float("inf")
    if r < 0.05: return float("-inf")
    return rng.choice([0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9, 1.0]) + rng.randrange(3) * 0.125

rng = random.Random(int(sys.argv[1]))
for case in range(int(sys.argv[2])):
    direction = rng.choice(["minimize", "maximize"])
    median = rng.random() < 0.4
    p = 50.0 if median else rng.choice([0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 100.0])
    startup, warmup = rng.randrange(0, 6), rng.randrange(0, 5)
    interval, min_trials = rng.randrange(1, 5), rng.randrange(1, 5)
    pruner = optuna.pruners.PercentilePruner(p, n_startup_trials=startup, n_warmup_steps=warmup,
                                             interval_steps=interval, n_min_trials=min_trials)
    study = optuna.create_study(direction=direction, pruner=pruner)
    reference = []
    for _ in range(rng.randrange(0, 13)):
        values = [value(rng) for _ in range(rng.randrange(1, 13))]
        reference.append(values)
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.0,
                                     intermediate_values=dict(enumerate(values))))
    run = [value(rng) for _ in range(rng.randrange(1, 13))]
    trial = study.ask()
    pruned = None
    for step, v in enumerate(run):
        trial.report(v, step)
        if trial.should_prune():
            pruned = step
            break
    options = {"rule": "median" if median else "percentile", "mode":
               "min" if direction == "minimize" else "max", "check_finite": False,
               "n_startup_trials": startup, "n_warmup_steps": warmup,
               "interval_steps": interval, "n_min_trials": min_trials}
    if not median: options["percentile"] = p
    print(json.dumps({"values": [spell(v) for v in run],
                      "reference": [[spell(v) for v in r] for r in reference],
                      "options": options, "pruned": pruned}))
)PY";

std::vector<double> numbers(const nlohmann::json& a) {
  std::vector<double> out;
  for (const auto& v : a) out.push_back(number_from_json(v));
  return out;
}

}  // namespace

TEST(PercentileOptuna, AgreesWithOptunasPercentilePrunerOnRandomCases) {
  TempDir dir;
  vigil::test::write_file(dir / "cases.py", kScript);
  const int cases = 1500;
  auto r = vigil::test::run_process(
      {vigil::test::kPython, (dir / "cases.py").string(), "20261202", std::to_string(cases)});
  if (r.exit_code == kNoOptuna) GTEST_SKIP() << vigil::test::kPython << " cannot import optuna";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int seen = 0, pruned = 0;
  while (std::getline(lines, line)) {
    const auto c = nlohmann::json::parse(line);
    auto o = EarlyStoppingOptions::from_json(c.at("options"));
    for (const auto& run : c.at("reference")) o.reference.push_back(numbers(run));
    const ReplayResult got = replay(numbers(c.at("values")), o);
    const auto& want = c.at("pruned");
    if (want.is_null()) {
      EXPECT_FALSE(got.stopped) << line << "\n" << got.reason;
    } else {
      ++pruned;
      EXPECT_TRUE(got.stopped) << line;
      if (got.stopped) {
        EXPECT_EQ(*got.stop_epoch, want.get<long>()) << line << "\n" << got.reason;
      }
    }
    ++seen;
  }
  EXPECT_EQ(seen, cases);
  // The cases must exercise both outcomes in earnest.
  EXPECT_GT(pruned, cases / 10);
  EXPECT_LT(pruned, cases * 4 / 5);
}
