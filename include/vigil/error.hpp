// Every exception type vigil throws, all derived from vigil::Error; each message names the
// problem and what to do about it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace vigil {

/// Base of every error vigil throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A user-supplied option or argument is invalid (bad value, unknown name, conflicting options).
class OptionError : public Error {
 public:
  using Error::Error;
};

/// Input data (a metrics log, a data set, a configuration) cannot be used as given.
class InputError : public Error {
 public:
  using Error::Error;
};

/// A write, fsync, rename or other file-system call failed; the message names the file and errno.
class IoError : public Error {
 public:
  IoError(const std::string& what, int err) : Error(what), errno_value_(err) {}
  /// The errno of the failing call (ENOSPC, EIO, ...), or 0 for a short write that set none.
  [[nodiscard]] int errno_value() const { return errno_value_; }

 private:
  int errno_value_;
};

/// The run directory is locked by another process (or another RunLock of this one).
class LockError : public Error {
 public:
  LockError(const std::string& what, long holder_pid) : Error(what), holder_pid_(holder_pid) {}
  /// The pid written in the lock file by the holder, or 0 if it could not be read.
  long holder_pid() const { return holder_pid_; }

 private:
  long holder_pid_;
};

/// A checkpoint folder is incomplete, corrupt or unusable; what() names the folder, the file and
/// the problem.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// Every way a file can be wrong, each its own kind (safetensors' reader has the same set).
enum class FormatErrorKind {
  FileTooSmall,          ///< fewer than 8 bytes
  HeaderTooLarge,        ///< header length above 100,000,000
  HeaderOutOfBounds,     ///< header length past the end of the file
  InvalidUtf8,           ///< header is not UTF-8
  InvalidJson,           ///< header is not JSON
  NotAnObject,           ///< header (or a tensor entry) is not a JSON object
  InvalidMetadata,       ///< `__metadata__` is not a string-to-string map
  InvalidTensorEntry,    ///< missing/extra field, wrong type in dtype/shape/data_offsets
  UnknownDType,          ///< dtype not in the reference's list
  UnsupportedDType,      ///< a 4/6-bit dtype the reference added later
  DuplicateName,         ///< the same tensor name twice
  InvalidOffsets,        ///< offsets not sorted, not starting at 0, not contiguous, or begin > end
  ElementCountOverflow,  ///< product(shape) * dtype size overflows 64 bits
  SizeMismatch,          ///< byte span differs from product(shape) * dtype size
  TrailingBytes,         ///< the data does not end exactly at the end of the file (extra
                         ///< bytes, or a truncated file)
  ChecksumMismatch,      ///< a tensor's XXH3-64 differs from the one stored
  InvalidChecksum,       ///< a stored checksum is malformed or names no tensor
};

/// A malformed or corrupt tensor file. what() is one line naming the tensor and the numbers.
class FormatError : public Error {
 public:
  FormatError(FormatErrorKind kind, const std::string& what) : Error(what), kind_(kind) {}
  [[nodiscard]] FormatErrorKind kind() const { return kind_; }

 private:
  FormatErrorKind kind_;
};

/// A collective failed: another rank died, hung past the timeout, or the rendezvous failed. The
/// process group cannot be used afterwards; the process should exit (the run resumes from its
/// newest checkpoint when started again).
class DistributedError : public Error {
 public:
  using Error::Error;
};

// vigil::torch::StateDictError (an InputError carrying the lists of missing, unexpected and
// mismatched tensors) is declared with load_module_state in vigil/torch/module_state.hpp.

}  // namespace vigil
