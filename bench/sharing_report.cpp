// The sharing benchmark's ratios, targets and section of BENCHMARKS.md.
#include <fmt/core.h>

#include "report_util.hpp"

namespace vigil::bench {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string mib(const nlohmann::json& F, const std::string& key) {
  if (!F.contains(key)) return "–";
  return fmt::format("{:.0f} MiB", F[key]["median"].get<double>() / kMiB);
}

}  // namespace

void sharing_targets(const Config& cfg, const Results& res, nlohmann::json& ratios,
                     std::vector<Target>& targets) {
  auto ratio = [&](const std::string& name, const std::string& num, const std::string& den) {
    if (res.has(num) && res.has(den) && res.median(den) > 0)
      ratios[name] = res.median(num) / res.median(den);
  };
  for (const auto& [bytes, dtype] : cfg.states) {
    const auto L = state_label(bytes, dtype);
    const auto p = "sharing." + L + ".";
    ratio(p + "frozen_shared_speedup_vs_full", p + "full", p + "frozen_shared");
    ratio(p + "frozen_shared_speedup_vs_noshare", p + "frozen_noshare", p + "frozen_shared");
    ratio(p + "frozen_shared_best_speedup_vs_full_best", p + "full_best", p + "frozen_shared_best");
    ratio(p + "frozen_shared_written_per_full", p + "frozen_shared_written", p + "full_written");
    ratio(p + "full_best_written_per_full", p + "full_best_written", p + "full_written");
    if (bytes != (std::uint64_t{1} << 30)) continue;
    auto target = [&](const std::string& what, const std::string& key, const char* comparison,
                      double threshold) {
      if (ratios.contains(p + key))
        targets.push_back(
            {what + " (" + L + ")", p + key, ratios[p + key], comparison, threshold, "x", ""});
    };
    target(
        "A save of a state 90% frozen >= 3x faster than a full save of it, checkpoint not a "
        "new best",
        "frozen_shared_speedup_vs_full", ">=", 3.0);
    target(
        "A new-best save writes no second copy for best/: bytes written <= 1.05x those of a "
        "save that is not a new best",
        "full_best_written_per_full", "<=", 1.05);
  }
  if (res.has("sharing_run.sum_bytes") && res.median("sharing_run.sum_bytes") > 0) {
    ratios["sharing_run.unique_per_sum"] =
        res.median("sharing_run.unique_bytes") / res.median("sharing_run.sum_bytes");
    targets.push_back(
        {"A frozen-backbone run keeping every checkpoint uses <= 35% of the bytes "
         "its files add up to (hard links counted once)",
         "sharing_run.unique_per_sum", 100.0 * ratios["sharing_run.unique_per_sum"].get<double>(),
         "<=", 35.0, "%", ""});
  }
}

std::string sharing_markdown(const Config& cfg, const nlohmann::json& r) {
  const auto& F = r["figures"];
  const auto& R = r["ratios"];
  std::string md;
  bool any = false;
  for (const auto& [bytes, dtype] : cfg.states)
    any = any || F.contains("sharing." + state_label(bytes, dtype) + ".full");
  if (any) {
    md += "\n## 7. Writing only what changed: a state with a frozen backbone\n\n";
    md +=
        "The state above as a module's parameters, saved as a training checkpoint "
        "(`save_training_checkpoint`, what ModelCheckpoint does) through a CheckpointManager "
        "keeping the newest checkpoint, each contender in a run directory of its own, after one "
        "save that is not timed (the steady state: a kept checkpoint to share with). Frozen = the "
        "first parameters in state_dict order making up 90% of the bytes have requires_grad "
        "false: the model is then written as two shards (frozen, the rest) plus an index. full = "
        "nothing frozen (one model.safetensors, every byte written); no sharing = 90% frozen with "
        "`share_unchanged_files(false)`; shared = 90% frozen with sharing on (the default): the "
        "frozen shard is hashed (its header holds every tensor's XXH3) and, equal to the kept "
        "one, hard-linked. New best = with `monitor` set and every save improving it, so "
        "best/model.safetensors is published too: a link to the committed file when the model "
        "is one file; merged from the shards into one file (written) when it is sharded. Written "
        "= what the process sent to storage during the save (`write_bytes` of /proc/self/io), "
        "median.\n\n";
    md +=
        "| State | full | 90% frozen, no sharing | 90% frozen, shared | shared vs full | written "
        "(full, no sharing, shared) | new best: full | new best: 90% frozen, shared | speed-up "
        "| written (new best: full, shared) |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for_each_state(
        cfg, F, "sharing.", "full",
        [&](const std::string& L, const std::string& p, std::uint64_t /*bytes*/) {
          md += fmt::format(
              "| {} | {} | {} | {} | {} | {}, {}, {} | {} | {} | {} | {}, {} |\n", L,
              fig(F[p + "full"]), fig(F[p + "frozen_noshare"]), fig(F[p + "frozen_shared"]),
              fmt_ratio(R, p + "frozen_shared_speedup_vs_full"), mib(F, p + "full_written"),
              mib(F, p + "frozen_noshare_written"), mib(F, p + "frozen_shared_written"),
              fig(F[p + "full_best"]), fig(F[p + "frozen_shared_best"]),
              fmt_ratio(R, p + "frozen_shared_best_speedup_vs_full_best"),
              mib(F, p + "full_best_written"), mib(F, p + "frozen_shared_best_written"));
        });
  }
  if (F.contains("sharing_run.sum_bytes")) {
    const auto& run = r["facts"]["sharing_run"];
    md += "\n### A frozen-backbone training run, every checkpoint kept\n\n";
    md += fmt::format(
        "`{}` (the 784-1024-1024-10 mlp with both hidden layers frozen; {} checkpoints kept, "
        "best/ included). Its files add up to {:.1f} MiB; counting each hard-linked file once "
        "they take {:.1f} MiB: {:.1f}% ({} for the whole run).\n",
        run["command"].get<std::string>(), run["checkpoints"].get<std::size_t>(),
        F["sharing_run.sum_bytes"]["median"].get<double>() / kMiB,
        F["sharing_run.unique_bytes"]["median"].get<double>() / kMiB,
        100.0 * R["sharing_run.unique_per_sum"].get<double>(),
        secs(F["sharing_run.seconds"]["median"].get<double>()));
  }
  return md;
}

}  // namespace vigil::bench
