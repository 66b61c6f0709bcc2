// The safetensors writer and reader. The writer reproduces the reference serializer byte for byte
// (sort order, compact JSON, space padding to 8); the reader validates like the reference's
// read_metadata()/Metadata::validate() before it trusts any number in the file.
#include "vigil/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "xxh_state.hpp"

namespace vigil {

namespace {

constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
  // Position in the reference's `Dtype` enum, which is ordered by alignment; the writer sorts
  // by it, largest first.
  int reference_rank;
};

constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::BOOL, "BOOL", 1, 0},
    {DType::U8, "U8", 1, 1},
    {DType::I8, "I8", 1, 2},
    {DType::F8_E5M2, "F8_E5M2", 1, 3},
    {DType::F8_E4M3, "F8_E4M3", 1, 4},
    {DType::I16, "I16", 2, 5},
    {DType::U16, "U16", 2, 6},
    {DType::F16, "F16", 2, 7},
    {DType::BF16, "BF16", 2, 8},
    {DType::I32, "I32", 4, 9},
    {DType::U32, "U32", 4, 10},
    {DType::F32, "F32", 4, 11},
    {DType::F64, "F64", 8, 12},
    {DType::I64, "I64", 8, 13},
    {DType::U64, "U64", 8, 14},
}};

// Dtypes the reference added after the 15 above (sub-byte floats, complex); named so the error
// can say "not supported" instead of "unknown".
constexpr std::array<std::string_view, 5> kUnsupportedDTypes = {"F4", "F6_E2M3", "F6_E3M2",
                                                                "F8_E8M0", "C64"};

const DTypeInfo& info_of(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d;
  }
  throw OptionError(fmt::format("invalid dtype value {}", static_cast<int>(dtype)));
}

// Returns the length of the valid UTF-8 prefix (== size when all of it is valid). Follows the
// Unicode definition Rust's from_utf8 uses: no overlongs, no surrogates, nothing above U+10FFFF.
std::size_t utf8_valid_prefix(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    // Headers are almost entirely ASCII: skip 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return n;
}

bool is_utf8(std::string_view s) {
  return utf8_valid_prefix(reinterpret_cast<const unsigned char*>(s.data()), s.size()) == s.size();
}

// JSON string escaping exactly as serde_json writes it (the reference's header writer): only
// '"', '\\' and control characters are escaped, short forms where JSON has them, else \u00xx.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// A printable form of a tensor name for error messages (names may hold control characters).
std::string printable(std::string_view s) {
  std::string out;
  append_json_string(out, s.substr(0, 200));
  if (s.size() > 200) out += "...";
  return out;
}

bool is_vigil_owned_key(std::string_view key) {
  return key.starts_with(kChecksumKeyPrefix) || key == kFormatKey;
}

std::string checksum_hex(std::uint64_t h) {
  return fmt::format("{:016x}", h);
}

std::optional<std::uint64_t> parse_checksum_hex(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

// product(shape) * element size, or nullopt on 64-bit overflow.
std::optional<std::uint64_t> checked_nbytes(const std::vector<std::uint64_t>& shape,
                                            std::size_t elem) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(elem), &n)) return std::nullopt;
  return n;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  return info_of(dtype).name;
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes) {
    if (d.name == name) return d.dtype;
  }
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  return info_of(dtype).size;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

struct PreparedHeader {
  std::string bytes;               // 8-byte length + JSON + padding
  std::vector<std::size_t> order;  // indices into the caller's tensors, in file order
};

PreparedHeader prepare_header(std::span<const TensorView> tensors, const Metadata& metadata,
                              const SafetensorsWriteOptions& options) {
  std::unordered_set<std::string_view> names;
  names.reserve(tensors.size());
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") {
      throw OptionError("a tensor cannot be named \"__metadata__\" (the format reserves it)");
    }
    if (!is_utf8(t.name)) {
      throw OptionError(fmt::format("tensor name {} is not valid UTF-8", printable(t.name)));
    }
    if (!names.insert(t.name).second) {
      throw OptionError(
          fmt::format("tensor name {} appears twice; names must be unique", printable(t.name)));
    }
    auto nbytes = checked_nbytes(t.shape, dtype_size(t.dtype));
    if (!nbytes) {
      throw OptionError(fmt::format("tensor {}: shape {} of {} overflows 64 bits",
                                    printable(t.name), shape_text(t.shape), dtype_name(t.dtype)));
    }
    if (*nbytes != t.data.size()) {
      throw OptionError(fmt::format(
          "tensor {}: shape {} of {} needs {} bytes but its data has {} bytes", printable(t.name),
          shape_text(t.shape), dtype_name(t.dtype), *nbytes, t.data.size()));
    }
  }
  for (const auto& [key, value] : metadata) {
    if (!is_utf8(key) || !is_utf8(value)) {
      throw OptionError(fmt::format("metadata entry {} is not valid UTF-8", printable(key)));
    }
  }

  PreparedHeader out;
  out.order.resize(tensors.size());
  std::iota(out.order.begin(), out.order.end(), std::size_t{0});
  // The reference order: dtype alignment (its enum order) descending, then name ascending,
  // comparing names bytewise like Rust's str::cmp.
  std::sort(out.order.begin(), out.order.end(), [&](std::size_t a, std::size_t b) {
    int ra = info_of(tensors[a].dtype).reference_rank;
    int rb = info_of(tensors[b].dtype).reference_rank;
    if (ra != rb) return ra > rb;
    return tensors[a].name < tensors[b].name;
  });

  // Stored checksums are vigil's own: stale ones from a file being re-saved are replaced.
  Metadata meta;
  for (const auto& [key, value] : metadata) {
    if (!is_vigil_owned_key(key)) meta.emplace(key, value);
  }
  if (options.checksums) {
    meta.emplace(std::string(kFormatKey), "1");
    for (const auto& t : tensors) {
      meta.insert_or_assign(std::string(kChecksumKeyPrefix) + t.name,
                            checksum_hex(xxh3_64(t.data)));
    }
  }

  std::string json;
  json.reserve(64 + tensors.size() * 96 + meta.size() * 48);
  json.push_back('{');
  bool first = true;
  if (!meta.empty()) {
    json += "\"__metadata__\":{";
    bool first_entry = true;
    for (const auto& [key, value] : meta) {
      if (!first_entry) json.push_back(',');
      first_entry = false;
      append_json_string(json, key);
      json.push_back(':');
      append_json_string(json, value);
    }
    json.push_back('}');
    first = false;
  }
  std::uint64_t offset = 0;
  for (std::size_t idx : out.order) {
    const auto& t = tensors[idx];
    if (!first) json.push_back(',');
    first = false;
    append_json_string(json, t.name);
    json += ":{\"dtype\":\"";
    json += dtype_name(t.dtype);
    json += "\",\"shape\":[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (i) json.push_back(',');
      json += std::to_string(t.shape[i]);
    }
    json += "],\"data_offsets\":[";
    json += std::to_string(offset);
    json.push_back(',');
    offset += t.data.size();
    json += std::to_string(offset);
    json += "]}";
  }
  json.push_back('}');
  json.append((8 - json.size() % 8) % 8, ' ');
  if (json.size() > kMaxHeaderSize) {
    throw OptionError(fmt::format(
        "the header would be {} bytes, above the format's limit of {} (too many tensors or too "
        "much metadata)",
        json.size(), kMaxHeaderSize));
  }

  std::uint64_t n = json.size();
  out.bytes.resize(8);
  for (int i = 0; i < 8; ++i) out.bytes[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out.bytes += json;
  return out;
}

}  // namespace

namespace {

// Files of at least this many bytes are written with O_DIRECT through one reused, aligned block
// of block_bytes, bypassing the page cache: profiled on this project's 2-core VM, the kernel's
// copy into freshly allocated page-cache pages dominated a buffered save of 1 GiB (10-20 s of
// write(2) against 2-3 s with O_DIRECT; see bench/notes.md). Smaller files (state.json, small
// models) keep the page cache, so they are also cached for an immediate re-read.
constexpr std::uint64_t kDirectMinBytes = std::uint64_t{64} << 20;
// O_DIRECT wants the memory address, the file offset and the length of every write aligned to
// the device's logical block size; 4096 covers every common device.
constexpr std::size_t kDirectAlign = 4096;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};

// Turns O_DIRECT on for `fd` while it lives and off again at the end (the tail that is not a
// whole block, and anything written later, goes through the page cache).
class DirectMode {
 public:
  explicit DirectMode(int fd) : fd_(fd) {
    int flags = ::fcntl(fd_, F_GETFL);
    on_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
  }
  DirectMode(const DirectMode&) = delete;
  DirectMode& operator=(const DirectMode&) = delete;
  ~DirectMode() { off(); }
  bool on() const { return on_; }
  void off() {
    if (!on_) return;
    on_ = false;
    int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) (void)::fcntl(fd_, F_SETFL, flags & ~O_DIRECT);
  }

 private:
  int fd_;
  bool on_ = false;
};

// Writes aligned blocks with O_DIRECT on a thread of its own, so that the caller's copy into
// the next block (and its hashing) overlaps the device's write of the previous one: serial, the
// copy and the hash were about 15 % of a large save's time (bench/notes.md). Two blocks: the
// caller fills one while the writer writes the other.
class BlockWriter {
 public:
  BlockWriter(DurableFile& out, std::size_t chunk) : out_(out), chunk_(chunk) {
    for (auto& b : blocks_) {
      b.reset(static_cast<std::byte*>(std::aligned_alloc(kDirectAlign, chunk)));
      if (!b) throw std::bad_alloc();
    }
  }
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;
  ~BlockWriter() {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(mutex_);
        stopping_ = true;
      }
      changed_.notify_all();
      thread_.join();
    }
  }

  std::size_t chunk() const { return chunk_; }

  // The block the caller fills next; waits until the writer is done with it. Rethrows the
  // writer's error, if any, so a failed write stops the copying at once.
  std::byte* next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return error_ || !queued_[current_]; });
    if (error_) std::rethrow_exception(error_);
    return blocks_[current_].get();
  }

  // Hands the current block (its first n bytes) to the writer. The very first block is written
  // on the caller's thread: a file system that accepts O_DIRECT but refuses the write says so
  // there, with nothing written yet. Returns false in that case only.
  bool submit(std::size_t n) {
    if (first_) return write_here(n);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    {
      std::lock_guard lock(mutex_);
      queued_[current_] = true;
      order_[pending_++] = current_;
    }
    changed_.notify_all();
    current_ ^= 1;
    return true;
  }

  // Writes the current block's first n bytes on the caller's thread (after finish(), for the
  // last, partial block). Returns false only when this is the file's first write and the file
  // system refuses it with EINVAL (O_DIRECT not really supported): nothing was written.
  bool write_here(std::size_t n) {
    const bool was_first = std::exchange(first_, false);
    try {
      out_.write_all({blocks_[current_].get(), n});
    } catch (const IoError& e) {
      if (!was_first || e.errno_value() != EINVAL || out_.size() != 0) throw;
      return false;
    }
    return true;
  }

  // Waits until every submitted block is on its way to the device; rethrows the writer's error.
  void finish() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return error_ || (!queued_[0] && !queued_[1]); });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || pending_ > 0; });
      if (pending_ == 0) return;  // stopping, nothing left
      const int idx = order_[0];
      order_[0] = order_[1];
      --pending_;
      lock.unlock();
      std::exception_ptr error;
      try {
        out_.write_all({blocks_[idx].get(), chunk_});
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      queued_[idx] = false;
      if (error && !error_) error_ = error;
      changed_.notify_all();
      if (error_) return;
    }
  }

  DurableFile& out_;
  std::size_t chunk_;
  std::array<std::unique_ptr<std::byte, FreeDeleter>, 2> blocks_;
  int current_ = 0;
  bool first_ = true;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::array<bool, 2> queued_{false, false};
  std::array<int, 2> order_{0, 0};
  int pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// Streams header and tensors through aligned blocks written with O_DIRECT (BlockWriter).
// Returns false, having written nothing, when the file system refuses O_DIRECT (the caller then
// writes through the page cache). Feeds `hash` (if any) with the file's bytes in order.
bool write_direct(DurableFile& out, const std::string& header, std::span<const TensorView> tensors,
                  const std::vector<std::size_t>& order, std::size_t block_bytes,
                  XXH3_state_t* hash) {
  if (out.size() != 0) return false;  // offsets would not be aligned
  DirectMode direct(out.fd());
  if (!direct.on()) return false;
  const std::size_t chunk =
      std::max(kDirectAlign, (block_bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign);
  BlockWriter writer(out, chunk);
  std::byte* block = writer.next();
  std::size_t fill = 0;
  auto append = [&](std::span<const std::byte> src) {
    while (!src.empty()) {
      const std::size_t n = std::min(chunk - fill, src.size());
      std::memcpy(block + fill, src.data(), n);
      // Hashed from the block just written to, while it is still in the cache.
      if (hash != nullptr) XXH3_64bits_update(hash, block + fill, n);
      fill += n;
      src = src.subspan(n);
      if (fill == chunk) {
        if (!writer.submit(chunk)) return false;
        block = writer.next();
        fill = 0;
      }
    }
    return true;
  };
  if (!append(std::as_bytes(std::span<const char>(header.data(), header.size())))) return false;
  for (std::size_t idx : order) {
    if (!append(tensors[idx].data)) return false;
  }
  writer.finish();
  // The last aligned part and the tail go out on this thread, after every full block.
  const std::size_t aligned = fill / kDirectAlign * kDirectAlign;
  if (aligned > 0 && !writer.write_here(aligned)) return false;
  direct.off();
  if (fill > aligned) out.write_all({block + aligned, fill - aligned});
  return true;
}

}  // namespace

std::optional<std::uint64_t> write_safetensors(DurableFile& out,
                                               std::span<const TensorView> tensors,
                                               const Metadata& metadata,
                                               const SafetensorsWriteOptions& options) {
  if (options.block_bytes == 0) throw OptionError("block_bytes must be at least 1");
  auto header = prepare_header(tensors, metadata, options);
  std::uint64_t total = header.bytes.size();
  for (const auto& t : tensors) total += t.data.size();
  detail::XxhState hash;
  if (options.file_hash) hash = detail::new_xxh_state();
  auto digest = [&]() -> std::optional<std::uint64_t> {
    if (!hash) return std::nullopt;
    return XXH3_64bits_digest(hash.get());
  };
  // Only with the real file layer: a FileOps given by the caller (fault injection, sparse
  // writes in tests) sees exactly the caller's buffers, as documented for block_bytes.
  if (total >= kDirectMinBytes && options.ops == FileOps::real()) {
    if (write_direct(out, header.bytes, tensors, header.order, options.block_bytes, hash.get()))
      return digest();
    if (hash) XXH3_64bits_reset(hash.get());  // the refused first block was hashed already
  }
  auto write = [&](std::span<const std::byte> bytes) {
    out.write_all(bytes);
    if (hash) XXH3_64bits_update(hash.get(), bytes.data(), bytes.size());
  };
  write(std::as_bytes(std::span<const char>(header.bytes.data(), header.bytes.size())));
  // Through the page cache straight from the caller's memory: no staging copy.
  for (std::size_t idx : header.order) {
    auto data = tensors[idx].data;
    for (std::size_t pos = 0; pos < data.size(); pos += options.block_bytes) {
      write(data.subspan(pos, std::min(options.block_bytes, data.size() - pos)));
    }
  }
  return digest();
}

void save_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                      const Metadata& metadata, const SafetensorsWriteOptions& options) {
  // Invalid input must not even create a temporary file.
  if (options.block_bytes == 0) throw OptionError("block_bytes must be at least 1");
  (void)prepare_header(tensors, metadata, SafetensorsWriteOptions{}.with_checksums(false));
  atomic_write_file_with(
      path, [&](DurableFile& f) { write_safetensors(f, tensors, metadata, options); }, options.ops);
}

// ---------------------------------------------------------------------------------------------
// Reader

namespace {

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

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

struct RawEntry {
  std::string name;
  std::optional<DType> dtype;
  std::optional<std::vector<std::uint64_t>> shape;
  std::optional<std::vector<std::uint64_t>> offsets;
};

// Builds the tensor table straight from parser events: no JSON tree, nesting refused beyond the
// three levels the format has, duplicate keys caught (a DOM parser would keep only the last).
class HeaderSax {
 public:
  using json = nlohmann::json;

  explicit HeaderSax(const std::string& source) : source_(source) {}

  std::optional<Metadata> metadata;
  std::vector<TensorInfo> entries;

  bool null() { return scalar("null", /*is_null=*/true); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (state_ == State::InArray) {
      fail(FormatErrorKind::InvalidTensorEntry,
           fmt::format("tensor {}: {} holds the negative number {}", printable(current_.name),
                       field_name(), v));
    }
    return scalar("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::InArray) {
      array_.push_back(v);
      return true;
    }
    return scalar("a number");
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    if (state_ == State::InArray) {
      fail(FormatErrorKind::InvalidTensorEntry,
           fmt::format("tensor {}: {} holds {}, not an integer in [0, 2^64)",
                       printable(current_.name), field_name(), text.substr(0, 40)));
    }
    return scalar("a number");
  }
  bool string(json::string_t& s) {
    switch (state_) {
      case State::MetadataValue:
        metadata->emplace(std::move(key_), std::move(s));
        state_ = State::InMetadata;
        return true;
      case State::FieldValue:
        if (field_ == Field::DType) {
          current_.dtype = parse_dtype(s);
          if (!current_.dtype) {
            bool later = std::find(kUnsupportedDTypes.begin(), kUnsupportedDTypes.end(), s) !=
                         kUnsupportedDTypes.end();
            if (later) {
              fail(FormatErrorKind::UnsupportedDType,
                   fmt::format("tensor {} has dtype {}, which vigil does not support (it reads "
                               "BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, "
                               "F32, I64, U64, F64)",
                               printable(current_.name), s));
            }
            fail(FormatErrorKind::UnknownDType,
                 fmt::format("tensor {} has unknown dtype {}", printable(current_.name),
                             printable(s)));
          }
          state_ = State::InEntry;
          return true;
        }
        break;
      default:
        break;
    }
    return scalar("a string");
  }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::Start:
        state_ = State::InRoot;
        return true;
      case State::RootValue:
        if (key_ == "__metadata__") {
          metadata.emplace();
          state_ = State::InMetadata;
        } else {
          current_ = RawEntry{std::move(key_), {}, {}, {}};
          state_ = State::InEntry;
        }
        return true;
      default:
        return scalar("an object");
    }
  }
  bool key(json::string_t& k) {
    switch (state_) {
      case State::InRoot:
        if (!root_keys_.insert(k).second) {
          if (k == "__metadata__") {
            fail(FormatErrorKind::InvalidMetadata, "the header holds __metadata__ twice");
          }
          fail(FormatErrorKind::DuplicateName,
               fmt::format("tensor name {} appears twice in the header", printable(k)));
        }
        key_ = std::move(k);
        state_ = State::RootValue;
        return true;
      case State::InMetadata:
        if (metadata->contains(k)) {
          fail(FormatErrorKind::InvalidMetadata,
               fmt::format("__metadata__ holds the key {} twice", printable(k)));
        }
        key_ = std::move(k);
        state_ = State::MetadataValue;
        return true;
      case State::InEntry: {
        Field f;
        bool seen;
        if (k == "dtype") {
          f = Field::DType;
          seen = current_.dtype.has_value() || dtype_seen_;
          dtype_seen_ = true;
        } else if (k == "shape") {
          f = Field::Shape;
          seen = current_.shape.has_value();
        } else if (k == "data_offsets") {
          f = Field::Offsets;
          seen = current_.offsets.has_value();
        } else {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has the unexpected field {} (only dtype, shape and "
                           "data_offsets are allowed)",
                           printable(current_.name), printable(k)));
        }
        if (seen) {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has the field {} twice", printable(current_.name), k));
        }
        field_ = f;
        state_ = State::FieldValue;
        return true;
      }
      default:
        return scalar("a key");  // unreachable: keys only occur inside objects
    }
  }
  bool end_object() {
    switch (state_) {
      case State::InRoot:
        state_ = State::Done;
        return true;
      case State::InMetadata:
        state_ = State::InRoot;
        return true;
      case State::InEntry: {
        const char* missing = !dtype_seen_        ? "dtype"
                              : !current_.shape   ? "shape"
                              : !current_.offsets ? "data_offsets"
                                                  : nullptr;
        if (missing) {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has no {} field", printable(current_.name), missing));
        }
        entries.push_back(TensorInfo{std::move(current_.name), *current_.dtype,
                                     std::move(*current_.shape), (*current_.offsets)[0],
                                     (*current_.offsets)[1]});
        current_ = RawEntry{};
        dtype_seen_ = false;
        state_ = State::InRoot;
        return true;
      }
      default:
        return scalar("the end of an object");  // unreachable for well-formed event streams
    }
  }
  bool start_array(std::size_t) {
    if (state_ == State::FieldValue && field_ != Field::DType) {
      array_.clear();
      state_ = State::InArray;
      return true;
    }
    return scalar("an array");
  }
  bool end_array() {
    if (state_ != State::InArray) return scalar("the end of an array");
    if (field_ == Field::Shape) {
      current_.shape = std::move(array_);
    } else {
      if (array_.size() != 2) {
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: data_offsets has {} numbers instead of 2 [begin, end]",
                         printable(current_.name), array_.size()));
      }
      current_.offsets = std::move(array_);
    }
    array_ = {};
    state_ = State::InEntry;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // nlohmann's message already names the byte position; keep just its explanation.
    std::string what = e.what();
    auto colon = what.find("parse error");
    if (colon != std::string::npos) what = what.substr(colon);
    fail(FormatErrorKind::InvalidJson,
         fmt::format("{}: the header is not valid JSON near byte {}: {}", source_, position, what));
  }

 private:
  enum class State {
    Start,          // before the root value
    InRoot,         // expecting a key of the root object or its end
    RootValue,      // after a root key
    InMetadata,     // inside __metadata__
    MetadataValue,  // after a metadata key
    InEntry,        // inside a tensor entry
    FieldValue,     // after dtype/shape/data_offsets
    InArray,        // inside shape or data_offsets
    Done,
  };
  enum class Field { DType, Shape, Offsets };

  const char* field_name() const { return field_ == Field::Shape ? "shape" : "data_offsets"; }

  [[noreturn]] void fail(FormatErrorKind kind, const std::string& msg) {
    if (msg.starts_with(source_ + ":")) throw FormatError(kind, msg);
    throw FormatError(kind, source_ + ": " + msg);
  }

  // Any value that the current position does not allow.
  bool scalar(const char* what, bool is_null = false) {
    switch (state_) {
      case State::Start:
        fail(FormatErrorKind::NotAnObject,
             fmt::format("the header is {}, not a JSON object", what));
      case State::RootValue:
        if (key_ == "__metadata__") {
          if (is_null) {  // the reference reads `"__metadata__": null` as "no metadata"
            state_ = State::InRoot;
            return true;
          }
          fail(FormatErrorKind::InvalidMetadata,
               fmt::format("__metadata__ is {}, not an object of strings", what));
        }
        fail(FormatErrorKind::NotAnObject,
             fmt::format("tensor {} is {}, not an object", printable(key_), what));
      case State::MetadataValue:
        fail(FormatErrorKind::InvalidMetadata,
             fmt::format("__metadata__ value of {} is {}, not a string", printable(key_), what));
      case State::FieldValue:
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: {} is {}", printable(current_.name),
                         field_ == Field::DType ? "dtype" : field_name(),
                         field_ == Field::DType ? std::string(what) + ", not a string"
                                                : std::string(what) + ", not an array"));
      case State::InArray:
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: {} holds {}, not an integer", printable(current_.name),
                         field_name(), what));
      default:
        fail(FormatErrorKind::InvalidJson, fmt::format("unexpected {} in the header", what));
    }
  }

  std::string source_;
  State state_ = State::Start;
  Field field_ = Field::DType;
  std::string key_;
  RawEntry current_;
  bool dtype_seen_ = false;
  std::vector<std::uint64_t> array_;
  std::unordered_set<std::string> root_keys_;
};

}  // namespace

struct SafetensorsFile::Impl {
  std::string source;                // the path, or "<memory>", for messages
  std::unique_ptr<Fd> fd;            // the open file (null for from_bytes()), for hashing
  std::unique_ptr<Mapping> mapping;  // null for from_bytes()
  std::span<const std::byte> bytes;  // the whole file
  std::uint64_t data_start = 0;      // 8 + header length
  Metadata metadata;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string_view, std::size_t> index;  // keys point into tensors[i].name
  std::vector<std::optional<std::uint64_t>> checksums;      // parallel to tensors
  bool has_checksums = false;

  void parse(const SafetensorsReadOptions& options);
  void verify() const;
  std::uint64_t hash_of(const TensorInfo& t, std::span<std::byte> buffer,
                        XXH3_state_t* state) const;
  std::span<const std::byte> data_of(const TensorInfo& t) const {
    return bytes.subspan(data_start + t.begin, t.size());
  }
  [[noreturn]] void fail(FormatErrorKind kind, const std::string& msg) const {
    throw FormatError(kind, source + ": " + msg);
  }
};

void SafetensorsFile::Impl::parse(const SafetensorsReadOptions& options) {
  const std::uint64_t file_len = bytes.size();
  if (file_len < 8) {
    fail(FormatErrorKind::FileTooSmall,
         fmt::format("the file has {} bytes, fewer than the 8-byte header length", file_len));
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  if (n > kMaxHeaderSize) {
    fail(FormatErrorKind::HeaderTooLarge,
         fmt::format("the header length is {} bytes, above the limit of {}", n, kMaxHeaderSize));
  }
  // n <= 1e8, so 8 + n cannot overflow; the check against the file size is what matters.
  if (8 + n > file_len) {
    fail(FormatErrorKind::HeaderOutOfBounds,
         fmt::format("the header length is {} bytes but only {} bytes follow it", n, file_len - 8));
  }
  const auto* header = reinterpret_cast<const char*>(bytes.data()) + 8;
  std::size_t valid =
      utf8_valid_prefix(reinterpret_cast<const unsigned char*>(header), static_cast<size_t>(n));
  if (valid != n) {
    fail(FormatErrorKind::InvalidUtf8,
         fmt::format("the header is not valid UTF-8 (bad byte at header offset {})", valid));
  }

  HeaderSax sax(source);
  try {
    nlohmann::json::sax_parse(header, header + n, &sax);
  } catch (const FormatError&) {
    throw;
  } catch (const std::exception& e) {
    fail(FormatErrorKind::InvalidJson, fmt::format("the header is not valid JSON: {}", e.what()));
  }

  // The reference sorts by data_offsets before validating, so any JSON order is allowed.
  auto& raw = sax.entries;
  std::sort(raw.begin(), raw.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  std::uint64_t start = 0;
  tensors.reserve(raw.size());
  for (auto& e : raw) {
    std::uint64_t b = e.begin, end = e.end;
    if (b != start) {
      fail(FormatErrorKind::InvalidOffsets,
           fmt::format("tensor {} has data_offsets [{}, {}] but should begin at {} (tensors "
                       "must be contiguous, without gaps or overlaps, starting at 0)",
                       printable(e.name), b, end, start));
    }
    if (end < b) {
      fail(FormatErrorKind::InvalidOffsets,
           fmt::format("tensor {} has data_offsets [{}, {}] that end before they begin",
                       printable(e.name), b, end));
    }
    auto nbytes = checked_nbytes(e.shape, dtype_size(e.dtype));
    if (!nbytes) {
      fail(FormatErrorKind::ElementCountOverflow,
           fmt::format("tensor {}: shape {} of {} overflows 64 bits", printable(e.name),
                       shape_text(e.shape), dtype_name(e.dtype)));
    }
    if (*nbytes != end - b) {
      fail(FormatErrorKind::SizeMismatch,
           fmt::format("tensor {}: shape {} of {} needs {} bytes but data_offsets [{}, {}] span "
                       "{} bytes",
                       printable(e.name), shape_text(e.shape), dtype_name(e.dtype), *nbytes, b, end,
                       end - b));
    }
    start = end;
    tensors.push_back(std::move(e));
  }
  data_start = 8 + n;
  const std::uint64_t data_len = file_len - data_start;
  if (start != data_len) {
    fail(FormatErrorKind::TrailingBytes,
         start < data_len
             ? fmt::format("the tensors end at data byte {} but the file has {} data bytes ({} "
                           "trailing bytes)",
                           start, data_len, data_len - start)
             : fmt::format("the tensors need {} data bytes but the file has only {} (truncated)",
                           start, data_len));
  }
  if (sax.metadata) metadata = std::move(*sax.metadata);

  index.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) index.emplace(tensors[i].name, i);

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
    auto h = parse_checksum_hex(value);
    if (!h) {
      fail(FormatErrorKind::InvalidChecksum,
           fmt::format("the checksum of tensor {} is {}, not 16 lowercase hex digits",
                       printable(name), printable(value)));
    }
    checksums[it->second] = *h;
    has_checksums = true;
  }
  if (has_checksums) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (!checksums[i]) {
        fail(FormatErrorKind::InvalidChecksum,
             fmt::format("tensor {} has no stored checksum although the others have one",
                         printable(tensors[i].name)));
      }
    }
  }
  if (options.verify_checksums && has_checksums) verify();
}

// Hashing a file-backed tensor reads it with pread() into a small reused buffer instead of
// walking the mapping: profiled on a 1 GiB file in the page cache (a paravirtualized 2-core VM),
// hashing through the mapping took 2.3-3.3 s (page faults, then a TLB miss every 4 KiB page),
// pread()+hash 0.9-1.2 s. The kernel's copy goes through its own large-page map of memory and the
// buffer stays in cache. The bytes are the same page-cache pages the mapping shows.
std::uint64_t SafetensorsFile::Impl::hash_of(const TensorInfo& t, std::span<std::byte> buffer,
                                             XXH3_state_t* state) const {
  if (!fd || t.size() == 0) return xxh3_64(data_of(t));
  XXH3_64bits_reset(state);
  std::uint64_t pos = data_start + t.begin;
  std::uint64_t left = t.size();
  while (left > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
    ssize_t n = ::pread(fd->get(), buffer.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      throw IoError(
          fmt::format("{}: cannot read tensor {} at byte {} to verify it: {}", source,
                      printable(t.name), pos, n < 0 ? std::strerror(err) : "the file got shorter"),
          err);
    }
    XXH3_64bits_update(state, buffer.data(), static_cast<std::size_t>(n));
    pos += static_cast<std::uint64_t>(n);
    left -= static_cast<std::uint64_t>(n);
  }
  return XXH3_64bits_digest(state);
}

void SafetensorsFile::Impl::verify() const {
  // One block reused for the whole file (in cache, no page fault per block).
  constexpr std::size_t kBlock = std::size_t{1} << 20;
  std::unique_ptr<std::byte[]> buffer;
  if (fd) buffer = std::make_unique_for_overwrite<std::byte[]>(kBlock);
  auto state = detail::new_xxh_state();
  // Tensors lie in offset order, so this is one sequential pass: let readahead run far ahead.
  if (fd) (void)::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!checksums[i]) continue;
    auto got = hash_of(tensors[i], {buffer.get(), buffer ? kBlock : 0}, state.get());
    if (got != *checksums[i]) {
      fail(FormatErrorKind::ChecksumMismatch,
           fmt::format("tensor {} is corrupt: stored checksum {} but its data hashes to {}",
                       printable(tensors[i].name), checksum_hex(*checksums[i]), checksum_hex(got)));
    }
  }
  // Callers then read tensors in whatever order they like.
  if (fd) (void)::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_NORMAL);
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path,
                                      const SafetensorsReadOptions& options) {
  // O_NONBLOCK so that a FIFO given by mistake (or malice) cannot hang the open.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    throw IoError(fmt::format("cannot open {}: {}", path.string(), std::strerror(err)), err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    int err = errno;
    throw IoError(fmt::format("cannot stat {}: {}", path.string(), std::strerror(err)), err);
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
      throw IoError(fmt::format("cannot memory-map {} ({} bytes): {}", path.string(), size,
                                std::strerror(err)),
                    err);
    }
    impl->mapping = std::make_unique<Mapping>(addr, size);
    impl->bytes = impl->mapping->bytes();
  }
  impl->fd = std::make_unique<Fd>(fd.release());
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

void SafetensorsFile::verify_checksums() const {
  impl_->verify();
}

std::uint64_t SafetensorsFile::file_size() const {
  return impl_->bytes.size();
}

}  // namespace vigil
