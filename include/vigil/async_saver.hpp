// AsyncSaver: background checkpoint writes. A request's tensors are copied once into host
// buffers that are kept and reused across saves; a worker std::jthread writes them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "vigil/checkpoint_manager.hpp"
#include "vigil/setter.hpp"

namespace vigil {

/// Host copies of a request's tensors in one arena that survives from one save to the next (it
/// is only mapped again when the tensors got bigger), and the request pointing at them.
class TensorSnapshot {
 public:
  /// Copies `request` (tensors into the arena, the rest by value).
  void capture(const SaveRequest& request);
  /// Maps the arena for at least `bytes` and faults every page of it in, so that a capture of
  /// that size only copies (first touch costs about 1.8 s a GiB on the project's VM).
  void reserve(std::size_t bytes);
  /// Arena bytes a capture of `request` needs.
  static std::size_t bytes_for(const SaveRequest& request);
  /// The copied request; its views point into this snapshot's arena.
  const SaveRequest& request() const { return request_; }
  /// Bytes the arena holds for tensors (each tensor starts 64-byte aligned).
  std::size_t capacity_bytes() const { return capacity_; }
  /// How many times the arena had to be (re)mapped since construction.
  std::size_t allocations() const { return allocations_; }

 private:
  // An anonymous mapping, not new[]: growing a vector would zero-fill bytes about to be
  // overwritten, and the mapping can be marked MADV_DONTFORK (see capture()).
  struct Unmap {
    std::size_t length;
    void operator()(std::byte* p) const noexcept;
  };
  void ensure_capacity(std::size_t total);

  std::unique_ptr<std::byte, Unmap> arena_{nullptr, Unmap{0}};
  std::size_t capacity_ = 0;
  bool touched_ = false;  // every page of the arena has been written once
  SaveRequest request_;
  std::size_t allocations_ = 0;
};

/// Options of AsyncSaver.
struct AsyncSaverOptions {
  /// A request arriving while a save is in flight replaces the waiting one (true) instead of
  /// blocking until the flight ends (false) (default false).
  bool coalesce = false;
  VIGIL_SETTER(coalesce)
};

/// At most one save in flight, written by `writer` on a worker thread. Errors of a background
/// save are kept and rethrown by the next submit() or wait(); the destructor waits and logs.
class AsyncSaver {
 public:
  using Writer = std::function<SaveResult(const SaveRequest&)>;
  explicit AsyncSaver(Writer writer, AsyncSaverOptions options = {});
  /// Finishes the save in flight (and a waiting one); logs an error to stderr, never throws.
  ~AsyncSaver();
  AsyncSaver(const AsyncSaver&) = delete;
  AsyncSaver& operator=(const AsyncSaver&) = delete;

  /// Rethrows a pending background error, then snapshots `request` and returns once the copy is
  /// taken (blocking first for the save in flight unless coalescing).
  void submit(const SaveRequest& request);
  /// Returns at once; the worker thread maps and touches the snapshot memory that requests
  /// like `request` need (only its tensor sizes count), so the first submit() only copies.
  /// A submit() arriving meanwhile waits for the reservation; does nothing if a reservation at
  /// least as large was asked for before.
  void prepare(const SaveRequest& request);
  /// Waits until nothing is in flight or waiting; returns the results since the last call;
  /// rethrows a background error once.
  std::vector<SaveResult> wait();
  /// True while a save is in flight or waiting.
  bool busy() const;
  /// Requests dropped because a newer one replaced them while waiting (coalescing).
  std::size_t coalesced() const;
  /// Buffer bytes of all snapshots and how often they were allocated (for tests and stats);
  /// wait for a reservation asked for or under way.
  std::size_t buffer_bytes() const;
  std::size_t buffer_allocations() const;

 private:
  void run(std::stop_token stop);
  void rethrow_error_locked(std::unique_lock<std::mutex>& lock);

  Writer writer_;
  AsyncSaverOptions options_;
  mutable std::mutex mutex_;
  mutable std::condition_variable_any changed_;
  // Two snapshots: one being written, one filling or waiting; they swap when a flight starts.
  std::unique_ptr<TensorSnapshot> flying_;
  std::unique_ptr<TensorSnapshot> waiting_;
  bool has_waiting_ = false;
  bool in_flight_ = false;
  std::size_t reserve_bytes_ = 0;  // a reservation asked for, not started yet
  std::size_t reserved_ = 0;       // the largest reservation asked for
  bool preparing_ = false;         // the worker is reserving
  std::size_t coalesced_ = 0;
  std::exception_ptr error_;
  std::vector<SaveResult> results_;
  std::jthread worker_;  // last member: stops and joins before the others are destroyed
};

}  // namespace vigil
