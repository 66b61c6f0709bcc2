// Helpers shared by the tests: scratch folders, running the built CLI and Python, error
// messages, and a file layer that can fill the disk.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/io.hpp"

namespace vigil::test {

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// What a finished child process left behind.
struct RunResult {
  int exit_code = -1;  ///< exit status, or 128+signal if it was killed by a signal
  std::string out;     ///< everything it wrote to stdout
  std::string err;     ///< everything it wrote to stderr
};

/// Runs `argv` (argv[0] is a path to the program) with optional stdin text; waits for it.
RunResult run_process(const std::vector<std::string>& argv, const std::string& stdin_text = "");

/// Runs the built `vigil` tool with the given arguments.
RunResult run_vigil(const std::vector<std::string>& args, const std::string& stdin_text = "");

/// The lines of `text` (without their '\n').
std::vector<std::string> lines(const std::string& text);

/// Asserts a usage or input error of the CLI: non-zero exit (not a crash), nothing on stdout,
/// one line on stderr starting "vigil: error: " and containing `needle`.
void expect_clean_error(const RunResult& r, const std::string& needle);

/// The shared/ folder beside the clone (conformance cases live there).
std::filesystem::path shared_dir();

/// The repository's root folder.
std::filesystem::path source_dir();

/// Writes `text` to `path`, creating parent folders.
void write_file(const std::filesystem::path& path, const std::string& text);

/// Reads the whole file at `path`.
std::string read_file(const std::filesystem::path& path);

/// Flips one bit (0x10) of the byte at `offset` of the file at `path`, in place: a disk's damage.
void flip_byte(const std::filesystem::path& path, std::uint64_t offset);

/// The first value of the F32 tensor `name` of a safetensors file (tests fill it with the epoch
/// that saved it).
float first_f32(const std::filesystem::path& file, const std::string& name = "w");

/// The interpreter of the Python interop tests.
inline constexpr const char* kPython = "/usr/bin/python3";

/// True if kPython exists and imports torch (python3-torch); the interop tests skip otherwise.
bool python_has_torch();

/// The message of the E that `fn` throws; fails the test (and returns "(no error)") if it throws
/// nothing. Exceptions of other types go through.
template <class E = vigil::Error, class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "(no error)";
}

/// A file layer whose writes fail with ENOSPC while `full` is set: a full disk on demand.
class FullDiskOps : public vigil::FileOps {
 public:
  std::atomic<bool> full{false};
  ssize_t write(int fd, const void* data, size_t size) override;
};

}  // namespace vigil::test
