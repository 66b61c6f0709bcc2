// Helpers of the distributed tests: ranks as threads of one process, each with its own
// ProcessGroup on a free loopback port, and comparisons of the ranks' weights.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "vigil/torch/datasets.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::test {

namespace vt = vigil::torch;
using namespace std::chrono_literals;

// A port free on the loopback right now (bind port 0): tests can run in parallel under ctest -j.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline vt::DistributedOptions options(int rank, int world, int port,
                                      std::chrono::milliseconds timeout = 30s) {
  return vt::DistributedOptions{}
      .with_rank(rank)
      .with_world_size(world)
      .with_master_port(port)
      .with_timeout(timeout);
}

// Runs fn(rank, group) on `world` threads, each with its own ProcessGroup; returns each rank's
// exception (null if it returned normally).
inline std::vector<std::exception_ptr> run_ranks(
    int world, const std::function<void(int, std::shared_ptr<vt::ProcessGroup>)>& fn,
    std::chrono::milliseconds timeout = 30s) {
  const int port = free_port();
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto group = std::make_shared<vt::ProcessGroup>(options(r, world, port, timeout));
        fn(r, std::move(group));
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

inline std::string message(const std::exception_ptr& e) {
  if (!e) return "(no error)";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
  return "(unknown)";
}

inline void expect_no_errors(const std::vector<std::exception_ptr>& errors) {
  for (std::size_t r = 0; r < errors.size(); ++r) EXPECT_FALSE(errors[r]) << message(errors[r]);
}

// The two sets hold the same names and bitwise equal tensors.
inline void expect_equal(const vt::NamedTensors& a, const vt::NamedTensors& b) {
  ASSERT_EQ(a.names(), b.names());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(::torch::equal(a.tensors()[i], b.tensors()[i])) << a.names()[i];
}

// The two sets hold the same names and tensors equal within `tol` (absolute and relative).
inline void expect_close(const vt::NamedTensors& a, const vt::NamedTensors& b, double tol) {
  ASSERT_EQ(a.names(), b.names());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(::torch::allclose(a.tensors()[i], b.tensors()[i], tol, tol))
        << a.names()[i] << ": max difference "
        << (a.tensors()[i] - b.tensors()[i]).abs().max().item<double>();
}

// A small classification problem: 3 classes of 8 features, labels from a fixed linear rule.
inline vt::Dataset make_data(std::int64_t n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto x = ::torch::randn({n, 8}, gen);
  auto w = ::torch::randn({8, 3}, gen);
  return {x, x.matmul(w).argmax(1)};
}

// The MLP the distributed tests train, its initial weights from `seed`. Locked: the seed goes
// through libtorch's global generator, and ranks are threads of one process.
inline ::torch::nn::Sequential make_mlp(std::uint64_t seed) {
  static std::mutex global_generator;
  std::lock_guard lock(global_generator);
  ::torch::manual_seed(seed);
  return ::torch::nn::Sequential(::torch::nn::Linear(8, 16), ::torch::nn::ReLU(),
                                 ::torch::nn::Linear(16, 3));
}

}  // namespace vigil::test
