// RunLock: one writer per run directory, an advisory flock on DIR/.vigil.lock that names the
// holder's pid so that a second process can say who is in the way.
#pragma once

#include <filesystem>
#include <string>

#include "vigil/error.hpp"

namespace vigil {

/// The lock file inside a run directory.
inline constexpr const char* kRunLockFileName = ".vigil.lock";

/// Holds flock(LOCK_EX) on DIR/.vigil.lock while it lives and writes its pid there. The kernel
/// drops the lock when the process dies (even by SIGKILL), so a stale lock file never blocks.
/// The file itself is left in place: removing it would race with a process about to lock it.
class RunLock {
 public:
  /// An empty lock (holds nothing).
  RunLock() = default;
  /// Locks `run_dir` (created if missing) without waiting. Throws LockError naming the holder's
  /// pid if another holds it, IoError if the file cannot be created.
  static RunLock acquire(const std::filesystem::path& run_dir);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

  bool held() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }
  /// Releases the lock now (also done by the destructor).
  void release();

 private:
  RunLock(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace vigil
