// Sharing committed files: see shared_files.hpp. Committed checkpoint files are never written
// again, so a hard link to one is as good as a copy of it, and costs no data.
#include "shared_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "detail/posix.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil::detail {

namespace fs = std::filesystem;

namespace {

// The errors that mean "no hard link here" rather than a failing disk: the file system has no
// hard links (EPERM on vfat, ENOTSUP), the link count is full, or the shared file is gone.
bool link_refused(int err) {
  return err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EOPNOTSUPP ||
         err == ENOENT;
}

void copy_file_durably(const fs::path& src, const fs::path& dst,
                       const std::shared_ptr<FileOps>& ops) {
  detail::UniqueFd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    throw IoError(fmt::format("cannot read {}: {}", src.string(), errno_text(err)), err);
  }
  std::vector<std::byte> buf(std::size_t{4} << 20);
  atomic_write_file_with(
      dst,
      [&](DurableFile& out) {
        for (;;) {
          ssize_t n = ::read(fd.get(), buf.data(), buf.size());
          if (n < 0) {
            int err = errno;
            if (err == EINTR) continue;
            throw IoError(fmt::format("cannot read {}: {}", src.string(), errno_text(err)), err);
          }
          if (n == 0) break;
          out.write_all(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
        }
      },
      ops);
}

// The `stem` shards of `best` as one file: their tensors, the first shard's metadata (each
// shard carries the file's), and the plan of the merged file.
struct Merged {
  ShardedTensors set;
  std::vector<TensorView> views;
  Metadata metadata;
  SafetensorsPlan plan;
};

// `views` with each tensor's data taken from `memory` instead, when memory holds every one of
// them by name with the same dtype, shape and size; else `views` as they are.
void prefer_memory(std::vector<TensorView>& views, std::span<const TensorView> memory) {
  if (memory.size() != views.size()) return;
  std::map<std::string_view, const TensorView*> by_name;
  for (const auto& v : memory) by_name.emplace(v.name, &v);
  std::vector<TensorView> out = views;
  for (auto& v : out) {
    auto it = by_name.find(v.name);
    if (it == by_name.end() || it->second->dtype != v.dtype || it->second->shape != v.shape ||
        it->second->data.size() != v.data.size())
      return;
    v.data = it->second->data;
  }
  views = std::move(out);
}

std::optional<Merged> merged_shards(const CheckpointInfo& best, const std::string& stem,
                                    std::span<const TensorView> memory = {}) {
  // The checkpoint was verified when it was listed or written, so its headers' checksums stand
  // for its data: nothing is hashed again.
  auto set = open_sharded(best.path, stem, SafetensorsReadOptions{}.with_verify_checksums(false));
  if (!set) return std::nullopt;
  Merged m;
  m.views = set->views();
  if (!set->shards.empty()) m.metadata = set->shards.front().metadata();
  // The plan depends on the tensors' names, shapes and checksums, not where their data is read.
  auto plan = merged_plan(*set);
  prefer_memory(m.views, memory);
  m.plan = plan ? std::move(*plan) : plan_safetensors(m.views, m.metadata);
  m.set = std::move(*set);  // the views stay valid: the shards' mappings do not move
  return m;
}

std::optional<CheckpointFileInfo> write_merged(const Merged& m, const std::string& stem,
                                               const fs::path& best_path,
                                               const std::shared_ptr<FileOps>& ops) {
  std::optional<std::uint64_t> digest;
  atomic_write_file_with(
      best_path,
      [&](DurableFile& f) {
        digest = write_planned_safetensors(
            f, m.views, m.plan, SafetensorsWriteOptions{}.with_ops(ops).with_file_hash(true));
      },
      ops);
  return CheckpointFileInfo{stem + std::string(kTensorFileSuffix), m.plan.file_bytes, *digest};
}

std::optional<CheckpointFileInfo> repair_merged(const fs::path& best_path,
                                                const CheckpointInfo& best, const std::string& stem,
                                                bool verify, const std::shared_ptr<FileOps>& ops) {
  auto m = merged_shards(best, stem);
  if (!m) return std::nullopt;
  bool current = starts_with_header(best_path, m->plan.file_bytes, m->plan.header);
  if (current && verify) {
    try {
      (void)SafetensorsFile::open(best_path);  // every tensor's checksum
    } catch (const Error&) {
      current = false;
    }
  }
  if (current)
    return CheckpointFileInfo{stem + std::string(kTensorFileSuffix), m->plan.file_bytes,
                              xxh3_file(best_path)};
  std::error_code ec;
  fs::create_directories(best_path.parent_path(), ec);
  return write_merged(*m, stem, best_path, ops);
}

}  // namespace

bool starts_with_header(const std::filesystem::path& path, std::uint64_t bytes,
                        const std::string& header) {
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uint64_t>(st.st_size) != bytes)
    return false;
  std::string got(header.size(), '\0');
  std::size_t done = 0;
  while (done < got.size()) {
    const ssize_t n =
        ::pread(fd.get(), got.data() + done, got.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return got == header;
}

std::optional<CheckpointFileInfo> share_file(const std::filesystem::path& dir,
                                             const std::string& name, const SafetensorsPlan& plan,
                                             std::span<const ShareableFile> candidates,
                                             FileOps& ops) {
  if (!plan.checksums) return std::nullopt;  // equal headers would not mean equal data
  for (const auto& c : candidates) {
    if (c.bytes != plan.file_bytes || !starts_with_header(c.path, c.bytes, plan.header)) continue;
    const auto dst = dir / name;
    if (ops.link(c.path.c_str(), dst.c_str()) != 0) {
      const int err = errno;
      if (link_refused(err)) return std::nullopt;
      throw IoError(
          fmt::format("cannot link {} to {}: {}", c.path.string(), dst.string(), errno_text(err)),
          err);
    }
    return CheckpointFileInfo{name, c.bytes, c.xxh3, true};
  }
  return std::nullopt;
}

void publish_file(const fs::path& src, const fs::path& dst, const std::shared_ptr<FileOps>& ops) {
  const fs::path tmp = temporary_path_for(dst);
  if (ops->link(src.c_str(), tmp.c_str()) != 0) {
    const int err = errno;
    // The file system has no hard links here (EPERM on vfat, ENOTSUP), the link count is full,
    // or best/ lives elsewhere: copy instead. Other errors (ENOSPC, EIO) are real ones.
    if (!link_refused(err) || err == ENOENT)
      throw IoError(
          fmt::format("cannot link {} to {}: {}", src.string(), tmp.string(), errno_text(err)),
          err);
    copy_file_durably(src, dst, ops);
    return;
  }
  try {
    rename_path(tmp, dst, ops);
    // The data was fsynced when the checkpoint was committed; the new name needs its folder's.
    fsync_dir(dst.parent_path(), ops);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::optional<CheckpointFileInfo> publish_best(const CheckpointInfo& best, const std::string& stem,
                                               const fs::path& best_path,
                                               const std::shared_ptr<FileOps>& ops,
                                               std::span<const TensorView> memory) {
  std::error_code ec;
  fs::create_directories(best_path.parent_path(), ec);
  const std::string file = stem + std::string(kTensorFileSuffix);
  const auto it = std::find_if(best.files.begin(), best.files.end(),
                               [&](const CheckpointFileInfo& f) { return f.file == file; });
  if (it != best.files.end()) {
    publish_file(best.path / file, best_path, ops);
    return *it;
  }
  auto m = merged_shards(best, stem, memory);
  if (!m) return std::nullopt;
  return write_merged(*m, stem, best_path, ops);
}

std::optional<CheckpointFileInfo> repair_best_copy(const fs::path& best_path,
                                                   const CheckpointInfo& best,
                                                   const std::string& stem, bool verify,
                                                   const std::shared_ptr<FileOps>& ops) {
  const std::string file = stem + std::string(kTensorFileSuffix);
  auto it = std::find_if(best.files.begin(), best.files.end(),
                         [&](const CheckpointFileInfo& f) { return f.file == file; });
  if (it == best.files.end()) return repair_merged(best_path, best, stem, verify, ops);
  std::error_code ec;
  bool current = false;
  auto size = fs::file_size(best_path, ec);
  if (!ec && size == it->bytes) {
    // Without verify_on_open the size must do; with it, the copy is hashed like the rest.
    try {
      current = !verify || xxh3_file(best_path) == it->xxh3;
    } catch (const Error&) {
      current = false;
    }
  }
  if (!current) {
    fs::create_directories(best_path.parent_path(), ec);
    publish_file(best.path / it->file, best_path, ops);
  }
  return *it;
}

}  // namespace vigil::detail
