// What `vigil train` may do to its --run-dir before training: a run another process holds is
// not touched, and --fresh moves a run aside only under its lock.
#include <ctime>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "torch_run.hpp"
#include "vigil/error.hpp"
#include "vigil/run_lock.hpp"

namespace vigil::cli {
namespace {

namespace fs = std::filesystem;

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

}  // namespace

void prepare_run_dir(const fs::path& run_dir, bool fresh) {
  std::error_code ec;
  const auto st = fs::status(run_dir, ec);
  if (!fs::exists(st)) return;
  if (!fs::is_directory(st))
    throw OptionError(fmt::format("--run-dir {} exists and is not a folder", run_dir.string()));
  // A running `vigil train` holds the lock: its run is neither moved nor changed (the language
  // model writes its corpus before the checkpoint manager locks the run for the training).
  const RunLock lock = RunLock::acquire(run_dir);
  if (fresh) move_aside(run_dir);
}

}  // namespace vigil::cli
