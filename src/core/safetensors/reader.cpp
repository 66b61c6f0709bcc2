// The safetensors reader: a memory-mapped file whose header is validated before any number in it
// is trusted, then vigil's checksums read and (by default) verified.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

#include <fmt/core.h>

#include "detail/posix.hpp"
#include "safetensors/file_impl.hpp"
#include "safetensors/format.hpp"
#include "safetensors/header_parser.hpp"
#include "vigil/safetensors.hpp"

namespace vigil {

namespace {
using detail::errno_text;
using detail::printable;
}  // namespace

void SafetensorsFile::Impl::parse(const SafetensorsReadOptions& options) {
  auto header = detail::parse_header(bytes, source);
  data_start = header.data_start;
  tensors = std::move(header.tensors);
  metadata = std::move(header.metadata);
  // Another format version may mean other checksums or layout: read as version 1 it would be
  // misread, so it is refused (files of other writers carry no version and are fine).
  if (const auto v = metadata.find(std::string(kFormatKey));
      v != metadata.end() && v->second != "1")
    fail(FormatErrorKind::InvalidMetadata,
         fmt::format("{} is {}: this file was written in another version of vigil's format; this "
                     "vigil reads version 1",
                     kFormatKey, printable(v->second)));
  index.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);
  read_checksums();
  if (options.verify_checksums && has_checksums) verify();
}

// vigil's checksums: all tensors have one, or none has (files from other writers).
void SafetensorsFile::Impl::read_checksums() {
  checksums.assign(tensors.size(), std::nullopt);
  for (const auto& [key, value] : metadata) {
    if (!key.starts_with(kChecksumKeyPrefix)) continue;
    auto name = std::string_view(key).substr(kChecksumKeyPrefix.size());
    auto it = index.find(name);
    if (it == index.end()) {
      fail(FormatErrorKind::InvalidChecksum,
           fmt::format("a checksum is stored for tensor {}, which the file does not contain",
                       printable(name)));
    }
    auto h = detail::parse_checksum_hex(value);
    if (!h) {
      fail(FormatErrorKind::InvalidChecksum,
           fmt::format("the checksum of tensor {} is {}, not 16 lowercase hex digits",
                       printable(name), printable(value)));
    }
    checksums[it->second] = *h;
    has_checksums = true;
  }
  if (!has_checksums) return;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!checksums[i]) {
      fail(FormatErrorKind::InvalidChecksum,
           fmt::format("tensor {} has no stored checksum although the others have one",
                       printable(tensors[i].name)));
    }
  }
}

void SafetensorsFile::Impl::read_at(std::uint64_t pos, std::span<std::byte> dst,
                                    std::string_view what) const {
  if (!fd) {
    if (!dst.empty()) std::memcpy(dst.data(), bytes.data() + pos, dst.size());
    return;
  }
  std::size_t done = 0;
  while (done < dst.size()) {
    ssize_t n =
        ::pread(fd.get(), dst.data() + done, dst.size() - done, static_cast<off_t>(pos + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      throw IoError(fmt::format("{}: cannot read {} at byte {}: {}", source, what, pos + done,
                                n < 0 ? errno_text(err) : "the file got shorter"),
                    err);
    }
    done += static_cast<std::size_t>(n);
  }
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path,
                                      const SafetensorsReadOptions& options) {
  // O_NONBLOCK so that a FIFO given by mistake (or malice) cannot hang the open.
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    throw IoError(fmt::format("cannot open {}: {}", path.string(), errno_text(err)), err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    int err = errno;
    throw IoError(fmt::format("cannot stat {}: {}", path.string(), errno_text(err)), err);
  }
  if (!S_ISREG(st.st_mode)) {
    throw IoError(fmt::format("{} is not a regular file", path.string()),
                  S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  }
  auto impl = std::make_unique<Impl>();
  impl->source = path.string();
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > 0) {
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      throw IoError(
          fmt::format("cannot memory-map {} ({} bytes): {}", path.string(), size, errno_text(err)),
          err);
    }
    impl->mapping = std::make_unique<detail::Mapping>(addr, size);
    impl->bytes = impl->mapping->bytes();
  }
  impl->fd = std::move(fd);
  impl->parse(options);
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_bytes(std::span<const std::byte> bytes,
                                            const SafetensorsReadOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->source = "<memory>";
  impl->bytes = bytes;
  impl->parse(options);
  return SafetensorsFile(std::move(impl));
}

const Metadata& SafetensorsFile::metadata() const {
  return impl_->metadata;
}
const std::vector<TensorInfo>& SafetensorsFile::tensors() const {
  return impl_->tensors;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = impl_->index.find(name);
  return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

namespace {
const TensorInfo& require(const SafetensorsFile& file, std::string_view name,
                          const std::string& source) {
  if (const auto* t = file.find(name)) return *t;
  std::string names;
  std::size_t shown = 0;
  for (const auto& t : file.tensors()) {
    if (shown == 10) {
      names += fmt::format(", ... ({} in all)", file.tensors().size());
      break;
    }
    names += (shown++ ? ", " : "") + printable(t.name);
  }
  throw Error(fmt::format("{}: no tensor named {} (it has {})", source, printable(name),
                          names.empty() ? "no tensors" : names));
}
}  // namespace

TensorView SafetensorsFile::view(std::string_view name) const {
  const auto& t = require(*this, name, impl_->source);
  return TensorView{t.name, t.dtype, t.shape, impl_->data_of(t)};
}

void SafetensorsFile::copy_to(std::string_view name, std::span<std::byte> dst) const {
  const auto& t = require(*this, name, impl_->source);
  if (dst.size() != t.size()) {
    throw OptionError(fmt::format("{}: tensor {} has {} bytes but the destination holds {}",
                                  impl_->source, printable(name), t.size(), dst.size()));
  }
  auto src = impl_->data_of(t);
  if (!src.empty()) std::memcpy(dst.data(), src.data(), src.size());
}

bool SafetensorsFile::has_checksums() const {
  return impl_->has_checksums;
}

bool SafetensorsFile::checksums_verified() const {
  return impl_->verified;
}

void SafetensorsFile::verify_checksums() const {
  impl_->verify();
}

std::uint64_t SafetensorsFile::file_size() const {
  return impl_->bytes.size();
}

}  // namespace vigil
