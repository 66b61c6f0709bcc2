// The benchmark suite of vigil-bench: its configuration and the parts the driver runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_util.hpp"

namespace vigil::bench {

/// What one run measures (set from the command line; see `vigil-bench --help`).
struct Config {
  /// (bytes, dtype) of every state; default 256 MiB, 1 GiB, 4 GiB in F32 and BF16.
  std::vector<std::pair<std::uint64_t, DType>> states;
  int repeats = 5;
  int repeats_large = 0;  ///< repeats of states of 4 GiB and more (0 = `repeats`)
  std::filesystem::path dir = "/var/tmp/vigil-bench";
  std::filesystem::path out;  ///< BENCHMARKS.md to write; empty = none
  bool json = false;
  bool quick = false;
  bool cold = true;
  bool train = true;
  bool replay = true;
  bool restore = true;  ///< the restore-into-a-model benchmark (fresh processes)
  bool storage = true;  ///< save, load, async and peak-memory benchmarks
  bool sharing = true;  ///< saves of a frozen backbone with and without sharing, and a run
  int train_epochs = 3;
  int sharing_epochs = 5;  ///< epochs of the frozen-backbone run
  int train_repeats = 5;
  std::int64_t train_limit = 0;  ///< --limit-train of every training contender (0 = all)
  int threads = 1;
  int replay_cases = 100000;
  int replay_repeats = 5;
  std::string python = "/usr/bin/python3";
  std::string vigil;                 ///< the vigil CLI
  std::filesystem::path source_dir;  ///< bench/ of the source tree (the Python scripts)
  std::string self;                  ///< this executable (for its child modes)
  std::string command_line;
};

/// What the run found out besides the timings (cold cache possible, peak memory, ...).
struct Facts {
  bool cold_cache = false;
  bool peak_reset = false;
  nlohmann::json extra = nlohmann::json::object();
  std::vector<std::string> notes;
};

/// "f32" / "bf16".
std::string dtype_label(DType dtype);
/// "1GiB.f32".
std::string state_label(std::uint64_t bytes, DType dtype);

/// Save, load (warm, cold), async and peak-memory figures of one state, `cfg.repeats` times,
/// contenders interleaved.
void bench_storage(const Config& cfg, std::uint64_t bytes, DType dtype, Results& results,
                   Facts& facts);
/// Restore into an existing model, each contender in a fresh process, warm and cold.
void bench_restore(const Config& cfg, std::uint64_t bytes, DType dtype, Results& results,
                   Facts& facts);
/// Saves of the state with 90% of it frozen, with and without sharing unchanged files, against a
/// full save; non-best and new-best saves apart.
void bench_sharing(const Config& cfg, std::uint64_t bytes, DType dtype, Results& results,
                   Facts& facts);
/// The disk use of a frozen-backbone `vigil train` run keeping every checkpoint.
void bench_sharing_run(const Config& cfg, Results& results, Facts& facts);
/// `vigil train` (sync and async checkpoints) against the bare libtorch loop and Python.
void bench_training(const Config& cfg, Results& results, Facts& facts);
/// `vigil replay --batch` over cfg.replay_cases cases.
void bench_replay(const Config& cfg, Results& results, Facts& facts);

/// Child modes of the executable.
int main_train_bare(int argc, char** argv);
int main_peak_rss(int argc, char** argv);
int main_restore_child(int argc, char** argv);

/// The report: every figure, ratio and target as one JSON object, and BENCHMARKS.md.
nlohmann::json report_json(const Config& cfg, const Results& results, const Facts& facts);
std::string report_markdown(const Config& cfg, const nlohmann::json& report);

}  // namespace vigil::bench
