// The run-directory lock. flock (not fcntl locks) because it belongs to the open file
// description: a second RunLock in the same process conflicts too, and closing an unrelated
// descriptor of the same file elsewhere does not silently drop it.
#include "vigil/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include <fmt/core.h>

#include "detail/posix.hpp"
#include "vigil/io.hpp"

namespace vigil {

namespace {

long read_pid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return std::strtol(buf, nullptr, 10);
}

}  // namespace

RunLock RunLock::acquire(const std::filesystem::path& run_dir) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) {
    throw IoError(fmt::format("cannot create run directory {}: {}", run_dir.string(), ec.message()),
                  ec.value());
  }
  auto path = run_dir / kRunLockFileName;
  detail::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) {
    int err = errno;
    throw IoError(fmt::format("cannot open lock file {}: {}", path.string(), std::strerror(err)),
                  err);
  }
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err == EWOULDBLOCK) {
      long pid = read_pid(fd.get());
      throw LockError(
          fmt::format("run directory {} is in use by process {} (lock {}); stop that process or "
                      "use another run directory",
                      run_dir.string(), pid == 0 ? std::string("?") : std::to_string(pid),
                      path.string()),
          pid);
    }
    throw IoError(fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)), err);
  }
  // Only the holder writes, so a reader that lost the race sees either the old or the new pid.
  auto text = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    int err = errno;
    throw IoError(fmt::format("cannot write lock file {}: {}", path.string(), std::strerror(err)),
                  err);
  }
  return RunLock(std::move(path), fd.release());
}

RunLock::RunLock(RunLock&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

RunLock::~RunLock() {
  release();
}

void RunLock::release() {
  if (fd_ < 0) return;
  // Closing drops the flock; the pid stays in the file and is harmless once unlocked.
  ::close(std::exchange(fd_, -1));
}

}  // namespace vigil
