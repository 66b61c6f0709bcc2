// What `vigil train` may do to its --run-dir before training: refuse a folder that is not a run
// (the user's files would be overwritten), move a run aside for --fresh only under its lock (a
// running train keeps its run), and tie checkpoints to their run by the run id.
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <random>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "torch_run.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/error.hpp"
#include "vigil/run_lock.hpp"

namespace vigil::cli {
namespace {

namespace fs = std::filesystem;

// A run is what vigil train leaves: run.json, or checkpoints/ (a run stopped before it wrote
// run.json, or one whose run.json was lost).
bool is_run(const fs::path& dir) {
  return fs::exists(fs::symlink_status(dir / "run.json")) ||
         fs::exists(fs::symlink_status(dir / "checkpoints"));
}

// No file in it (empty folders at most) but the lock a vigil process may have left: nothing
// there can be overwritten. A first start of the language model that was refused (its corpus
// not text, or too small) leaves such a folder: its empty data/.
bool holds_no_files(const fs::path& dir) {
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_directory() && !it->is_symlink()) continue;
    if (it.depth() == 0 && it->path().filename() == kRunLockFileName) continue;
    return false;
  }
  return true;
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Moves an existing run directory aside to DIR.old-<timestamp>.
void move_aside(const fs::path& run_dir) {
  fs::path aside = run_dir.string() + ".old-" + timestamp();
  for (int i = 1; fs::exists(aside); ++i)
    aside = run_dir.string() + ".old-" + timestamp() + "-" + std::to_string(i);
  fs::rename(run_dir, aside);
  fmt::print("moved the previous run aside to {}\n", aside.string());
}

// 64 random bits in hex: enough that two runs never share one by chance.
std::string new_run_id() {
  std::random_device rd;
  const std::uint64_t hi = rd(), lo = rd();
  return fmt::format("{:016x}", (hi << 32U) | lo);
}

}  // namespace

RunLock prepare_run_dir(const fs::path& run_dir, bool fresh) {
  std::error_code ec;
  const auto st = fs::status(run_dir, ec);
  if (!fs::exists(st)) return {};
  if (!fs::is_directory(st))
    throw OptionError(fmt::format("--run-dir {} exists and is not a folder", run_dir.string()));
  if (!is_run(run_dir) && !holds_no_files(run_dir))
    throw OptionError(fmt::format(
        "--run-dir {} is not empty and is not a vigil run (it has no run.json and no "
        "checkpoints/): training would overwrite its files{}; choose a new or empty folder",
        run_dir.string(), fresh ? ", and --fresh moves only runs aside" : ""));
  // A running `vigil train` holds the lock: its run is neither moved nor changed (the language
  // model writes its corpus before the checkpoint manager locks the run for the training).
  RunLock lock = RunLock::acquire(run_dir);
  if (!fresh) return lock;
  move_aside(run_dir);
  return {};  // the lock moved with the run; the new run is locked when it is made
}

void assign_run_id(RunConfig& config, const fs::path& run_dir, bool resuming) {
  if (!resuming) {
    config.run_id = new_run_id();
    return;
  }
  if (!config.run_id.empty()) return;
  config.run_id = new_run_id();
  fmt::print(
      "note: {} has no run id (an older vigil made it); its checkpoints are adopted, and it is "
      "run {} from now on\n",
      run_dir.string(), config.run_id);
}

}  // namespace vigil::cli
