// The O_DIRECT block writer: aligned blocks, filled by the caller and written on a thread of
// their own, with a fallback to the page cache where the file system refuses O_DIRECT.
#include "safetensors/block_writer.hpp"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <utility>

namespace vigil::detail {

namespace {

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

}  // namespace

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

}  // namespace vigil::detail
