// Background saves. The snapshot copy is taken outside the lock (it can be large), which is
// safe because the worker only touches a snapshot after has_waiting_ hands it over.
#include "vigil/async_saver.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

#include <fmt/core.h>

#include "detail/save_point.hpp"
#include "detail/stream_copy.hpp"
#include "vigil/error.hpp"

namespace vigil {

namespace {

constexpr std::size_t kTensorAlign = 64;
constexpr std::size_t kHugePage = std::size_t{2} << 20;
// From this size a snapshot is far larger than any cache, so its bytes are streamed into the
// arena around the cache (detail::stream_copy); a smaller one is copied through the cache,
// where the writer thread then finds it.
constexpr std::size_t kStreamFrom = std::size_t{64} << 20;

std::size_t align_up(std::size_t n, std::size_t a) {
  return (n + a - 1) / a * a;
}

}  // namespace

void TensorSnapshot::Unmap::operator()(std::byte* p) const noexcept {
  if (p != nullptr) ::munmap(p, length);
}

std::size_t TensorSnapshot::bytes_for(const SaveRequest& request) {
  std::size_t total = 0;
  for (const auto& [stem, views] : request.files)
    for (const auto& v : views) total += align_up(v.data.size(), kTensorAlign);
  return total;
}

void TensorSnapshot::ensure_capacity(std::size_t total) {
  if (total <= capacity_) return;
  arena_.reset();
  capacity_ = 0;
  touched_ = false;
  // 2 MiB aligned, so that transparent huge pages can back it: first touch of fresh memory is
  // what a first snapshot pays for (bench/notes.md), and it is far cheaper per 2 MiB page.
  const std::size_t length = align_up(total, kHugePage);
  const std::size_t reserve = length + kHugePage;
  void* raw = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    throw Error(fmt::format(
        "cannot allocate {} bytes of host memory for the checkpoint snapshot: {} (a background "
        "save keeps one copy of the state; save synchronously if memory is short)",
        total, std::strerror(errno)));
  }
  auto* base = static_cast<std::byte*>(raw);
  auto addr = reinterpret_cast<std::uintptr_t>(base);
  const std::size_t head = align_up(addr, kHugePage) - addr;
  if (head > 0) ::munmap(base, head);
  if (reserve - head > length) ::munmap(base + head + length, reserve - head - length);
  arena_ = std::unique_ptr<std::byte, Unmap>(base + head, Unmap{length});
  capacity_ = total;
  ++allocations_;
  // Both advices are best effort. MADV_DONTFORK matters most: a fork() anywhere in the
  // training process (a launcher, a subprocess a callback starts) would otherwise mark every
  // page copy-on-write, and the next snapshot would fault on each 4 KiB page again -- measured
  // at 4.6 s for 1 GiB against 0.09 s for the copy itself.
  (void)::madvise(arena_.get(), length, MADV_DONTFORK);
  (void)::madvise(arena_.get(), length, MADV_HUGEPAGE);
}

void TensorSnapshot::reserve(std::size_t bytes) {
  ensure_capacity(bytes);
  if (touched_ || capacity_ == 0) return;
  const std::size_t length = align_up(capacity_, kHugePage);
  // A write to every 4 KiB page (a huge page is faulted in by its first one). Not
  // MADV_POPULATE_WRITE: populated from this worker thread, the training thread's first copy
  // into the arena still ran at first-touch speed on the project's VM (1 GiB: 1.5-1.7 s against
  // 0.26 s after touching; bench/notes.md), with no page fault of its own.
  volatile std::byte* p = arena_.get();
  for (std::size_t i = 0; i < length; i += 4096) p[i] = std::byte{0};
  touched_ = true;
}

void TensorSnapshot::capture(const SaveRequest& request) {
  const std::size_t total = bytes_for(request);
  ensure_capacity(total);
  const bool stream = total >= kStreamFrom;
  touched_ = true;  // every byte of the request is written below
  detail::copy_save_point(request_, request);
  request_.state = request.state;
  request_.metadata = request.metadata;
  request_.indexes = request.indexes;
  request_.files.clear();
  std::size_t offset = 0;
  for (const auto& [stem, views] : request.files) {
    auto& out = request_.files[stem];
    out.reserve(views.size());
    for (const auto& v : views) {
      const auto n = v.data.size();
      std::byte* dst = n > 0 ? arena_.get() + offset : nullptr;
      if (n > 0 && stream)
        detail::stream_copy(dst, v.data.data(), n);
      else if (n > 0)
        std::memcpy(dst, v.data.data(), n);
      out.push_back(TensorView{v.name, v.dtype, v.shape, std::span<const std::byte>(dst, n)});
      offset += align_up(n, kTensorAlign);
    }
  }
}

AsyncSaver::AsyncSaver(Writer writer, AsyncSaverOptions options)
    : writer_(std::move(writer)),
      options_(options),
      flying_(std::make_unique<TensorSnapshot>()),
      waiting_(std::make_unique<TensorSnapshot>()) {
  worker_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

AsyncSaver::~AsyncSaver() {
  {
    std::lock_guard lock(mutex_);
    reserve_bytes_ = 0;  // a head start nobody will use
  }
  try {
    wait();
  } catch (const std::exception& e) {
    fmt::print(stderr, "vigil: error: background checkpoint save failed: {}\n", e.what());
  } catch (...) {
    fmt::print(stderr, "vigil: error: background checkpoint save failed\n");
  }
  worker_.request_stop();
  worker_.join();
}

void AsyncSaver::run(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, stop, [&] { return has_waiting_ || reserve_bytes_ > 0; });
    if (!has_waiting_ && (reserve_bytes_ == 0 || stop.stop_requested())) return;
    if (!has_waiting_) {
      // Nothing captures while preparing_ is set, so both snapshots are this thread's alone.
      const std::size_t bytes = std::exchange(reserve_bytes_, 0);
      preparing_ = true;
      lock.unlock();
      try {
        waiting_->reserve(bytes);
        if (options_.coalesce) flying_->reserve(bytes);
      } catch (const std::exception&) {
        // Only a head start: the next capture maps again and reports the error itself.
      }
      lock.lock();
      preparing_ = false;
      changed_.notify_all();
      continue;
    }
    TensorSnapshot* job = waiting_.get();
    if (options_.coalesce) {
      // Submit may fill the other snapshot while this one is written.
      std::swap(flying_, waiting_);
      job = flying_.get();
    }
    has_waiting_ = false;
    in_flight_ = true;
    lock.unlock();
    std::exception_ptr error;
    std::optional<SaveResult> result;
    try {
      result = writer_(job->request());
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    in_flight_ = false;
    if (error) {
      if (!error_) error_ = error;
    } else {
      results_.push_back(std::move(*result));
    }
    changed_.notify_all();
  }
}

void AsyncSaver::rethrow_error_locked(std::unique_lock<std::mutex>&) {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void AsyncSaver::prepare(const SaveRequest& request) {
  const std::size_t bytes = TensorSnapshot::bytes_for(request);
  std::lock_guard lock(mutex_);
  if (bytes <= reserved_) return;
  reserved_ = bytes;
  reserve_bytes_ = bytes;
  changed_.notify_all();
}

void AsyncSaver::submit(const SaveRequest& request) {
  std::unique_lock lock(mutex_);
  // A reservation still running owns the snapshots; one not started yet is dropped (the capture
  // below maps what it needs itself).
  reserve_bytes_ = 0;
  changed_.wait(lock, [&] { return !preparing_; });
  rethrow_error_locked(lock);
  if (options_.coalesce) {
    if (has_waiting_) {
      // Taken back from the worker: this request replaces the one that had not started yet.
      has_waiting_ = false;
      ++coalesced_;
    }
  } else {
    changed_.wait(lock, [&] { return !in_flight_ && !has_waiting_; });
    rethrow_error_locked(lock);
  }
  TensorSnapshot* target = waiting_.get();
  lock.unlock();
  target->capture(request);
  lock.lock();
  has_waiting_ = true;
  changed_.notify_all();
}

std::vector<SaveResult> AsyncSaver::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock,
                [&] { return !in_flight_ && !has_waiting_ && !preparing_ && reserve_bytes_ == 0; });
  rethrow_error_locked(lock);
  return std::exchange(results_, {});
}

bool AsyncSaver::busy() const {
  std::lock_guard lock(mutex_);
  return in_flight_ || has_waiting_ || preparing_ || reserve_bytes_ > 0;
}

std::size_t AsyncSaver::coalesced() const {
  std::lock_guard lock(mutex_);
  return coalesced_;
}

std::size_t AsyncSaver::buffer_bytes() const {
  std::unique_lock lock(mutex_);
  // A reservation asked for or under way: the worker owns the snapshots until it is done.
  changed_.wait(lock, [&] { return !preparing_ && reserve_bytes_ == 0; });
  return flying_->capacity_bytes() + waiting_->capacity_bytes();
}

std::size_t AsyncSaver::buffer_allocations() const {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !preparing_ && reserve_bytes_ == 0; });
  return flying_->allocations() + waiting_->allocations();
}

}  // namespace vigil
