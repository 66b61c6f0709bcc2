// Background saves. The snapshot copy is taken outside the lock (it can be large), which is
// safe because the worker only touches a snapshot after has_waiting_ hands it over.
#include "vigil/async_saver.hpp"

#include <cstdio>
#include <cstring>
#include <utility>

#include <fmt/core.h>

namespace vigil {

void TensorSnapshot::capture(const SaveRequest& request) {
  request_.epoch = request.epoch;
  request_.step = request.step;
  request_.at = request.at;
  request_.metrics = request.metrics;
  request_.state = request.state;
  request_.files.clear();
  std::size_t i = 0;
  for (const auto& [stem, views] : request.files) {
    auto& out = request_.files[stem];
    out.reserve(views.size());
    for (const auto& v : views) {
      if (i == buffers_.size()) buffers_.emplace_back();
      auto& b = buffers_[i++];
      auto n = v.data.size();
      if (b.capacity < n) {
        b.data = std::make_unique_for_overwrite<std::byte[]>(n);
        b.capacity = n;
        ++allocations_;
      }
      if (n > 0) std::memcpy(b.data.get(), v.data.data(), n);
      out.push_back(
          TensorView{v.name, v.dtype, v.shape, std::span<const std::byte>(b.data.get(), n)});
    }
  }
}

std::size_t TensorSnapshot::capacity_bytes() const {
  std::size_t n = 0;
  for (const auto& b : buffers_) n += b.capacity;
  return n;
}

AsyncSaver::AsyncSaver(Writer writer, AsyncSaverOptions options)
    : writer_(std::move(writer)),
      options_(options),
      flying_(std::make_unique<TensorSnapshot>()),
      waiting_(std::make_unique<TensorSnapshot>()) {
  worker_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

AsyncSaver::~AsyncSaver() {
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
    changed_.wait(lock, stop, [&] { return has_waiting_; });
    if (!has_waiting_) return;  // stop requested with nothing left to write
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

void AsyncSaver::submit(const SaveRequest& request) {
  std::unique_lock lock(mutex_);
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
  changed_.wait(lock, [&] { return !in_flight_ && !has_waiting_; });
  rethrow_error_locked(lock);
  return std::exchange(results_, {});
}

bool AsyncSaver::busy() const {
  std::lock_guard lock(mutex_);
  return in_flight_ || has_waiting_;
}

std::size_t AsyncSaver::coalesced() const {
  std::lock_guard lock(mutex_);
  return coalesced_;
}

std::size_t AsyncSaver::buffer_bytes() const {
  std::lock_guard lock(mutex_);
  return flying_->capacity_bytes() + waiting_->capacity_bytes();
}

std::size_t AsyncSaver::buffer_allocations() const {
  std::lock_guard lock(mutex_);
  return flying_->allocations() + waiting_->allocations();
}

}  // namespace vigil
