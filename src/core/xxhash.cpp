// XXH3-64 through Debian's libxxhash, kept in one file so no other source needs its header.
#include <xxhash.h>

#include "vigil/safetensors.hpp"

namespace vigil {

std::uint64_t xxh3_64(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

}  // namespace vigil
