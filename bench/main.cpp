// vigil-bench: runs the benchmark suite of issue 5 (saves, loads, async saves, peak memory,
// training overhead, replay) with the contenders interleaved, and writes BENCHMARKS.md and/or
// one JSON object. `bench/run` is the documented entry point.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include <fmt/core.h>

#include "bench_paths.hpp"
#include "suite.hpp"

namespace {

using namespace vigil::bench;
namespace fs = std::filesystem;

constexpr const char* kUsage = R"(usage: vigil-bench [options]     (bench/run is the wrapper to use)

Runs the vigil benchmark suite and writes a report.
  --quick              smallest state only, one repeat, short training (a smoke check)
  --json               print every figure, ratio and target as one JSON object on stdout
  --out FILE           write the Markdown report there (default: BENCHMARKS.md, or
                       DIR/BENCHMARKS-quick.md with --quick; "-" = none)
  --sizes LIST         state sizes, e.g. 256M,1G,4G (default)
  --size-mib N         one state of N MiB (the smoke test uses 4)
  --dtypes LIST        f32,bf16 (default both)
  --states LIST        explicit SIZE:DTYPE pairs, e.g. 256M:f32,1G:bf16 (overrides the two above)
  --repeats N          repeats of every storage contender and of replay (default 5)
  --repeats-large N    repeats for states of 4 GiB and more (default: --repeats)
  --dir DIR            scratch folder on the disk under test (default /var/tmp/vigil-bench)
  --no-cold            skip cold-cache loads
  --no-train           skip the training benchmark
  --no-replay          skip the replay benchmark
  --no-restore         skip the restore-into-a-model benchmark (fresh processes)
  --no-storage         skip the save, load, async and peak-memory benchmarks
  --no-sharing         skip the saves of a frozen backbone and the frozen-backbone run
  --train-epochs N     epochs per training run (default 3)
  --sharing-epochs N   epochs of the frozen-backbone run (default 5; --train-limit applies)
  --train-repeats N    repeats of the training contenders (default 5)
  --train-limit N      use the first N training examples (default 0 = all 60000)
  --threads N          libtorch/PyTorch threads of every training contender (default 1)
  --replay-cases N     cases of the replay benchmark (default 100000)
  --python PATH        the interpreter with torch (default /usr/bin/python3)
)";

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto comma = s.find(',', pos);
    out.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

vigil::DType parse_dtype_label(const std::string& s) {
  if (s == "f32" || s == "F32") return vigil::DType::F32;
  if (s == "bf16" || s == "BF16") return vigil::DType::BF16;
  throw vigil::OptionError(fmt::format("unknown dtype '{}' (f32 or bf16)", s));
}

Config parse_args(int argc, char** argv) {
  Config c;
  c.vigil = VIGIL_BENCH_CLI;
  c.source_dir = VIGIL_BENCH_SOURCE_DIR;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  c.self = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : argv[0];
  std::vector<std::string> sizes = {"256M", "1G", "4G"}, dtypes = {"f32", "bf16"}, states;
  std::string out;
  bool out_set = false;
  int repeats = -1, train_repeats = -1, train_epochs = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    c.command_line += (i > 1 ? " " : "") + a;
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw vigil::OptionError(a + " needs a value");
      c.command_line += std::string(" ") + argv[i + 1];
      return argv[++i];
    };
    if (a == "--quick")
      c.quick = true;
    else if (a == "--json")
      c.json = true;
    else if (a == "--out")
      out = value(), out_set = true;
    else if (a == "--sizes")
      sizes = split_list(value());
    else if (a == "--size-mib")
      sizes = {value()};
    else if (a == "--dtypes")
      dtypes = split_list(value());
    else if (a == "--states")
      states = split_list(value());
    else if (a == "--repeats")
      repeats = std::stoi(value());
    else if (a == "--repeats-large")
      c.repeats_large = std::stoi(value());
    else if (a == "--dir")
      c.dir = value();
    else if (a == "--no-cold")
      c.cold = false;
    else if (a == "--no-train")
      c.train = false;
    else if (a == "--no-restore")
      c.restore = false;
    else if (a == "--no-storage")
      c.storage = false;
    else if (a == "--no-sharing")
      c.sharing = false;
    else if (a == "--no-replay")
      c.replay = false;
    else if (a == "--sharing-epochs")
      c.sharing_epochs = std::stoi(value());
    else if (a == "--train-epochs")
      train_epochs = std::stoi(value());
    else if (a == "--train-repeats")
      train_repeats = std::stoi(value());
    else if (a == "--train-limit")
      c.train_limit = std::stoll(value());
    else if (a == "--threads")
      c.threads = std::stoi(value());
    else if (a == "--replay-cases")
      c.replay_cases = std::stoi(value());
    else if (a == "--python")
      c.python = value();
    else if (a == "-h" || a == "--help") {
      fmt::print("{}", kUsage);
      std::exit(0);
    } else
      throw vigil::OptionError(fmt::format("unknown option '{}' (see --help)", a));
  }
  if (c.quick) {
    if (states.empty()) {
      std::uint64_t smallest = UINT64_MAX;
      for (const auto& s : sizes) smallest = std::min(smallest, parse_size(s));
      c.states = {{smallest, vigil::DType::F32}};
    }
    c.repeats = 1;
    c.train_repeats = 1;
    c.train_epochs = 1;
    c.sharing_epochs = 2;
    c.replay_repeats = 1;
  }
  if (c.states.empty()) {
    if (!states.empty()) {
      for (const auto& s : states) {
        auto colon = s.find(':');
        if (colon == std::string::npos)
          throw vigil::OptionError(fmt::format("--states takes SIZE:DTYPE pairs, got '{}'", s));
        c.states.emplace_back(parse_size(s.substr(0, colon)),
                              parse_dtype_label(s.substr(colon + 1)));
      }
    } else {
      for (const auto& s : sizes)
        for (const auto& d : dtypes) c.states.emplace_back(parse_size(s), parse_dtype_label(d));
    }
  }
  if (repeats > 0) c.repeats = repeats;
  if (train_repeats > 0) c.train_repeats = train_repeats;
  if (train_epochs > 0) c.train_epochs = train_epochs;
  if (repeats > 0) c.replay_repeats = repeats;
  if (out_set) {
    c.out = out == "-" ? fs::path() : fs::path(out);
  } else {
    c.out = c.quick ? c.dir / "BENCHMARKS-quick.md" : fs::path("BENCHMARKS.md");
  }
  return c;
}

int run_suite(const Config& cfg) {
  fs::create_directories(cfg.dir);
  Results results;
  Facts facts;
  facts.cold_cache = cfg.cold && drop_caches();
  if (cfg.cold && !facts.cold_cache)
    facts.notes.push_back(
        "The machine refused `echo 3 > /proc/sys/vm/drop_caches`: only warm-cache loads are "
        "reported.");
  facts.extra["load_average_start"] = [] {
    std::ifstream in("/proc/loadavg");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  const auto started = std::chrono::steady_clock::now();
  for (const auto& [bytes, dtype] : cfg.states) {
    if (cfg.storage) bench_storage(cfg, bytes, dtype, results, facts);
    if (cfg.restore) bench_restore(cfg, bytes, dtype, results, facts);
    if (cfg.sharing) bench_sharing(cfg, bytes, dtype, results, facts);
  }
  if (cfg.sharing) bench_sharing_run(cfg, results, facts);
  {
    std::error_code ec;  // the states' folder in /dev/shm (their files are gone already)
    fs::remove_all(fmt::format("/dev/shm/vigil-bench-{}", ::getpid()), ec);
  }
  if (cfg.replay) bench_replay(cfg, results, facts);
  if (cfg.train) bench_training(cfg, results, facts);
  facts.extra["load_average_end"] = [] {
    std::ifstream in("/proc/loadavg");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  facts.extra["duration_seconds"] = seconds_since(started);

  auto report = report_json(cfg, results, facts);
  if (!cfg.out.empty()) {
    std::ofstream md(cfg.out);
    md << report_markdown(cfg, report);
    if (!md) throw vigil::Error(fmt::format("cannot write {}", cfg.out.string()));
    fmt::print(stderr, "wrote {}\n", cfg.out.string());
  }
  if (cfg.json) fmt::print("{}\n", report.dump(1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  try {
    if (argc > 1 && std::string(argv[1]) == "train-bare") return main_train_bare(argc, argv);
    if (argc > 1 && std::string(argv[1]) == "peak-rss") return main_peak_rss(argc, argv);
    if (argc > 1 && std::string(argv[1]) == "restore-child") return main_restore_child(argc, argv);
    return run_suite(parse_args(argc, argv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "vigil-bench: error: {}\n", e.what());
    return 1;
  }
}
