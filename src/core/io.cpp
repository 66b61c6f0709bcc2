// Durable file writing: every failure becomes an IoError naming the file and the errno, and
// nothing is ever retried after a failed write or fsync (the page cache state is then unknown).
#include "vigil/io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <random>
#include <utility>

#include <fmt/core.h>

#include "detail/posix.hpp"

namespace vigil {

namespace {

// Linux transfers at most 0x7ffff000 bytes per write(2); asking for less keeps the loop honest.
constexpr std::size_t kMaxWriteChunk = std::size_t{1} << 30;

// Write-behind: once this many bytes are dirty, start their writeback at once. Without it the
// kernel waits for its dirty thresholds (GiBs on a large machine), so a checkpoint's whole disk
// time would start only at fsync, after all the copying and hashing; with it the disk works
// while the writer still hashes and copies, and fsync only waits for the tail.
constexpr std::size_t kWriteBehindBytes = std::size_t{8} << 20;

using detail::errno_text;

// Removes a temporary file left by a failed write; its own failure is not worth reporting over
// the error that caused it.
void remove_quietly(const std::filesystem::path& path) {
  ::unlink(path.c_str());
}

// What a write to an existing FIFO or character device goes through: such a file is a channel
// (a pipe, a terminal, /dev/null), not stored content, so it is written in place; there is
// nothing to replace atomically and nothing for fsync to make durable (it fails with EINVAL
// there). Everything else is the caller's `ops`, so injected faults still apply.
class InPlaceOps final : public FileOps {
 public:
  explicit InPlaceOps(std::shared_ptr<FileOps> inner) : inner_(std::move(inner)) {}
  // DurableFile::create asks for O_CREAT|O_EXCL; the file exists and must be opened as it is.
  int open(const char* path, int /*flags*/, mode_t /*mode*/) override {
    return inner_->open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC, 0);
  }
  ssize_t write(int fd, const void* data, size_t size) override {
    return inner_->write(fd, data, size);
  }
  ssize_t pwrite(int fd, const void* data, size_t size, off_t offset) override {
    return inner_->pwrite(fd, data, size, offset);
  }
  int fsync(int /*fd*/) override { return 0; }
  int close(int fd) override { return inner_->close(fd); }
  int rename(const char* from, const char* to) override { return inner_->rename(from, to); }
  int mkdir(const char* path, mode_t mode) override { return inner_->mkdir(path, mode); }
  int link(const char* from, const char* to) override { return inner_->link(from, to); }

 private:
  std::shared_ptr<FileOps> inner_;
};

// Where a write to `path` really goes and how.
struct Destination {
  std::filesystem::path path;  // `path` with every symbolic link followed
  bool in_place = false;       // a FIFO or character device: written through, never replaced
};

// Follows symbolic links (a link's target is what the user means; replacing the link by a
// regular file would cut it) and refuses what must never be replaced by a rename or written
// into: folders, block devices, sockets. A path that does not exist (or cannot be examined) is
// left for the creation of the temporary file to report.
Destination resolve_destination(const std::filesystem::path& path) {
  constexpr int kMaxLinks = 40;  // as the kernel's own limit (ELOOP)
  std::filesystem::path p = path;
  for (int links = 0;; ++links) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return {p, false};
    if (S_ISREG(st.st_mode)) return {p, false};
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) return {p, true};
    if (S_ISDIR(st.st_mode)) {
      throw IoError(fmt::format("cannot write {}: it is a folder", path.string()), EISDIR);
    }
    if (!S_ISLNK(st.st_mode)) {
      throw IoError(fmt::format("cannot write {}: it is neither a regular file, a FIFO nor a "
                                "character device, and it is not replaced",
                                path.string()),
                    EINVAL);
    }
    if (links >= kMaxLinks) {
      throw IoError(
          fmt::format("cannot write {}: too many levels of symbolic links", path.string()), ELOOP);
    }
    std::error_code ec;
    auto target = std::filesystem::read_symlink(p, ec);
    if (ec) {
      throw IoError(fmt::format("cannot read the symbolic link {}: {}", p.string(), ec.message()),
                    ec.value());
    }
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
}

// Writes `fill`'s content through an existing FIFO or character device.
void write_in_place(const std::filesystem::path& path,
                    const std::function<void(DurableFile&)>& fill,
                    const std::shared_ptr<FileOps>& ops) {
  auto file = DurableFile::create(path, std::make_shared<InPlaceOps>(ops));
  fill(file);
  file.close();
}

}  // namespace

int FileOps::open(const char* path, int flags, mode_t mode) {
  return ::open(path, flags, mode);
}
ssize_t FileOps::write(int fd, const void* data, size_t size) {
  return ::write(fd, data, size);
}
ssize_t FileOps::pwrite(int fd, const void* data, size_t size, off_t offset) {
  return ::pwrite(fd, data, size, offset);
}
int FileOps::fsync(int fd) {
  return ::fsync(fd);
}
int FileOps::close(int fd) {
  return ::close(fd);
}
int FileOps::rename(const char* from, const char* to) {
  return ::rename(from, to);
}
int FileOps::mkdir(const char* path, mode_t mode) {
  return ::mkdir(path, mode);
}
int FileOps::link(const char* from, const char* to) {
  return ::link(from, to);
}

const std::shared_ptr<FileOps>& FileOps::real() {
  // Stateless, so sharing one instance is not shared mutable state.
  static const std::shared_ptr<FileOps> instance = std::make_shared<FileOps>();
  return instance;
}

DurableFile::DurableFile(std::filesystem::path path, int fd, std::shared_ptr<FileOps> ops)
    : path_(std::move(path)), fd_(fd), ops_(std::move(ops)) {}

DurableFile DurableFile::create(const std::filesystem::path& path, std::shared_ptr<FileOps> ops) {
  if (!ops) ops = FileOps::real();
  int fd = ops->open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    throw IoError(fmt::format("cannot create {}: {}", path.string(), errno_text(err)), err);
  }
  return DurableFile(path, fd, std::move(ops));
}

DurableFile::DurableFile(DurableFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      written_(other.written_),
      ops_(std::move(other.ops_)) {}

DurableFile& DurableFile::operator=(DurableFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) (void)ops_->close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    written_ = other.written_;
    ops_ = std::move(other.ops_);
  }
  return *this;
}

DurableFile::~DurableFile() {
  if (fd_ >= 0) (void)ops_->close(fd_);
}

void DurableFile::write_all(std::span<const std::byte> data) {
  if (fd_ < 0) {
    throw IoError(fmt::format("cannot write to {}: the file is already closed", path_.string()),
                  EBADF);
  }
  const std::byte* p = data.data();
  std::size_t left = data.size();
  const std::size_t before = written_;
  while (left > 0) {
    ssize_t n = ops_->write(fd_, p, std::min(left, kMaxWriteChunk));
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      throw IoError(fmt::format("write to {} failed after {} bytes: {}", path_.string(), written_,
                                errno_text(err)),
                    err);
    }
    if (n == 0) {
      // write(2) returning 0 for a non-empty buffer means no progress is possible (full disk or
      // quota reached without an errno); looping would spin forever.
      throw IoError(fmt::format("write to {} made no progress after {} bytes (disk full?)",
                                path_.string(), written_),
                    0);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
    written_ += static_cast<std::size_t>(n);
  }
  // Each time the file crosses a kWriteBehindBytes boundary, start writing back everything
  // since the previous boundary. Only a hint: an error of the writeback surfaces again at fsync,
  // the call that decides durability.
  const std::size_t from = before / kWriteBehindBytes * kWriteBehindBytes;
  if (from / kWriteBehindBytes != written_ / kWriteBehindBytes) {
    (void)::sync_file_range(fd_, static_cast<off64_t>(from), static_cast<off64_t>(written_ - from),
                            SYNC_FILE_RANGE_WRITE);
  }
}

void DurableFile::sync() {
  if (fd_ < 0) {
    throw IoError(fmt::format("cannot fsync {}: the file is already closed", path_.string()),
                  EBADF);
  }
  if (ops_->fsync(fd_) != 0) {
    int err = errno;
    throw IoError(fmt::format("fsync of {} failed: {}; its contents cannot be trusted",
                              path_.string(), errno_text(err)),
                  err);
  }
}

void DurableFile::close() {
  if (fd_ < 0) return;
  // The descriptor is gone after close(2) even when it reports an error, so never close twice.
  int fd = std::exchange(fd_, -1);
  if (ops_->close(fd) != 0) {
    int err = errno;
    throw IoError(fmt::format("close of {} failed: {}", path_.string(), errno_text(err)), err);
  }
}

void rename_path(const std::filesystem::path& from, const std::filesystem::path& to,
                 const std::shared_ptr<FileOps>& ops_in) {
  const auto& ops = ops_in ? ops_in : FileOps::real();
  if (ops->rename(from.c_str(), to.c_str()) != 0) {
    int err = errno;
    throw IoError(
        fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), errno_text(err)),
        err);
  }
}

void fsync_dir(const std::filesystem::path& dir, const std::shared_ptr<FileOps>& ops_in) {
  const auto& ops = ops_in ? ops_in : FileOps::real();
  auto name = dir.empty() ? std::filesystem::path(".") : dir;
  int fd = ops->open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    throw IoError(
        fmt::format("cannot open folder {} to fsync it: {}", name.string(), errno_text(err)), err);
  }
  if (ops->fsync(fd) != 0) {
    int err = errno;
    (void)ops->close(fd);
    throw IoError(fmt::format("fsync of folder {} failed: {}", name.string(), errno_text(err)),
                  err);
  }
  if (ops->close(fd) != 0) {
    int err = errno;
    throw IoError(fmt::format("close of folder {} failed: {}", name.string(), errno_text(err)),
                  err);
  }
}

std::filesystem::path temporary_path_for(const std::filesystem::path& path) {
  std::random_device rd;
  auto name =
      fmt::format(".{}{}{}-{:08x}", path.filename().string(), kTemporaryInfix, ::getpid(), rd());
  return path.parent_path() / name;
}

bool is_temporary_name(std::string_view filename) {
  return filename.size() > 1 && filename.front() == '.' &&
         filename.find(kTemporaryInfix) != std::string_view::npos;
}

void atomic_write_file_with(const std::filesystem::path& path_in,
                            const std::function<void(DurableFile&)>& fill,
                            const std::shared_ptr<FileOps>& ops_in) {
  const auto& ops = ops_in ? ops_in : FileOps::real();
  if (path_in.filename().empty()) {
    throw IoError(
        fmt::format("cannot write {}: the path names a folder, not a file", path_in.string()),
        EISDIR);
  }
  const Destination dest = resolve_destination(path_in);
  if (dest.in_place) {
    write_in_place(dest.path, fill, ops);
    return;
  }
  const std::filesystem::path& path = dest.path;
  // O_EXCL can collide with a leftover of the same name: try a few fresh names, then give up.
  std::filesystem::path tmp;
  std::optional<DurableFile> file;
  for (int attempt = 0;; ++attempt) {
    tmp = temporary_path_for(path);
    try {
      file.emplace(DurableFile::create(tmp, ops));
      break;
    } catch (const IoError& e) {
      if (e.errno_value() != EEXIST || attempt >= 8) throw;
    }
  }
  try {
    fill(*file);
    file->sync();
    file->close();
    rename_path(tmp, path, ops);
  } catch (...) {
    file.reset();
    remove_quietly(tmp);
    throw;
  }
  // The new file is in place; a failing folder fsync still means it may not survive a crash,
  // which the caller must hear about.
  fsync_dir(path.parent_path(), ops);
}

void atomic_write_file(const std::filesystem::path& path, std::string_view bytes,
                       const std::shared_ptr<FileOps>& ops) {
  atomic_write_file_with(
      path,
      [&](DurableFile& f) {
        f.write_all(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
      },
      ops);
}

}  // namespace vigil
