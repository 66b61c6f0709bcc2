// What the safetensors writer and reader share: the format's limits, the dtype table, UTF-8
// validation, JSON string escaping and vigil's checksum spelling (not part of the public API).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/safetensors.hpp"

namespace vigil::detail {

/// The reference's bound on the JSON header's length, in bytes.
inline constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

/// One row of the dtype table.
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
  // Position in the reference's `Dtype` enum, which is ordered by alignment; the writer sorts
  // by it, largest first.
  int reference_rank;
};

/// The table row of `dtype`; throws OptionError for a value outside the enum.
const DTypeInfo& dtype_info(DType dtype);

/// True for a dtype the reference added after the 15 vigil reads (sub-byte floats, complex), so
/// that the error can say "not supported" instead of "unknown".
bool is_later_reference_dtype(std::string_view name);

/// The length of the valid UTF-8 prefix of s[0, n) (== n when all of it is valid). Follows the
/// Unicode definition Rust's from_utf8 uses: no overlongs, no surrogates, nothing above U+10FFFF.
std::size_t utf8_valid_prefix(const unsigned char* s, std::size_t n);
bool is_utf8(std::string_view s);

/// Appends `s` as a JSON string exactly as serde_json writes it (the reference's header writer).
void append_json_string(std::string& out, std::string_view s);

/// A printable form of a tensor name for error messages (names may hold control characters).
std::string printable(std::string_view s);

/// True for the metadata keys vigil writes itself (checksums and the format version).
bool is_vigil_owned_key(std::string_view key);

/// A stored checksum: 16 lowercase hex digits.
std::string checksum_hex(std::uint64_t h);
/// The value of 16 lowercase hex digits; nullopt for anything else.
std::optional<std::uint64_t> parse_checksum_hex(std::string_view s);

/// product(shape) * element size, or nullopt on 64-bit overflow.
std::optional<std::uint64_t> checked_nbytes(const std::vector<std::uint64_t>& shape,
                                            std::size_t elem);

/// "[2, 3]" for messages.
std::string shape_text(const std::vector<std::uint64_t>& shape);

}  // namespace vigil::detail
