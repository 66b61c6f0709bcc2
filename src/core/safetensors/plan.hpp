// Planning a safetensors file whose tensors' checksums are already known (private to the core).
#pragma once

#include <cstdint>
#include <span>

#include "vigil/safetensors.hpp"

namespace vigil::detail {

/// plan_safetensors(tensors, metadata) with checksums, each tensor's XXH3-64 taken from `xxh3`
/// (xxh3[i] belongs to tensors[i], as a verified file's header records it) instead of hashed. A
/// wrong value makes a file whose reader reports that tensor as corrupt. Throws OptionError when
/// the counts differ, and for invalid input as plan_safetensors() does.
[[nodiscard]] SafetensorsPlan plan_with_checksums(std::span<const TensorView> tensors,
                                                  std::span<const std::uint64_t> xxh3,
                                                  const Metadata& metadata);

}  // namespace vigil::detail
