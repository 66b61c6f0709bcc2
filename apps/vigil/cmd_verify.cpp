// `vigil verify PATH`: checks a tensor file, a checkpoint folder or a whole run directory
// (format, checksums, manifest, pointers) without changing anything; exit 0 only if all intact.
// Leftovers of interrupted writes are reported but are not failures: they are never read.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "format.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/io.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil::cli {

namespace {

namespace fs = std::filesystem;

struct VerifyOptions {
  std::string path;
  bool quick = false;
};

// Names on disk may hold anything; never let control characters reach a terminal raw.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(static_cast<char>(c));
  }
  return out;
}

class Report {
 public:
  void ok(const std::string& what, const std::string& detail) {
    fmt::print("ok        {}: {}\n", printable(what), detail);
  }
  void bad(const std::string& what, const std::string& problem) {
    ++problems_;
    fmt::print("DAMAGED   {}: {}\n", printable(what), printable(problem));
  }
  void leftover(const std::string& what) {
    ++leftovers_;
    fmt::print(
        "leftover  {}: an interrupted write (never read as a checkpoint; removed when the "
        "run is next opened)\n",
        printable(what));
  }
  void note(const std::string& what, const std::string& text) {
    fmt::print("note      {}: {}\n", printable(what), printable(text));
  }
  int problems() const { return problems_; }
  int leftovers() const { return leftovers_; }

 private:
  int problems_ = 0;
  int leftovers_ = 0;
};

void verify_file(const fs::path& path, const std::string& label, bool quick, Report& report) {
  try {
    auto f = SafetensorsFile::open(path, SafetensorsReadOptions{}.with_verify_checksums(!quick));
    std::string checks = !f.has_checksums() ? "no vigil checksums, data not checked"
                         : quick            ? "checksums not checked (--quick)"
                                            : "checksums verified";
    report.ok(label,
              fmt::format("{} tensor{}, {}, {}", f.tensors().size(),
                          f.tensors().size() == 1 ? "" : "s", human_bytes(f.file_size()), checks));
  } catch (const Error& e) {
    report.bad(label, e.what());
  }
}

// The index files of a sharded set (data-parallel checkpoints, Hugging Face models): each must
// name exactly the tensors of its shards; `listed` (a checkpoint's files) must hold every shard.
bool verify_indexes(const fs::path& dir, const std::string& label, bool hash,
                    const CheckpointInfo* listed, Report& report) {
  bool ok = true;
  for (const auto& stem : shard_index_stems(dir)) {
    const std::string what = label + "/" + shard_index_file_name(stem);
    try {
      auto set = open_sharded(dir, stem, SafetensorsReadOptions{}.with_verify_checksums(hash));
      std::size_t tensors = 0;
      for (const auto& f : set->shards) tensors += f.tensors().size();
      if (listed != nullptr)
        for (const auto& name : set->files) {
          if (!listed->has_file(name.substr(0, name.size() - kTensorFileSuffix.size())))
            throw Error(fmt::format("its shard {} is not recorded in {}", name, kStateFileName));
        }
      report.ok(what, fmt::format("{} tensor{} in {} shard{}, matching the index", tensors,
                                  tensors == 1 ? "" : "s", set->shards.size(),
                                  set->shards.size() == 1 ? "" : "s"));
    } catch (const Error& e) {
      report.bad(what, e.what());
      ok = false;
    }
  }
  return ok;
}

std::optional<CheckpointInfo> verify_folder(const fs::path& dir, const std::string& label,
                                            bool quick, Report& report) {
  try {
    auto info = verify_checkpoint(dir, CheckpointVerifyOptions{}.with_checksums(!quick));
    // The shards were hashed whole above; the index check needs only their headers.
    if (!verify_indexes(dir, label, false, &info, report)) return std::nullopt;
    report.ok(label, fmt::format("checkpoint of epoch {}, step {}, {} tensor file{}, {}{}",
                                 info.epoch, info.step, info.files.size(),
                                 info.files.size() == 1 ? "" : "s", human_bytes(info.total_bytes()),
                                 quick ? ", data not hashed (--quick)" : ", checksums verified"));
    return info;
  } catch (const Error& e) {
    report.bad(label, e.what());
    return std::nullopt;
  }
}

std::string read_pointer(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s(4096, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<std::size_t>(in.gcount()));
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// A folder name the manager could have written: one line of safe characters.
bool is_checkpoint_name(const std::string& s) {
  return !s.empty() && s.size() <= 255 && s != "." && s != ".." &&
         std::all_of(s.begin(), s.end(), [](char c) {
           const auto u = static_cast<unsigned char>(c);
           return u > 0x20 && u < 0x7f && c != '/';
         });
}

// What a run's manifest says about best/ and the run's identity.
struct ManifestFacts {
  std::optional<std::string> best;              // the best checkpoint's name
  std::string best_file = "model.safetensors";  // the file of it best/ copies
  std::optional<std::string> best_copy;         // the hash (hex) of what best/ holds, when recorded
  std::string run_id;
};

const CheckpointFileInfo* file_of(const CheckpointInfo& info, const std::string& file) {
  auto it = std::find_if(info.files.begin(), info.files.end(),
                         [&](const CheckpointFileInfo& x) { return x.file == file; });
  return it == info.files.end() ? nullptr : &*it;
}

// True if `path` is the file checkpoint `info` holds as `file`'s shards merged into one: the same
// size and header, whose per-tensor checksums (already verified in `path`) stand for the data.
bool is_merge_of(const fs::path& path, const CheckpointInfo& info, const std::string& file) {
  if (!file.ends_with(kTensorFileSuffix)) return false;
  const auto stem = file.substr(0, file.size() - kTensorFileSuffix.size());
  try {
    const auto set =
        open_sharded(info.path, stem, SafetensorsReadOptions{}.with_verify_checksums(false));
    const auto plan = set ? merged_plan(*set) : std::nullopt;
    std::error_code ec;
    if (!plan || fs::file_size(path, ec) != plan->file_bytes || ec) return false;
    std::ifstream in(path, std::ios::binary);
    std::string head(plan->header.size(), '\0');
    return in.read(head.data(), static_cast<std::streamsize>(head.size())) && head == plan->header;
  } catch (const Error&) {
    return false;  // a damaged checkpoint is reported on its own
  }
}

// best/model.safetensors: intact, and the copy the manifest records, or (after a save was
// interrupted) a copy of another checkpoint of this run; anything else was not written here.
void verify_best(const fs::path& best_path, const std::map<std::string, CheckpointInfo>& intact,
                 const ManifestFacts& m, bool quick, Report& report) {
  const std::string label = "best/model.safetensors";
  std::error_code ec;
  const auto dir_status = fs::symlink_status(best_path.parent_path(), ec);
  if (fs::exists(dir_status) && !fs::is_directory(dir_status)) {
    report.bad("best", "is not a folder (vigil keeps the best model in best/model.safetensors)");
    return;
  }
  const CheckpointInfo* best = nullptr;
  if (m.best && intact.count(*m.best)) best = &intact.at(*m.best);
  const CheckpointFileInfo* best_file = best ? file_of(*best, m.best_file) : nullptr;
  const auto status = fs::symlink_status(best_path, ec);
  if (!fs::exists(status)) {
    if (m.best_copy || best_file)
      report.bad(label, fmt::format("missing, though the manifest names {}'s {} as the best",
                                    *m.best, m.best_file));
    return;
  }
  if (!fs::is_regular_file(status)) {
    report.bad(label, fmt::format("is {}, not the copy of the best model vigil writes",
                                  fs::is_symlink(status)     ? "a symbolic link"
                                  : fs::is_directory(status) ? "a folder"
                                                             : "not a regular file"));
    return;
  }
  verify_file(best_path, label, quick, report);
  // Without a record to compare with (a data-parallel run writes best/ from memory) the file's
  // own checksums are all there is.
  if (quick || (!m.best_copy && !best_file)) return;
  std::uint64_t hash = 0;
  try {
    hash = xxh3_file(best_path);
  } catch (const Error&) {
    return;  // already reported by verify_file
  }
  if (m.best_copy && fmt::format("{:016x}", hash) == *m.best_copy) {
    if (best_file && best_file->xxh3 != hash)
      report.note(label, fmt::format("holds an earlier best, not {}'s {} (copying it failed; "
                                     "retried at the next save or open)",
                                     *m.best, m.best_file));
    return;
  }
  if (!m.best_copy && best_file && best_file->xxh3 == hash) return;
  for (const auto& [name, info] : intact) {
    const auto* f = file_of(info, m.best_file);
    const bool merged = f == nullptr && is_merge_of(best_path, info, m.best_file);
    if ((f != nullptr && f->xxh3 == hash) || merged) {
      report.note(label, fmt::format("is a copy of {}'s {}{}, not of the manifest's best {} (a "
                                     "save was interrupted after updating best/; fixed on the "
                                     "next open)",
                                     name, m.best_file, merged ? " (its shards merged)" : "",
                                     m.best.value_or("(none)")));
      return;
    }
  }
  report.bad(label,
             "matches neither the manifest's record nor any checkpoint of this run: it was not "
             "written by this run (replaced, or copied in from elsewhere)");
}

// Every checkpoint that records a run id must record this run's (run.json's, else the
// manifest's).
void verify_run_ids(const fs::path& run, const std::map<std::string, CheckpointInfo>& intact,
                    const ManifestFacts& m, Report& report) {
  std::string run_id = m.run_id;
  std::error_code ec;
  if (fs::is_regular_file(run / "run.json", ec)) {
    try {
      std::ifstream in(run / "run.json", std::ios::binary);
      const auto j = nlohmann::json::parse(in);
      if (j.is_object() && j.contains("run_id") && j["run_id"].is_string())
        run_id = j["run_id"].get<std::string>();
    } catch (const std::exception& e) {
      report.bad("run.json", fmt::format("unreadable: {}", e.what()));
    }
  }
  if (run_id.empty()) return;
  for (const auto& [name, info] : intact)
    if (!info.run_id.empty() && info.run_id != run_id)
      report.bad("checkpoints/" + name,
                 fmt::format("belongs to another run (run id {}, this run's is {}): copied in "
                             "from elsewhere, it would not be resumed",
                             info.run_id, run_id));
}

void verify_run(const fs::path& run, bool quick, Report& report) {
  auto cdir = CheckpointManager::checkpoints_dir(run);
  auto best_path = CheckpointManager::best_model_path(run);
  std::error_code ec;
  if (fs::exists(fs::symlink_status(cdir, ec)) && !fs::is_directory(cdir, ec))
    report.bad("checkpoints", "is not a folder (vigil keeps its checkpoints in a folder there)");
  for (const auto& dir : {run, cdir, best_path.parent_path()}) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (is_temporary_name(e.path().filename().string()))
        report.leftover(fs::relative(e.path(), run, ec).string());
  }

  std::map<std::string, CheckpointInfo> intact;
  std::set<std::string> damaged;
  if (fs::is_directory(cdir, ec)) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(cdir, ec))
      if (e.is_directory() && !is_temporary_name(e.path().filename().string()))
        dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
      auto name = d.filename().string();
      if (auto info = verify_folder(d, "checkpoints/" + name, quick, report))
        intact.emplace(name, std::move(*info));
      else
        damaged.insert(name);
    }
  }
  std::string newest;
  std::uint64_t newest_seq = 0;
  for (const auto& [name, info] : intact) {
    if (newest.empty() || info.sequence > newest_seq) {
      newest = name;
      newest_seq = info.sequence;
    }
  }

  // The manifest: its checkpoints are written before it, so after a crash it may lag behind
  // the folders (a note); it must never contradict what a folder records (damage).
  auto manifest_path = CheckpointManager::manifest_path(run);
  ManifestFacts facts;
  if (fs::exists(manifest_path, ec)) {
    try {
      std::ifstream in(manifest_path, std::ios::binary);
      auto j = nlohmann::json::parse(in);
      if (!j.is_object() || j.value("format", "") != "vigil-manifest/1")
        throw Error("not a vigil manifest");
      if (j.contains("best") && j["best"].is_string()) facts.best = j["best"].get<std::string>();
      // ema.safetensors when validation ran on averaged weights.
      if (j.contains("best_file") && j["best_file"].is_string())
        facts.best_file = j["best_file"].get<std::string>();
      if (j.contains("best_copy") && j["best_copy"].is_object())
        facts.best_copy = j["best_copy"].value("xxh3", std::string());
      if (j.contains("run_id") && j["run_id"].is_string())
        facts.run_id = j["run_id"].get<std::string>();
      std::set<std::string> listed;
      int contradictions = 0;
      for (const auto& c : j.at("checkpoints")) {
        auto name = c.at("name").get<std::string>();
        listed.insert(name);
        auto it = intact.find(name);
        if (it == intact.end()) continue;
        for (const auto& f : it->second.files) {
          auto rec = c.at("files").at(f.file);
          if (rec.at("bytes").get<std::uint64_t>() != f.bytes ||
              rec.at("xxh3").get<std::string>() != fmt::format("{:016x}", f.xxh3)) {
            ++contradictions;
            report.bad(
                "checkpoints/manifest.json",
                fmt::format("its record of {}/{} differs from the checkpoint's own", name, f.file));
          }
        }
      }
      std::vector<std::string> missing, unlisted;
      for (const auto& n : listed)
        if (!intact.count(n) && !damaged.count(n)) missing.push_back(n);
      for (const auto& [n, info] : intact)
        if (!listed.count(n)) unlisted.push_back(n);
      if (contradictions == 0) {
        report.ok("checkpoints/manifest.json", fmt::format("{} checkpoint{} listed", listed.size(),
                                                           listed.size() == 1 ? "" : "s"));
      }
      if (!missing.empty() || !unlisted.empty()) {
        report.note("checkpoints/manifest.json",
                    fmt::format("behind the folders (a save was interrupted; rewritten on the next "
                                "open): {} listed but gone, {} present but unlisted",
                                missing.size(), unlisted.size()));
      }
    } catch (const std::exception& e) {
      report.bad("checkpoints/manifest.json", fmt::format("unreadable: {}", e.what()));
    }
  } else if (!intact.empty()) {
    report.note("checkpoints/manifest.json", "missing (rewritten on the next open)");
  }

  verify_best(best_path, intact, facts, quick, report);
  verify_run_ids(run, intact, facts, report);

  auto last = CheckpointManager::last_path(run);
  const auto last_status = fs::symlink_status(last, ec);
  if (fs::exists(last_status) && !fs::is_regular_file(last_status)) {
    // vigil writes `last` as a regular file: a link or a folder there is not its own.
    report.bad("last", fmt::format("is {}, not the one-line file naming the newest checkpoint",
                                   fs::is_symlink(last_status)     ? "a symbolic link"
                                   : fs::is_directory(last_status) ? "a folder"
                                                                   : "not a regular file"));
  } else if (fs::exists(last_status)) {
    auto name = read_pointer(last);
    if (!is_checkpoint_name(name)) {
      report.bad("last", fmt::format("does not hold a checkpoint name (it begins \"{}\")",
                                     printable(name.substr(0, 40))));
    } else if (intact.count(name)) {
      report.ok("last", fmt::format("-> {}", name));
      if (name != newest) {
        report.note("last", fmt::format("names {}, but {} is newer (a save was interrupted; fixed "
                                        "on the next open)",
                                        name, newest));
      }
    } else if (damaged.count(name)) {
      report.bad("last", fmt::format("names {}, which is damaged", name));
    } else {
      report.bad("last",
                 fmt::format("names \"{}\", which does not exist (dangling pointer)", name));
    }
  } else if (!intact.empty()) {
    report.note("last", fmt::format("missing; the newest intact checkpoint is {}", newest));
  }
  fmt::print("{}: {} intact checkpoint{}, {} damaged, {} leftover{}\n", run.string(), intact.size(),
             intact.size() == 1 ? "" : "s", damaged.size(), report.leftovers(),
             report.leftovers() == 1 ? "" : "s");
}

}  // namespace

void add_verify_command(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<VerifyOptions>();
  auto* cmd = app.add_subcommand(
      "verify",
      "Check a tensor file, a checkpoint folder or a run directory (format, checksums, manifest, "
      "pointers); exit 0 only if everything is intact");
  cmd->add_option("PATH", opts->path, "a .safetensors file, a checkpoint folder or a run directory")
      ->required();
  cmd->add_flag("--quick", opts->quick,
                "check structure and sizes only; do not hash the data (misses flipped bytes)");
  cmd->callback([opts, &ctx] {
    fs::path path(opts->path);
    std::error_code ec;
    auto st = fs::status(path, ec);
    Report report;
    if (ec || !fs::exists(st)) {
      throw OptionError(fmt::format("{}: no such file or folder", opts->path));
    } else if (fs::is_regular_file(st)) {
      verify_file(path, opts->path, opts->quick, report);
    } else if (!fs::is_directory(st)) {
      throw OptionError(fmt::format("{} is neither a file nor a folder", opts->path));
    } else if (fs::exists(path / kStateFileName, ec)) {
      verify_folder(path, opts->path, opts->quick, report);
    } else if (!shard_index_stems(path).empty() &&
               !fs::is_directory(CheckpointManager::checkpoints_dir(path), ec)) {
      verify_indexes(path, opts->path, !opts->quick, nullptr, report);
    } else if (fs::is_directory(CheckpointManager::checkpoints_dir(path), ec) ||
               fs::exists(CheckpointManager::last_path(path), ec) ||
               fs::exists(CheckpointManager::best_model_path(path), ec)) {
      verify_run(path, opts->quick, report);
    } else {
      throw OptionError(fmt::format(
          "{} is not a checkpoint folder (no {}) nor a run directory (no checkpoints/, best/ or "
          "last)",
          opts->path, kStateFileName));
    }
    if (report.problems() > 0) {
      fmt::print(stderr, "vigil: error: verification failed: {} problem{} (see above)\n",
                 report.problems(), report.problems() == 1 ? "" : "s");
      ctx.exit_code = 1;
    } else {
      ctx.exit_code = 0;
    }
  });
}

}  // namespace vigil::cli
