// POSIX helpers shared by vigil's I/O code (not part of the public API).
#pragma once

#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

namespace vigil::detail {

/// strerror(err), or "no error code" for 0 (a short write reports no errno).
inline std::string errno_text(int err) {
  return err == 0 ? "no error code" : std::strerror(err);
}

/// Owns a file descriptor and closes it once; move-only. Errors of close() are not reported
/// here: code that must know (after writing) calls close_checked().
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  /// Gives up ownership without closing.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  /// Closes the current descriptor (if any) and owns `fd` instead.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  /// Closes now and returns close()'s result (0, or -1 with errno set); the descriptor is
  /// released either way, as POSIX leaves it unusable after a failed close.
  int close_checked() { return fd_ < 0 ? 0 : ::close(release()); }

 private:
  int fd_ = -1;
};

}  // namespace vigil::detail
