// The state behind an opened SafetensorsFile, shared by the reader and the one-pass read_into()
// (not part of the public API).
#pragma once

#include <sys/mman.h>
#include <xxhash.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detail/posix.hpp"
#include "vigil/error.hpp"
#include "vigil/safetensors.hpp"

namespace vigil {

namespace detail {

// A read-only private mapping of a whole file.
class Mapping {
 public:
  Mapping(void* addr, std::size_t len) : addr_(addr), len_(len) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(addr_, len_); }
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), len_}; }

 private:
  void* addr_;
  std::size_t len_;
};

}  // namespace detail

struct SafetensorsFile::Impl {
  std::string source;                        // the path, or "<memory>", for messages
  detail::UniqueFd fd;                       // the open file (none for from_bytes()), for reads
  std::unique_ptr<detail::Mapping> mapping;  // null for from_bytes()
  std::span<const std::byte> bytes;          // the whole file
  std::uint64_t data_start = 0;              // 8 + header length
  Metadata metadata;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string_view, std::size_t> index;  // keys point into tensors[i].name
  std::vector<std::optional<std::uint64_t>> checksums;      // parallel to tensors
  bool has_checksums = false;
  // Set once every stored checksum matched (at open, by verify_checksums() or read_into()).
  mutable std::atomic<bool> verified{false};

  void parse(const SafetensorsReadOptions& options);
  void read_checksums();
  // Checks every stored checksum (one read_into() pass with no destination); defined there.
  void verify() const;
  std::span<const std::byte> data_of(const TensorInfo& t) const {
    return bytes.subspan(data_start + t.begin, t.size());
  }
  // Reads `dst.size()` bytes at file offset `pos` (pread from the file, or a copy from the
  // image of from_bytes()). Throws IoError naming `what` if the file cannot be read.
  void read_at(std::uint64_t pos, std::span<std::byte> dst, std::string_view what) const;
  [[noreturn]] void fail(FormatErrorKind kind, const std::string& msg) const {
    throw FormatError(kind, source + ": " + msg);
  }
};

}  // namespace vigil
