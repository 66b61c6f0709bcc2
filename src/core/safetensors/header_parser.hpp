// The safetensors reader's first step: the header of a file image parsed and validated like the
// reference's read_metadata()/Metadata::validate() (not part of the public API).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vigil/safetensors.hpp"

namespace vigil::detail {

/// A file's validated layout: every number in it has been checked against the file's size.
struct ParsedHeader {
  std::uint64_t data_start = 0;     // 8 + header length
  Metadata metadata;                // `__metadata__`, empty if absent or null
  std::vector<TensorInfo> tensors;  // in file order, contiguous from 0 to the end of the file
};

/// Parses and validates the header of the whole file image `file`, before anything sized by the
/// file is allocated. Throws FormatError; its message starts with `source` (the path, for users).
[[nodiscard]] ParsedHeader parse_header(std::span<const std::byte> file, const std::string& source);

}  // namespace vigil::detail
