// The report: figures (min/median/max), ratios against same-run baselines, the targets
// marked MET/MISSED, as JSON and as BENCHMARKS.md.
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <fmt/format.h>

#include "report_util.hpp"

namespace vigil::bench {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string capture(const std::vector<std::string>& argv) {
  try {
    auto out = run(argv);
    while (!out.out.empty() && out.out.back() == '\n') out.out.pop_back();
    return out.exit_code == 0 ? out.out : "";
  } catch (const std::exception&) {
    return "";
  }
}

std::string lscpu_summary() {
  std::istringstream in(capture({"lscpu"}));
  std::string line, out;
  for (const char* key : {"Architecture:", "CPU(s):", "Model name:", "Thread(s) per core:",
                          "Hypervisor vendor:", "L3 cache:"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      if (line.rfind(key, 0) == 0) {
        out += line + "\n";
        break;
      }
    }
  }
  return out;
}

}  // namespace

nlohmann::json report_json(const Config& cfg, const Results& res, const Facts& facts) {
  nlohmann::json j;
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  j["date"] = date;
  j["command"] = "bench/run" + (cfg.command_line.empty() ? "" : " " + cfg.command_line);
  j["commit"] = capture({"git", "-C", cfg.source_dir.string(), "rev-parse", "--short", "HEAD"});
  // A run of a modified tree must not pass for a run of the commit.
  if (!capture(
           {"git", "-C", cfg.source_dir.string(), "status", "--porcelain", "--untracked-files=no"})
           .empty())
    j["commit"] = j["commit"].get<std::string>() + " with uncommitted changes";
  j["machine"] = {{"lscpu", lscpu_summary()},
                  {"free", capture({"free", "-h"})},
                  {"disk", capture({"df", "-h", cfg.dir.string()})},
                  {"block_devices", capture({"lsblk", "-d", "-o", "NAME,SIZE,ROTA,TYPE"})},
                  {"kernel", capture({"uname", "-r"})}};
  j["config"] = {{"states", nlohmann::json::array()},
                 {"repeats", cfg.repeats},
                 {"repeats_large", cfg.repeats_large},
                 {"quick", cfg.quick},
                 {"dir", cfg.dir.string()},
                 {"cold", cfg.cold},
                 {"train", cfg.train},
                 {"train_repeats", cfg.train_repeats},
                 {"train_epochs", cfg.train_epochs},
                 {"threads", cfg.threads},
                 {"replay_cases", cfg.replay_cases}};
  for (const auto& [b, d] : cfg.states) j["config"]["states"].push_back(state_label(b, d));
  j["facts"] = facts.extra;
  j["facts"]["cold_cache"] = facts.cold_cache;
  j["facts"]["peak_rss_reset"] = facts.peak_reset;
  j["notes"] = facts.notes;

  auto& figures = j["figures"];
  figures = nlohmann::json::object();
  for (const auto& [key, values] : res.all()) {
    auto s = summarize(values);
    figures[key] = {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"runs", values}};
  }

  // Ratios of medians from the same run. "x_per_y" = median(x) / median(y).
  auto& ratios = j["ratios"];
  ratios = nlohmann::json::object();
  auto ratio = [&](const std::string& name, const std::string& num, const std::string& den) {
    if (res.has(num) && res.has(den) && res.median(den) > 0)
      ratios[name] = res.median(num) / res.median(den);
  };
  std::vector<Target> targets;
  bool any_big = false, any_1g = false;
  for (const auto& [bytes, dtype] : cfg.states) {
    const auto L = state_label(bytes, dtype);
    const auto s = "save." + L + ".", w = "load_warm." + L + ".", c = "load_cold." + L + ".",
               a = "async." + L + ".";
    // Throughput as a fraction of dd's (dd time / vigil time).
    ratio(s + "vigil_throughput_vs_dd", s + "dd", s + "vigil");
    ratio(s + "vigil_throughput_vs_dd_direct", s + "dd_direct", s + "vigil");
    ratio(s + "vigil_speedup_vs_torch_save", s + "torch_save", s + "vigil");
    ratio(s + "vigil_speedup_vs_python_save", s + "python_save", s + "vigil");
    ratio(s + "vigil_speedup_vs_torch_save_nosync", s + "torch_save_nosync", s + "vigil");
    ratio(s + "vigil_speedup_vs_python_save_nosync", s + "python_save_nosync", s + "vigil");
    ratio(s + "torch_save_throughput_vs_dd", s + "dd", s + "torch_save");
    ratio(s + "sharded2_speedup_vs_single", s + "checkpoint_single", s + "checkpoint_sharded2");
    ratio(s + "python_save_throughput_vs_dd", s + "dd", s + "python_save");
    for (const auto& p : {w, c}) {
      for (const char* v : {"vigil_mmap_verify", "vigil_checkpoint_open", "vigil_module_verify",
                            "vigil_module_noverify"}) {
        ratio(p + v + "_speedup_vs_python_load", p + "python_load", p + v);
        ratio(p + v + "_speedup_vs_torch_load", p + "torch_load", p + v);
      }
    }
    ratio(a + "block_per_memcpy", a + "block", a + "memcpy");
    ratio(a + "block_per_sync_save", a + "block", s + "vigil");
    ratio(a + "first_block_per_memcpy", a + "first_block", a + "memcpy");
    ratio(a + "first_block_reserved_per_memcpy", a + "first_block_reserved", a + "memcpy");

    const bool big = bytes >= (std::uint64_t{1} << 30);
    any_big = any_big || big;
    if (big && ratios.contains(s + "vigil_throughput_vs_dd"))
      targets.push_back({"Durable save at >= 0.9 of dd conv=fsync throughput (" + L + ")",
                         s + "vigil_throughput_vs_dd", ratios[s + "vigil_throughput_vs_dd"],
                         ">=", 0.9, "x dd", ""});
    // When half the contender's time is less than the device needs to write the bytes
    // without any page cache, 2x is beyond the disk, whatever the writer does.
    auto beyond_device = [&](const std::string& contender) -> std::string {
      if (!res.has(s + contender) || !res.has(s + "dd_direct")) return "";
      const double goal = res.median(s + contender) / 2.0, device = res.median(s + "dd_direct");
      if (goal >= device) return "";
      return fmt::format(
          "2x means {:.0f} ms, while the device takes {:.0f} ms to write the same bytes with "
          "O_DIRECT (dd oflag=direct), and vigil {:.0f} ms",
          goal * 1e3, device * 1e3, res.median(s + "vigil") * 1e3);
    };
    if (ratios.contains(s + "vigil_speedup_vs_torch_save"))
      targets.push_back({"Durable save >= 2x faster than torch::save + fsync (" + L + ")",
                         s + "vigil_speedup_vs_torch_save",
                         ratios[s + "vigil_speedup_vs_torch_save"], ">=", 2.0, "x",
                         beyond_device("torch_save")});
    if (ratios.contains(s + "vigil_speedup_vs_python_save"))
      targets.push_back({"Durable save >= 2x faster than Python torch.save + fsync (" + L + ")",
                         s + "vigil_speedup_vs_python_save",
                         ratios[s + "vigil_speedup_vs_python_save"], ">=", 2.0, "x",
                         beyond_device("python_save")});
    // Restore into an existing model, each contender in a fresh process.
    for (const auto& p : {"restore_warm." + L + ".", "restore_cold." + L + "."}) {
      for (const char* v : {"vigil", "vigil_checkpoint"}) {
        ratio(p + v + "_speedup_vs_python", p + "python", p + v);
        ratio(p + v + "_speedup_vs_torch_load", p + "torch_load", p + v);
      }
    }
    if (bytes == (std::uint64_t{1} << 30)) {
      any_1g = true;
      for (const auto& [cache, goal] : {std::pair{"warm", 4.0}, std::pair{"cold", 2.0}}) {
        const auto p = fmt::format("restore_{}.{}.vigil_speedup_vs_", cache, L);
        for (const auto& [other, name] :
             {std::pair{"python", "Python torch.load + load_state_dict"},
              std::pair{"torch_load", "torch::load"}}) {
          const auto k = p + other;
          if (ratios.contains(k))
            targets.push_back({fmt::format("Verified restore into a model >= {:.0f}x faster than "
                                           "{}, {}, fresh processes ({})",
                                           goal, name, cache, L),
                               k, ratios[k], ">=", goal, "x", ""});
        }
      }
    }
    if (ratios.contains(a + "block_per_memcpy"))
      targets.push_back({"save_async blocks <= 1.5x a memcpy of the state (" + L + ")",
                         a + "block_per_memcpy", ratios[a + "block_per_memcpy"], "<=", 1.5, "x",
                         ""});
    if (ratios.contains(a + "block_per_sync_save")) {
      // Any snapshot copies the state at least once: when a plain memcpy alone is near 10 % of
      // the synchronous save, the target asks for less than the copy can take.
      std::string why;
      if (res.has(a + "memcpy") && res.median(s + "vigil") > 0)
        why = fmt::format("a plain memcpy of the state takes {:.0f} % of the synchronous save",
                          100.0 * res.median(a + "memcpy") / res.median(s + "vigil"));
      targets.push_back({"save_async blocks <= 10% of the synchronous save (" + L + ")",
                         a + "block_per_sync_save", ratios[a + "block_per_sync_save"], "<=", 0.10,
                         "x", why});
    }
    const auto ps = "peak_extra." + L + ".sync", pa = "peak_extra." + L + ".async";
    if (res.has(ps))
      targets.push_back({"Peak extra memory of a sync save <= 64 MiB (" + L + ")", ps,
                         res.median(ps) / kMiB, "<=", 64.0, "MiB", ""});
    if (res.has(pa))
      targets.push_back({"Peak extra memory of an async save <= state + 64 MiB (" + L + ")", pa,
                         res.median(pa) / kMiB, "<=", static_cast<double>(bytes) / kMiB + 64.0,
                         "MiB", ""});
  }
  ratio("train.vigil_async_throughput_vs_bare", "train.bare", "train.vigil_async");
  ratio("train.vigil_sync_throughput_vs_bare", "train.bare", "train.vigil_sync");
  ratio("train.python_throughput_vs_bare", "train.bare", "train.python");
  ratio("train.python_loop_throughput_vs_bare_loop", "train.bare_loop", "train.python_loop");
  ratio("train.vigil_async_loop_throughput_vs_bare_loop", "train.bare_loop",
        "train.vigil_async_loop");
  ratio("train.vigil_sync_loop_throughput_vs_bare_loop", "train.bare_loop",
        "train.vigil_sync_loop");
  // Throughput is a property of the training loop: the target compares the loops (every epoch's
  // training, validation and callbacks), not process start-up and data loading, which the
  // whole-process ratio above also reports.
  if (ratios.contains("train.vigil_async_loop_throughput_vs_bare_loop"))
    targets.push_back(
        {"Training with callbacks + async checkpoint every epoch within 3% of the "
         "bare libtorch loop (training loops)",
         "train.vigil_async_loop_throughput_vs_bare_loop",
         ratios["train.vigil_async_loop_throughput_vs_bare_loop"], ">=", 0.97, "x bare", ""});
  if (res.has("replay.seconds")) {
    const double per100k = res.median("replay.seconds") * 100000.0 / cfg.replay_cases;
    ratios["replay.seconds_per_100k_cases"] = per100k;
    ratios["replay.cases_per_second"] = cfg.replay_cases / res.median("replay.seconds");
    targets.push_back({"100,000 replay cases in under 2 s", "replay.seconds_per_100k_cases",
                       per100k, "<=", 2.0, "s", ""});
  }

  sharing_targets(cfg, res, ratios, targets);

  auto& tj = j["targets"];
  tj = nlohmann::json::array();
  for (const auto& t : targets) {
    const bool met = t.met();
    std::string reason =
        fmt::format("{:.3g} {} {:.3g} {}", t.value,
                    met ? (t.comparison == ">=" ? ">=" : "<=") : (t.comparison == ">=" ? "<" : ">"),
                    t.threshold, t.unit);
    if (!met && !t.explanation.empty()) reason += "; " + t.explanation;
    tj.push_back({{"target", t.name},
                  {"figure", t.figure},
                  {"value", t.value},
                  {"comparison", t.comparison},
                  {"threshold", t.threshold},
                  {"unit", t.unit},
                  {"status", met ? "MET" : "MISSED"},
                  {"reason", reason}});
  }
  if (!any_big)
    tj.push_back({{"target", "Durable save at >= 0.9 of dd throughput at 1 GiB and above"},
                  {"status", "NOT MEASURED"},
                  {"reason", "no state of 1 GiB or more in this run"}});
  if (!any_1g)
    tj.push_back(
        {{"target", "Verified restore into a model against torch.load and torch::load at 1 GiB"},
         {"status", "NOT MEASURED"},
         {"reason", "no 1 GiB state in this run"}});
  return j;
}

namespace {

std::string code_block(const std::string& s) {
  return "```\n" + s + (s.empty() || s.back() == '\n' ? "" : "\n") + "```\n";
}

}  // namespace

std::string report_markdown(const Config& cfg, const nlohmann::json& r) {
  std::string md;
  auto out = [&](const std::string& s) { md += s; };
  const auto& F = r["figures"];
  const auto& R = r["ratios"];
  out("# vigil benchmarks\n\n");
  out(fmt::format(
      "Generated by `{}` on {} (commit {}), in {:.0f} s. Every figure is the median of "
      "{} repeats with (min – max); the contenders of each repeat run interleaved, "
      "their order rotating, and every ratio compares medians from this same run.{}\n\n",
      r["command"].get<std::string>(), r["date"].get<std::string>(), r["commit"].get<std::string>(),
      r["facts"].value("duration_seconds", 0.0), cfg.repeats,
      cfg.repeats_large > 0 && cfg.repeats_large != cfg.repeats
          ? fmt::format(" States of 4 GiB and more: {} repeats.", cfg.repeats_large)
          : std::string()));
  if (cfg.quick)
    out("**This is a `--quick` smoke run: one small state, one repeat. It is not the "
        "benchmark.**\n\n");

  out("## Machine\n\n");
  out(code_block(r["machine"]["lscpu"].get<std::string>() + "kernel " +
                 r["machine"]["kernel"].get<std::string>()));
  out(code_block(r["machine"]["free"].get<std::string>()));
  out(code_block(r["machine"]["disk"].get<std::string>() + "\n" +
                 r["machine"]["block_devices"].get<std::string>()));
  out(fmt::format(
      "Load average at the start: `{}`; at the end: `{}` (the machine is shared with "
      "other builds: 2 cores, so expect noise).\n\n",
      r["facts"].value("load_average_start", ""), r["facts"].value("load_average_end", "")));
  out(fmt::format("Cold cache: {}. Python: Debian python3-torch {} (`{}`).\n\n",
                  r["facts"]["cold_cache"].get<bool>()
                      ? "`echo 3 > /proc/sys/vm/drop_caches` works (we are root); cold loads drop "
                        "the cache before every contender"
                      : "not available (drop_caches refused or --no-cold); warm figures only",
                  r["facts"].value("python_torch", "?"), cfg.python));
  for (const auto& n : r["notes"]) out("- " + n.get<std::string>() + "\n");

  out("\n## Targets\n\n| Target | Value | Status | Why |\n|---|---|---|---|\n");
  for (const auto& t : r["targets"]) {
    out(fmt::format("| {} | {} | **{}** | {} |\n", t["target"].get<std::string>(),
                    t.contains("value") ? fmt::format("{:.3g} {}", t["value"].get<double>(),
                                                      t["unit"].get<std::string>())
                                        : "–",
                    t["status"].get<std::string>(), t["reason"].get<std::string>()));
  }

  out("\n## 1. Save (durable: fsync included)\n\n");
  out("State: a transformer's parameters (embeddings; per layer two LayerNorms, fused QKV, "
      "attention projection, 4x MLP; width 1024) of seeded random bytes, one tensor per "
      "parameter. `dd` copies the same bytes from /dev/shm with `bs=16M conv=fsync` into the same "
      "folder. vigil = `write_checkpoint` (temporary folder, model.safetensors with per-tensor "
      "XXH3, whole-file XXH3 in state.json, fsync of files and folder, rename, fsync of the "
      "parent). torch::save = `torch::save(module, path)` + fsync; Python = "
      "`torch.save(state_dict, "
      "f)` + `os.fsync`. Throughput columns are relative to dd (1.00 = the disk's limit).\n\n");
  out("| State | dd conv=fsync | dd oflag=direct | vigil | torch::save+fsync | torch.save+fsync | "
      "vigil / dd throughput | vigil / dd direct | vigil speed-up vs torch::save | vs torch.save "
      "| torch::save, torch.save without fsync |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for_each_state(
      cfg, F, "save.", "vigil",
      [&](const std::string& L, const std::string& s, std::uint64_t /*bytes*/) {
        out(fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {} |\n", L,
                        fig(F[s + "dd"]), fig(F[s + "dd_direct"]), fig(F[s + "vigil"]),
                        fig(F[s + "torch_save"]), fig(F[s + "python_save"]),
                        fmt_ratio(R, s + "vigil_throughput_vs_dd"),
                        fmt_ratio(R, s + "vigil_throughput_vs_dd_direct"),
                        fmt_ratio(R, s + "vigil_speedup_vs_torch_save"),
                        fmt_ratio(R, s + "vigil_speedup_vs_python_save"),
                        secs(F[s + "torch_save_nosync"]["median"]),
                        secs(F[s + "python_save_nosync"]["median"])));
      });

  out("\n## 1b. Parallel sharded save against the single writer\n\n");
  out("The same module (the state above as its parameters) saved as a training checkpoint "
      "through a CheckpointManager: single = `save_training_checkpoint` (what ModelCheckpoint "
      "does, one model.safetensors; sharing unchanged files off, since the benchmark's state "
      "never changes and every save would be a link: section 7 measures sharing); 2 ranks = "
      "`ShardedModelCheckpoint` on two data-parallel "
      "ranks (two threads of the benchmark, each with its own Gloo process group over the "
      "loopback), each writing `model-0000k-of-00002.safetensors` in parallel into one temporary "
      "folder, rank 0 writing the index and committing after both report success. Speed-up = "
      "single time / sharded time.\n\n| State | single writer | 2 ranks, sharded | speed-up |\n"
      "|---|---|---|---|\n");
  for_each_state(cfg, F, "save.", "checkpoint_sharded2",
                 [&](const std::string& L, const std::string& s, std::uint64_t /*bytes*/) {
                   out(fmt::format("| {} | {} | {} | {} |\n", L, fig(F[s + "checkpoint_single"]),
                                   fig(F[s + "checkpoint_sharded2"]),
                                   fmt_ratio(R, s + "sharded2_speedup_vs_single")));
                 });

  for (const char* kind : {"load_warm", "load_cold"}) {
    const bool warm = std::string(kind) == "load_warm";
    bool any = false;
    for (const auto& [bytes, dtype] : cfg.states)
      any = any || F.contains(std::string(kind) + "." + state_label(bytes, dtype) + ".python_load");
    if (!any) continue;
    out(warm ? "\n## 2a. Load, warm page cache\n\n" : "\n## 2b. Load, cold page cache\n\n");
    if (warm)
      out("Each contender reads the file it wrote itself, in the benchmark's long-lived process "
          "(section 2c times restores in fresh processes). vigil mmap+verify = "
          "`SafetensorsFile::open` (maps the file, hashes every tensor, zero-copy torch views: "
          "no load into a model, nothing copied); "
          "checkpoint = `Checkpoint::open` (whole-file XXH3 of the folder) + `open_file`; module = "
          "`load_module_state` copying into the module's existing tensors (with / without "
          "verification). torch::load = `torch::load(module, path)` (reads into fresh storages "
          "and re-points the parameters); Python = `torch.load(path)`. Speed-ups are Python "
          "torch.load time / vigil time.\n\n");
    else
      out("Before every contender: `sync; echo 3 > /proc/sys/vm/drop_caches`, then a tiny load "
          "through the same code path so that only the data comes cold, not the libraries.\n\n");
    out("| State | vigil mmap+verify | vigil checkpoint open | vigil into module, verified | "
        "into module, unverified | torch::load | torch.load | mmap+verify vs torch.load | "
        "module verified vs torch::load |\n|---|---|---|---|---|---|---|---|---|\n");
    for_each_state(
        cfg, F, std::string(kind) + ".", "python_load",
        [&](const std::string& L, const std::string& p, std::uint64_t /*bytes*/) {
          out(fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", L,
                          fig(F[p + "vigil_mmap_verify"]), fig(F[p + "vigil_checkpoint_open"]),
                          fig(F[p + "vigil_module_verify"]), fig(F[p + "vigil_module_noverify"]),
                          fig(F[p + "torch_load"]), fig(F[p + "python_load"]),
                          fmt_ratio(R, p + "vigil_mmap_verify_speedup_vs_python_load"),
                          fmt_ratio(R, p + "vigil_module_verify_speedup_vs_torch_load")));
        });
  }

  for (const char* cache : {"warm", "cold"}) {
    const std::string head = fmt::format("restore_{}.", cache);
    bool any = false;
    for (const auto& [bytes, dtype] : cfg.states)
      any = any || F.contains(head + state_label(bytes, dtype) + ".vigil");
    if (!any) continue;
    out(fmt::format("\n## 2c. Restore into a model, fresh processes, {} page cache\n\n", cache));
    if (std::string(cache) == "warm")
      out("What resuming or evaluating costs: a fresh process builds a model with the state's "
          "parameters (zero-filled, resident), restores a tiny file through the same code path "
          "(so that after a cache drop only the data comes cold), then times the restore. vigil = "
          "`load_module_state(model, path)`: the tensors read straight into the parameters in one "
          "pass, every tensor's XXH3 checked on the way (a second thread hashes each block as it "
          "arrives); vigil checkpoint = the resume path: `Checkpoint::open` without hashing, then "
          "the model file read in one pass checked against state.json's whole-file XXH3. "
          "torch::load = `torch::load(model, path)` (reads into fresh storages and re-points the "
          "parameters); Python = `model.load_state_dict(torch.load(path))`. Every contender's "
          "restored weights are checked to be the saved ones. In brackets: the whole process "
          "(start-up, `import torch`, building the model). Speed-ups are medians' ratios.\n\n");
    else
      out("The same, with `sync; echo 3 > /proc/sys/vm/drop_caches` before every process.\n\n");
    out("| State | vigil, one pass, verified | vigil checkpoint (resume path) | torch::load | "
        "Python torch.load + load_state_dict | vigil vs Python | vigil vs torch::load |\n"
        "|---|---|---|---|---|---|---|\n");
    for_each_state(cfg, F, head, "vigil",
                   [&](const std::string& L, const std::string& p, std::uint64_t /*bytes*/) {
                     auto cell = [&](const std::string& k) {
                       return fmt::format("{} [{}]", fig(F[p + k]),
                                          secs(F[p + k + "_process"]["median"]));
                     };
                     out(fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", L, cell("vigil"),
                                     cell("vigil_checkpoint"), cell("torch_load"), cell("python"),
                                     fmt_ratio(R, p + "vigil_speedup_vs_python"),
                                     fmt_ratio(R, p + "vigil_speedup_vs_torch_load")));
                   });
  }

  out("\n## 3. Async save: how long `save_async` blocks the training thread\n\n");
  out("`CheckpointManager::save_async` with its reused snapshot arena (sharing unchanged files "
      "off, as in section 1b). The first call of a "
      "manager, which maps and first-touches the arena, is reported apart: cold, and after "
      "`reserve_async()` (what ModelCheckpoint calls after the first training step: the writer "
      "thread maps and touches the arena while training goes on; its own time in brackets). "
      "memcpy = one `memcpy` of the state into "
      "already-touched memory allocated like the arena (2 MiB aligned, huge pages asked for), "
      "kept for the whole run: the floor for any snapshot. The two are timed back to back after "
      "the save contenders, in turns first and second (on this VM whichever copy comes first "
      "after the contenders is often several times slower, with no page fault: a host-side "
      "effect that alternating spreads evenly). Faults = the training thread's minor page "
      "faults during the call (median). Background total = until the checkpoint is "
      "committed.\n\n");
  out("| State | save_async blocks | first call: cold, after reserve_async (reserve) | memcpy | "
      "sync save | background "
      "total | block / memcpy | block / sync save | faults (block, memcpy) |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  for_each_state(
      cfg, F, "async.", "block",
      [&](const std::string& L, const std::string& a, std::uint64_t /*bytes*/) {
        auto first_call = [&](const std::string& p) {
          std::string text = secs(F[p + "first_block"]["median"]);
          if (F.contains(p + "first_block_reserved"))
            text += fmt::format(", {} ({})", secs(F[p + "first_block_reserved"]["median"]),
                                secs(F[p + "reserve"]["median"]));
          return text;
        };
        auto faults = [&](const std::string& k) {
          return F.contains(k) ? fmt::format("{:.0f}", F[k]["median"].get<double>()) : "-";
        };
        out(fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {}, {} |\n", L,
                        fig(F[a + "block"]), first_call(a), fig(F[a + "memcpy"]),
                        fig(F["save." + L + ".vigil"]), fig(F[a + "total"]),
                        fmt_ratio(R, a + "block_per_memcpy"),
                        fmt_ratio(R, a + "block_per_sync_save"), faults(a + "block_faults"),
                        faults(a + "memcpy_faults")));
      });

  out("\n## 4. Peak extra memory of a save\n\n");
  out(fmt::format(
      "Measured in a fresh process per save: VmHWM after the save minus VmRSS before it, the state "
      "already resident ({}). One measurement per state.\n\n| State | sync save | async save "
      "(snapshot included) |\n|---|---|---|\n",
      r["facts"]["peak_rss_reset"].get<bool>()
          ? "high-water mark reset through /proc/self/clear_refs"
          : "clear_refs unsupported: the mark includes start-up"));
  for_each_state(
      cfg, F, "peak_extra.", "sync",
      [&](const std::string& L, const std::string& p, std::uint64_t bytes) {
        out(fmt::format("| {} | {:.1f} MiB | {:.1f} MiB (state {:.0f} MiB) |\n", L,
                        F[p + "sync"]["median"].get<double>() / kMiB,
                        F[p + "async"]["median"].get<double>() / kMiB, double(bytes) / kMiB));
      });

  if (F.contains("train.bare")) {
    const auto& t = r["facts"]["train"];
    out("\n## 5. Training overhead\n\n");
    out(fmt::format(
        "Fashion-MNIST ({} training examples, 10% held out), the default mlp 784-256-256-10, "
        "Adam 1e-3, batch {}, {} epoch(s), {} thread(s), validation after every epoch, test set "
        "at the end. Wall time of the whole process (data loading included, the same for all). "
        "vigil = `vigil train` with every callback (EarlyStopping with restore_best_weights, "
        "ModelCheckpoint every epoch with rotation and best/, BackupAndRestore, "
        "ReduceLROnPlateau, CSVLogger, the epoch printer); bare = the same loop in plain "
        "libtorch (`vigil-bench train-bare`); Python = the same loop in PyTorch "
        "(`bench/train_loop.py`, process time includes `import torch`). {} repeats.\n\n",
        t["limit_train"].get<std::int64_t>() > 0
            ? std::to_string(t["limit_train"].get<std::int64_t>())
            : std::string("60000"),
        t["batch_size"].get<int>(), t["epochs"].get<int>(), t["threads"].get<int>(),
        cfg.train_repeats));
    out("Training loop = from the first epoch to the end of the last one with its validation "
        "and every callback (vigil: `Trainer::fit`, `fit_seconds` in result.json; the bare loop "
        "and Python time the same span themselves).\n\n");
    out("| Contender | whole process | throughput vs bare | training loop | loop throughput vs "
        "bare loop |\n|---|---|---|---|---|\n");
    out(fmt::format("| bare libtorch loop | {} | 1.00x | {} | 1.00x |\n", fig(F["train.bare"]),
                    fig(F["train.bare_loop"])));
    for (const auto& [label, key] : std::vector<std::pair<std::string, std::string>>{
             {"vigil train, sync checkpoints", "vigil_sync"},
             {"vigil train, async checkpoints", "vigil_async"},
             {"Python PyTorch loop", "python"}}) {
      const auto loop = "train." + key + "_loop";
      out(fmt::format("| {} | {} | {} | {} | {} |\n", label, fig(F["train." + key]),
                      fmt_ratio(R, "train." + key + "_throughput_vs_bare"),
                      F.contains(loop) ? fig(F[loop]) : "–",
                      fmt_ratio(R, "train." + key + "_loop_throughput_vs_bare_loop")));
    }
  }

  if (F.contains("replay.seconds")) {
    out("\n## 6. `vigil replay --batch`\n\n");
    out(fmt::format(
        "{} cases (40 epochs each; rules patience, gl:2, up:3, robust:6 in turn): {} "
        "per run, {:.0f} cases/s, {:.2f} s per 100,000 cases.\n",
        cfg.replay_cases, fig(F["replay.seconds"]), R["replay.cases_per_second"].get<double>(),
        R["replay.seconds_per_100k_cases"].get<double>()));
  }

  md += sharing_markdown(cfg, r);

  std::ifstream notes(cfg.source_dir / "notes.md");
  if (notes) {
    std::stringstream ss;
    ss << notes.rdbuf();
    md += "\n";
    md += ss.str();
  }
  return md;
}

}  // namespace vigil::bench
