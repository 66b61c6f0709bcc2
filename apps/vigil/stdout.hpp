// Standard output as a checked stream: a write that fails (a full disk, an I/O error) is an
// error of the command, never an exit code 0 after partial output.
#pragma once

#include <cerrno>
#include <cstdio>
#include <string_view>

#include <fmt/format.h>

#include "detail/posix.hpp"
#include "vigil/error.hpp"

namespace vigil::cli {

/// The IoError of a failed write to standard output, with its errno.
[[nodiscard]] inline IoError stdout_error(int err) {
  return IoError(fmt::format("cannot write to standard output: {}", detail::errno_text(err)), err);
}

/// Writes all of `text` to standard output; throws IoError with the errno when stdio cannot.
inline void write_stdout(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) throw stdout_error(errno);
}

/// Flushes standard output and throws IoError if that or any earlier write failed. stdio drops
/// what it could not write but keeps its error flag, so a failure whose errno is gone is still
/// reported (as EIO).
inline void flush_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0) throw stdout_error(errno);
  if (std::ferror(stdout) != 0) {
    throw IoError("cannot write to standard output: an earlier write failed", EIO);
  }
}

}  // namespace vigil::cli
