// Durable file writing: full writes, fsync of files and folders, atomic replace, and a seam
// through which tests inject ENOSPC, EIO and short writes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "vigil/error.hpp"

namespace vigil {

/// The system calls the durable writers use. Tests subclass it to fail on purpose; everything
/// else uses FileOps::real(). Methods follow the POSIX calls (return -1 and set errno on failure).
class FileOps {
 public:
  virtual ~FileOps() = default;
  [[nodiscard]] virtual int open(const char* path, int flags, mode_t mode);
  [[nodiscard]] virtual ssize_t write(int fd, const void* data, size_t size);
  [[nodiscard]] virtual ssize_t pwrite(int fd, const void* data, size_t size, off_t offset);
  [[nodiscard]] virtual int fsync(int fd);
  [[nodiscard]] virtual int close(int fd);
  [[nodiscard]] virtual int rename(const char* from, const char* to);
  [[nodiscard]] virtual int mkdir(const char* path, mode_t mode);
  [[nodiscard]] virtual int link(const char* from, const char* to);

  /// The pass-through implementation (stateless, shared).
  [[nodiscard]] static const std::shared_ptr<FileOps>& real();
};

/// A file opened for writing that must be synced and closed explicitly; an unclosed file is
/// closed (without sync) on destruction and counts as abandoned.
class DurableFile {
 public:
  /// Creates `path` (it must not exist: O_CREAT|O_EXCL) for writing.
  [[nodiscard]] static DurableFile create(const std::filesystem::path& path,
                                          std::shared_ptr<FileOps> ops = FileOps::real());
  DurableFile(DurableFile&& other) noexcept;
  DurableFile& operator=(DurableFile&& other) noexcept;
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;
  ~DurableFile();

  /// Writes all of `data` (continues after short writes and EINTR); throws IoError on failure.
  void write_all(std::span<const std::byte> data);
  /// Bytes written so far.
  [[nodiscard]] std::size_t size() const { return written_; }
  /// fsync; throws IoError (the file must then be treated as lost, never retried).
  void sync();
  /// close, reporting errors; safe to call once.
  void close();
  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  DurableFile(std::filesystem::path path, int fd, std::shared_ptr<FileOps> ops);
  std::filesystem::path path_;
  int fd_ = -1;
  std::size_t written_ = 0;
  std::shared_ptr<FileOps> ops_;
};

/// Renames `from` to `to` (through `ops`); throws IoError naming both and the errno. Not durable
/// by itself: fsync the folder afterwards.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to,
                 const std::shared_ptr<FileOps>& ops = FileOps::real());

/// fsyncs a folder so that renames and creations inside it are durable.
void fsync_dir(const std::filesystem::path& dir,
               const std::shared_ptr<FileOps>& ops = FileOps::real());

/// Temporary files of the atomic writers are named ".<final name>.tmp-<pid>-<random>" beside
/// the final file, so that a crash leaves only names is_temporary_name() recognizes.
inline constexpr std::string_view kTemporaryInfix = ".tmp-";
/// A fresh temporary name in the same folder as `path` (same file system, so rename is atomic).
[[nodiscard]] std::filesystem::path temporary_path_for(const std::filesystem::path& path);
/// True for a file name made by temporary_path_for() (leftovers of an interrupted write).
[[nodiscard]] bool is_temporary_name(std::string_view filename);

/// Replaces `path` (a symlink: its target) atomically and durably: temporary sibling, write, fsync,
/// rename, fsync the folder; failures keep the old file. A FIFO or char device is written through.
void atomic_write_file(const std::filesystem::path& path, std::string_view bytes,
                       const std::shared_ptr<FileOps>& ops = FileOps::real());

/// Like atomic_write_file(), but `fill` streams the content into the temporary file (any size).
/// On any exception the temporary file is removed, the old `path` is untouched, and the
/// exception propagates.
void atomic_write_file_with(const std::filesystem::path& path,
                            const std::function<void(DurableFile&)>& fill,
                            const std::shared_ptr<FileOps>& ops = FileOps::real());

}  // namespace vigil
