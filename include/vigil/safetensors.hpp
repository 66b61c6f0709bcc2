// The safetensors tensor-file format: a byte-compatible writer and a strict, memory-mapped
// reader, with vigil's per-tensor XXH3-64 checksums kept inside `__metadata__`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/io.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// Element types of the safetensors format (the reference's names via dtype_name()).
// clang-format off
enum class DType : std::uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64
};
// clang-format on

/// "F32", "BF16", ... as the safetensors reference spells them.
[[nodiscard]] std::string_view dtype_name(DType dtype);
/// Parses a reference dtype name; nullopt if unknown.
[[nodiscard]] std::optional<DType> parse_dtype(std::string_view name);
/// Bytes per element.
[[nodiscard]] std::size_t dtype_size(DType dtype);

/// A named, non-owning view of one tensor's bytes: row-major, little-endian, contiguous.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;  ///< empty = scalar (one element)
  std::span<const std::byte> data;   ///< exactly dtype_size * product(shape) bytes
};

/// The `__metadata__` map: strings to strings.
using Metadata = std::map<std::string, std::string>;

/// Metadata keys vigil adds; plain safetensors readers ignore them.
inline constexpr std::string_view kChecksumKeyPrefix = "vigil.xxh3:";  ///< + tensor name -> 16 hex
inline constexpr std::string_view kFormatKey = "vigil.format";         ///< "1"

/// Options of the writer.
struct SafetensorsWriteOptions {
  /// Store each tensor's XXH3-64 in `__metadata__` (default true).
  bool checksums = true;
  /// Largest single write; data is streamed from the caller's memory, never copied whole
  /// (default 8 MiB).
  std::size_t block_bytes = std::size_t{8} << 20;
  /// The file layer (tests inject faults through it).
  std::shared_ptr<FileOps> ops = FileOps::real();
  /// Also compute the XXH3-64 of the whole file, as the bytes go out (no second read); returned
  /// by write_safetensors (default false).
  bool file_hash = false;

  VIGIL_SETTER(checksums)
  VIGIL_SETTER(block_bytes)
  VIGIL_SETTER(ops)
  VIGIL_SETTER(file_hash)
};

/// Writes a complete safetensors file into `out` (header then data in the reference order:
/// dtype alignment largest first, then name). Does not sync or close `out`. vigil's own keys
/// in `metadata` (kChecksumKeyPrefix..., kFormatKey) are replaced by fresh ones, or dropped when
/// checksums are off, so re-saving a file read back never carries stale checksums.
/// Throws OptionError for invalid input (duplicate names, data size not matching the shape).
/// Returns the whole file's XXH3-64 when options.file_hash is set, else nothing.
[[nodiscard]] std::optional<std::uint64_t> write_safetensors(
    DurableFile& out, std::span<const TensorView> tensors, const Metadata& metadata = {},
    const SafetensorsWriteOptions& options = {});

/// A safetensors file planned in memory: the exact header write_safetensors() would write and
/// the file's size, computed without writing anything (with checksums, every tensor is hashed
/// once here). Two files with checksums and equal headers hold equal data, up to XXH3-64
/// collisions: that is how a checkpoint finds a committed file it can share rather than write.
struct SafetensorsPlan {
  std::string header;              ///< 8-byte length, JSON and padding: the file's first bytes
  std::vector<std::size_t> order;  ///< indices of the planned tensors, in file order
  std::uint64_t file_bytes = 0;    ///< the whole file's size
  bool checksums = false;          ///< the header holds every tensor's XXH3-64
};

/// Plans the file write_safetensors(out, tensors, metadata, options) writes. Throws OptionError
/// for invalid input, as write_safetensors does.
[[nodiscard]] SafetensorsPlan plan_safetensors(std::span<const TensorView> tensors,
                                               const Metadata& metadata = {},
                                               const SafetensorsWriteOptions& options = {});

/// write_safetensors() of a plan made from these same tensors (with the same options): the
/// tensors are not hashed again. Throws OptionError if the plan is of other tensors.
[[nodiscard]] std::optional<std::uint64_t> write_planned_safetensors(
    DurableFile& out, std::span<const TensorView> tensors, const SafetensorsPlan& plan,
    const SafetensorsWriteOptions& options = {});

/// Writes `path` atomically and durably (temporary name, fsync, rename, fsync of the folder).
void save_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                      const Metadata& metadata = {}, const SafetensorsWriteOptions& options = {});

/// Where one tensor lies in a file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;  ///< data_offsets[0], relative to the start of the data section
  std::uint64_t end = 0;    ///< data_offsets[1]
  [[nodiscard]] std::uint64_t size() const { return end - begin; }
};

/// Options of the reader.
struct SafetensorsReadOptions {
  /// Check every tensor's stored XXH3-64 while opening (default true). Files without vigil
  /// checksums (from other writers) open fine either way.
  bool verify_checksums = true;
  VIGIL_SETTER(verify_checksums)
};

/// Where SafetensorsFile::read_into() puts one tensor's bytes.
struct TensorDestination {
  std::string_view name;       ///< a tensor of the file
  std::span<std::byte> bytes;  ///< exactly that tensor's size; destinations must not overlap
};

/// Options of SafetensorsFile::read_into().
struct ReadIntoOptions {
  /// The whole file's expected XXH3-64, as a checkpoint's state.json records it (default none).
  /// When set it is checked instead of the per-tensor checksums: it covers every byte, the
  /// header included.
  std::optional<std::uint64_t> file_xxh3;
  /// Check every tensor's stored XXH3-64 as it is read when file_xxh3 is not set (default true;
  /// a file without vigil checksums is read unchecked). Skipped for a file whose checksums were
  /// already verified (checksums_verified()).
  bool verify_checksums = true;
  /// Read on a second thread while this one hashes what was just read, still in cache (default
  /// true); false does both in turn on the calling thread.
  bool parallel = true;

  VIGIL_SETTER(file_xxh3)
  VIGIL_SETTER(verify_checksums)
  VIGIL_SETTER(parallel)
};

/// An opened, validated tensor file. Views stay valid while the object lives.
class SafetensorsFile {
 public:
  /// Memory-maps and validates `path`. Throws FormatError (malformed), IoError (cannot read).
  [[nodiscard]] static SafetensorsFile open(const std::filesystem::path& path,
                                            const SafetensorsReadOptions& options = {});
  /// Validates a file image held by the caller (no copy; `bytes` must outlive the object).
  [[nodiscard]] static SafetensorsFile from_bytes(std::span<const std::byte> bytes,
                                                  const SafetensorsReadOptions& options = {});

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  [[nodiscard]] const Metadata& metadata() const;
  /// Tensors in file order.
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const;
  /// nullptr if there is no tensor of that name.
  [[nodiscard]] const TensorInfo* find(std::string_view name) const;
  /// Zero-copy view; throws Error naming the tensor and the ones that exist if it is missing.
  [[nodiscard]] TensorView view(std::string_view name) const;
  /// Copies a tensor's bytes into `dst` (its size must match exactly).
  void copy_to(std::string_view name, std::span<std::byte> dst) const;
  /// True if the file carries vigil checksums.
  [[nodiscard]] bool has_checksums() const;
  /// Checks every stored checksum now; throws FormatError(ChecksumMismatch) naming the tensor.
  void verify_checksums() const;
  /// True once every stored checksum matched (when opened with verify_checksums, or after
  /// verify_checksums()); false for a file without checksums.
  [[nodiscard]] bool checksums_verified() const;
  /// Reads the named tensors straight from the file into `destinations` in one pass (no
  /// mapping, no second read): each block is hashed right after it is read, while it is still
  /// in cache, on a second thread. Every checksum options ask for is checked, so the whole file
  /// is read: tensors without a destination go through a small buffer. Throws Error for an
  /// unknown name (naming the file's), OptionError for a name given twice or a destination of the
  /// wrong size (before reading anything), IoError if the file cannot be read, and
  /// FormatError(ChecksumMismatch) naming the corrupt tensor (or the file, with file_xxh3) after
  /// the reads: then the destinations hold bytes that failed the check and must not be used.
  void read_into(std::span<const TensorDestination> destinations,
                 const ReadIntoOptions& options = {}) const;
  /// Size of the whole file in bytes.
  [[nodiscard]] std::uint64_t file_size() const;

  /// The library's state of an opened file (defined inside the library only).
  struct Impl;

 private:
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// XXH3-64 of a byte span (the checksum vigil stores).
[[nodiscard]] std::uint64_t xxh3_64(std::span<const std::byte> bytes);

}  // namespace vigil
