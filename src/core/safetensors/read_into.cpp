// One-pass verified reading: tensors go straight from the file into the caller's memory, and each
// block is hashed right after it arrives, while it is still in cache, instead of hashing the file
// once and copying it a second time.
#include <fcntl.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <thread>

#include <fmt/core.h>

#include "safetensors/file_impl.hpp"
#include "safetensors/format.hpp"
#include "vigil/safetensors.hpp"
#include "xxh_state.hpp"

namespace vigil {

namespace {

using Impl = SafetensorsFile::Impl;
using detail::printable;

// Large enough that one pread() per block costs nothing next to its copy, small enough that the
// few blocks the reader may run ahead of the hasher stay in the last-level cache.
constexpr std::size_t kBlock = std::size_t{4} << 20;
constexpr std::size_t kAhead = 4;

enum class Check : std::uint8_t { None, Tensors, WholeFile };

struct Block {
  std::size_t tensor = 0;  // index into the file's tensors
  std::uint64_t pos = 0;   // offset in the file
  std::byte* dst = nullptr;
  bool scratch = false;  // read into a scratch slot (a tensor without destination)
  std::size_t size = 0;
  bool first = false;  // the first block of its tensor
  bool last = false;   // the last block of its tensor
};

// The blocks to read, in file order: every tensor when `all`, else those with a destination.
std::vector<Block> plan_blocks(const Impl& f, const std::vector<std::byte*>& dst_of,
                               const std::vector<char>& wanted, bool all) {
  std::vector<Block> out;
  for (std::size_t i = 0; i < f.tensors.size(); ++i) {
    if (!all && !wanted[i]) continue;
    const auto& t = f.tensors[i];
    const std::uint64_t size = t.size();
    std::uint64_t off = 0;
    do {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size - off, kBlock));
      Block b;
      b.tensor = i;
      b.pos = f.data_start + t.begin + off;
      b.scratch = !wanted[i];
      b.dst = wanted[i] && n > 0 ? dst_of[i] + off : nullptr;
      b.size = n;
      b.first = off == 0;
      b.last = off + n == size;
      out.push_back(b);
      off += n;
    } while (off < size);
  }
  return out;
}

// Hashes blocks in file order and checks what was asked for.
class Hasher {
 public:
  Hasher(const Impl& f, Check check, std::optional<std::uint64_t> expected)
      : f_(f), check_(check), expected_(expected), state_(detail::new_xxh_state()) {
    // The whole-file hash starts with the length prefix and the header.
    if (check_ == Check::WholeFile) update(f_.bytes.data(), f_.data_start);
  }

  // Throws FormatError when `b` ends a tensor whose stored checksum differs.
  void add(const Block& b, const std::byte* data) {
    if (check_ == Check::Tensors && b.first) XXH3_64bits_reset(state_.get());
    update(data, b.size);
    if (check_ != Check::Tensors || !b.last) return;
    const auto got = XXH3_64bits_digest(state_.get());
    const auto want = *f_.checksums[b.tensor];
    if (got != want)
      f_.fail(FormatErrorKind::ChecksumMismatch,
              fmt::format("tensor {} is corrupt: stored checksum {} but its data hashes to {}",
                          printable(f_.tensors[b.tensor].name), detail::checksum_hex(want),
                          detail::checksum_hex(got)));
  }

  void finish() const {
    if (check_ != Check::WholeFile) return;
    const auto got = XXH3_64bits_digest(state_.get());
    if (got != *expected_)
      f_.fail(FormatErrorKind::ChecksumMismatch,
              fmt::format("the file is corrupt: its XXH3-64 should be {} but its bytes hash to {}",
                          detail::checksum_hex(*expected_), detail::checksum_hex(got)));
  }

 private:
  void update(const std::byte* data, std::size_t n) {
    if (check_ != Check::None && n > 0) XXH3_64bits_update(state_.get(), data, n);
  }

  const Impl& f_;
  Check check_;
  std::optional<std::uint64_t> expected_;
  detail::XxhState state_;
};

class BlockReader {
 public:
  BlockReader(const Impl& f, const std::vector<Block>& blocks, std::size_t slots)
      : f_(f), blocks_(blocks) {
    const bool any_scratch =
        f.fd && std::any_of(blocks.begin(), blocks.end(), [](const Block& b) { return b.scratch; });
    if (any_scratch) {
      scratch_ = std::make_unique_for_overwrite<std::byte[]>(slots * kBlock);
      slots_ = slots;
    }
  }

  // Where block k's bytes go: its destination, or a scratch slot that block k + slots reuses
  // (for an image in memory, the image itself: nothing to copy).
  const std::byte* memory(std::size_t k) const {
    const auto& b = blocks_[k];
    if (!b.scratch) return b.dst;
    if (!f_.fd) return f_.bytes.data() + b.pos;
    return scratch_.get() + (k % slots_) * kBlock;
  }

  // From a file, pread() rather than the mapping: profiled on a 1 GiB file in the page cache
  // (this paravirtualized 2-core VM), hashing through the mapping took 2.3-3.3 s (page faults,
  // then a TLB miss every 4 KiB page), pread()+hash 0.9-1.2 s.
  void read(std::size_t k) const {
    const auto& b = blocks_[k];
    if (b.size == 0 || (b.scratch && !f_.fd)) return;
    std::byte* into = b.scratch ? scratch_.get() + (k % slots_) * kBlock : b.dst;
    f_.read_at(b.pos, {into, b.size},
               fmt::format("tensor {}", printable(f_.tensors[b.tensor].name)));
  }

 private:
  const Impl& f_;
  const std::vector<Block>& blocks_;
  std::unique_ptr<std::byte[]> scratch_;
  std::size_t slots_ = 1;
};

void run_serial(const std::vector<Block>& blocks, const BlockReader& reader, Hasher& hasher) {
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    reader.read(k);
    hasher.add(blocks[k], reader.memory(k));
  }
}

// A reader thread runs at most kAhead blocks ahead of the hashing (calling) thread: `produced`
// and `consumed` count blocks; `stop` tells either side that the other gave up.
void run_parallel(const std::vector<Block>& blocks, const BlockReader& reader, Hasher& hasher) {
  std::atomic<std::size_t> produced{0};
  std::atomic<std::size_t> consumed{0};
  std::atomic<bool> stop{false};
  std::exception_ptr read_error;
  {
    std::jthread thread([&] {
      try {
        for (std::size_t k = 0; k < blocks.size(); ++k) {
          for (;;) {
            const auto c = consumed.load();
            if (stop.load()) return;
            if (k < c + kAhead) break;
            consumed.wait(c);
          }
          reader.read(k);
          produced.store(k + 1);
          produced.notify_one();
        }
      } catch (...) {
        read_error = std::current_exception();
        stop.store(true);
        produced.fetch_add(1);
        produced.notify_one();
      }
    });
    try {
      for (std::size_t k = 0; k < blocks.size(); ++k) {
        for (;;) {
          const auto p = produced.load();
          if (stop.load()) break;
          if (p > k) break;
          produced.wait(p);
        }
        if (stop.load()) break;
        hasher.add(blocks[k], reader.memory(k));
        consumed.store(k + 1);
        consumed.notify_one();
      }
    } catch (...) {
      stop.store(true);
      consumed.fetch_add(1);
      consumed.notify_one();
      throw;
    }
  }
  if (read_error) std::rethrow_exception(read_error);
}

// Reads (into the destinations, or scratch) and checks what `check` asks for, in one pass.
void run_pass(const Impl& f, const std::vector<std::byte*>& dst_of, const std::vector<char>& wanted,
              Check check, std::optional<std::uint64_t> expected, bool parallel_allowed) {
  const auto blocks = plan_blocks(f, dst_of, wanted, check != Check::None);
  // With nothing to hash there is nothing to overlap; a small file is not worth a thread.
  const bool parallel = parallel_allowed && check != Check::None && blocks.size() > 2;
  const BlockReader reader(f, blocks, parallel ? kAhead : 1);
  Hasher hasher(f, check, expected);
  // One sequential pass: let readahead run far ahead of a cold read.
  if (f.fd) (void)::posix_fadvise(f.fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  if (parallel)
    run_parallel(blocks, reader, hasher);
  else
    run_serial(blocks, reader, hasher);
  if (f.fd) (void)::posix_fadvise(f.fd.get(), 0, 0, POSIX_FADV_NORMAL);
  hasher.finish();
}

}  // namespace

void SafetensorsFile::read_into(std::span<const TensorDestination> destinations,
                                const ReadIntoOptions& options) const {
  const Impl& f = *impl_;
  std::vector<std::byte*> dst_of(f.tensors.size(), nullptr);
  std::vector<char> wanted(f.tensors.size(), 0);
  for (const auto& d : destinations) {
    const auto it = f.index.find(d.name);
    if (it == f.index.end()) {
      (void)view(d.name);  // throws, naming the tensors the file has
      continue;
    }
    const auto& t = f.tensors[it->second];
    if (wanted[it->second])
      throw OptionError(
          fmt::format("{}: tensor {} is given two destinations", f.source, printable(d.name)));
    if (d.bytes.size() != t.size())
      throw OptionError(fmt::format("{}: tensor {} has {} bytes but its destination holds {}",
                                    f.source, printable(d.name), t.size(), d.bytes.size()));
    wanted[it->second] = 1;
    dst_of[it->second] = d.bytes.data();
  }
  Check check = Check::None;
  if (options.file_xxh3)
    check = Check::WholeFile;
  else if (options.verify_checksums && f.has_checksums && !f.verified)
    check = Check::Tensors;
  run_pass(f, dst_of, wanted, check, options.file_xxh3, options.parallel);
  if (check == Check::Tensors) f.verified = true;
}

// Verifying alone is the same pass with no destination: every tensor through the scratch slots.
void SafetensorsFile::Impl::verify() const {
  run_pass(*this, std::vector<std::byte*>(tensors.size(), nullptr),
           std::vector<char>(tensors.size(), 0), Check::Tensors, std::nullopt, true);
  verified = true;
}

}  // namespace vigil
