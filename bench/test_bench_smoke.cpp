// Keeps vigil-bench from rotting: a tiny run (4 MiB state, one repeat, 1000 training examples,
// 200 replay cases) must finish and print one JSON object with every figure, ratio and target.
// No timing is asserted: the machine is noisy and speed targets live in BENCHMARKS.md.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using vigil::test::run_process;
using vigil::test::TempDir;

TEST(BenchSmoke, TinyRunPrintsEveryFigureAsJson) {
  TempDir dir;
  auto r = run_process({VIGIL_BENCH,
                        "--size-mib",
                        "4",
                        "--dtypes",
                        "f32",
                        "--repeats",
                        "1",
                        "--json",
                        "--no-cold",
                        "--train-limit",
                        "1000",
                        "--train-epochs",
                        "1",
                        "--train-repeats",
                        "1",
                        "--sharing-epochs",
                        "2",
                        "--replay-cases",
                        "200",
                        "--dir",
                        dir.path().string(),
                        "--out",
                        (dir / "report.md").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& f = j.at("figures");
  for (const char* k : {"save.4MiB.f32.dd",
                        "save.4MiB.f32.dd_direct",
                        "save.4MiB.f32.vigil",
                        "save.4MiB.f32.torch_save",
                        "save.4MiB.f32.python_save",
                        "save.4MiB.f32.python_save_nosync",
                        "load_warm.4MiB.f32.vigil_mmap_verify",
                        "load_warm.4MiB.f32.vigil_module_verify",
                        "load_warm.4MiB.f32.vigil_module_noverify",
                        "load_warm.4MiB.f32.vigil_checkpoint_open",
                        "load_warm.4MiB.f32.torch_load",
                        "load_warm.4MiB.f32.python_load",
                        "restore_warm.4MiB.f32.vigil",
                        "restore_warm.4MiB.f32.vigil_checkpoint",
                        "restore_warm.4MiB.f32.torch_load",
                        "restore_warm.4MiB.f32.python",
                        "restore_warm.4MiB.f32.python_process",
                        "async.4MiB.f32.block",
                        "async.4MiB.f32.memcpy",
                        "async.4MiB.f32.first_block",
                        "peak_extra.4MiB.f32.sync",
                        "peak_extra.4MiB.f32.async",
                        "sharing.4MiB.f32.full",
                        "sharing.4MiB.f32.frozen_noshare",
                        "sharing.4MiB.f32.frozen_shared",
                        "sharing.4MiB.f32.full_best",
                        "sharing.4MiB.f32.frozen_shared_best",
                        "sharing_run.sum_bytes",
                        "train.bare",
                        "train.vigil_sync",
                        "train.vigil_async",
                        "train.python",
                        "replay.seconds"}) {
    ASSERT_TRUE(f.contains(k)) << k;
    const auto& e = f.at(k);
    EXPECT_EQ(e.at("runs").size(), 1u) << k;
    EXPECT_GE(e.at("median").get<double>(), 0.0) << k;
    EXPECT_LE(e.at("min").get<double>(), e.at("max").get<double>()) << k;
  }
  // Durations are positive; the async save's snapshot shows up in its peak memory.
  EXPECT_GT(f.at("save.4MiB.f32.vigil").at("median").get<double>(), 0.0);
  EXPECT_GT(f.at("peak_extra.4MiB.f32.async").at("median").get<double>(),
            f.at("peak_extra.4MiB.f32.sync").at("median").get<double>());
  // Sharing writes less: the frozen shard is linked, not written, and a run's checkpoints share
  // their frozen files.
  auto median = [&](const char* k) { return f.at(k).at("median").get<double>(); };
  EXPECT_LT(median("sharing.4MiB.f32.frozen_shared_written"),
            0.5 * median("sharing.4MiB.f32.frozen_noshare_written"));
  EXPECT_LT(median("sharing_run.unique_bytes"), 0.6 * median("sharing_run.sum_bytes"));
  const auto& ratios = j.at("ratios");
  for (const char* k :
       {"save.4MiB.f32.vigil_throughput_vs_dd", "save.4MiB.f32.vigil_speedup_vs_torch_save",
        "load_warm.4MiB.f32.vigil_mmap_verify_speedup_vs_python_load",
        "restore_warm.4MiB.f32.vigil_speedup_vs_python",
        "restore_warm.4MiB.f32.vigil_speedup_vs_torch_load", "async.4MiB.f32.block_per_memcpy",
        "train.vigil_async_throughput_vs_bare", "replay.seconds_per_100k_cases"}) {
    ASSERT_TRUE(ratios.contains(k)) << k;
    EXPECT_GT(ratios.at(k).get<double>(), 0.0) << k;
  }
  ASSERT_TRUE(j.at("targets").is_array());
  bool saw_not_measured = false;
  for (const auto& t : j.at("targets")) {
    const auto status = t.at("status").get<std::string>();
    EXPECT_TRUE(status == "MET" || status == "MISSED" || status == "NOT MEASURED") << status;
    EXPECT_FALSE(t.at("reason").get<std::string>().empty());
    saw_not_measured = saw_not_measured || status == "NOT MEASURED";
  }
  // A 4 MiB run cannot judge the 1 GiB targets, and must say so.
  EXPECT_TRUE(saw_not_measured);
  // The Markdown report names the command and every section that ran.
  const auto md = vigil::test::read_file(dir / "report.md");
  for (const char* s :
       {"# vigil benchmarks", "## Machine", "## Targets", "## 1. Save", "## 2a. Load, warm",
        "## 2c. Restore into a model, fresh processes, warm", "## 3. Async", "## 4. Peak",
        "## 5. Training", "## 6. `vigil replay --batch`", "## 7. Writing only what changed",
        "### A frozen-backbone training run"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
}

TEST(BenchSmoke, RejectsAnUnknownOption) {
  auto r = run_process({VIGIL_BENCH, "--no-such-option"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--no-such-option"), std::string::npos) << r.err;
}

}  // namespace
