// The writer's fast path for large files: header and tensors streamed through aligned blocks
// written with O_DIRECT (not part of the public API).
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vigil/io.hpp"
#include "vigil/safetensors.hpp"

namespace vigil::detail {

// Files of at least this many bytes are written with O_DIRECT through one reused, aligned block
// of block_bytes, bypassing the page cache: profiled on this project's 2-core VM, the kernel's
// copy into freshly allocated page-cache pages dominated a buffered save of 1 GiB (10-20 s of
// write(2) against 2-3 s with O_DIRECT; see bench/notes.md). Smaller files (state.json, small
// models) keep the page cache, so they are also cached for an immediate re-read.
inline constexpr std::uint64_t kDirectMinBytes = std::uint64_t{64} << 20;

/// Writes `header` then tensors[order[0]], tensors[order[1]], ... into the empty file `out`
/// through aligned blocks of about `block_bytes`. Returns false, having written nothing, when
/// the file system refuses O_DIRECT (the caller then writes through the page cache). Feeds
/// `hash` (if not null) with the file's bytes in order. Throws IoError for a failed write.
[[nodiscard]] bool write_direct(DurableFile& out, const std::string& header,
                                std::span<const TensorView> tensors,
                                const std::vector<std::size_t>& order, std::size_t block_bytes,
                                XXH3_state_t* hash);

}  // namespace vigil::detail
