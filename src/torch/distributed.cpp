// ProcessGroup on c10d: TCPStore rendezvous, ProcessGroupGloo collectives, bucketed gradients.
#include "vigil/torch/distributed.hpp"

#include <fmt/core.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

#include "detail/compat.hpp"
#include "vigil/torch/module_state.hpp"

namespace vigil::torch {

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

long long env_int(const char* name, const std::string& text, long long lo, long long hi) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < lo || v > hi)
    throw OptionError(fmt::format("environment variable {}={} must be an integer in [{}, {}]", name,
                                  text, lo, hi));
  return v;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

double seconds(std::chrono::milliseconds ms) {
  return static_cast<double>(ms.count()) / 1000.0;
}

}  // namespace

DistributedOptions DistributedOptions::from_env() {
  DistributedOptions o;
  if (auto v = env("RANK")) o.rank = static_cast<int>(env_int("RANK", *v, 0, 1 << 20));
  if (auto v = env("WORLD_SIZE"))
    o.world_size = static_cast<int>(env_int("WORLD_SIZE", *v, 1, 1 << 20));
  if (auto v = env("MASTER_ADDR")) o.master_addr = *v;
  if (auto v = env("MASTER_PORT"))
    o.master_port = static_cast<int>(env_int("MASTER_PORT", *v, 1, 65535));
  if (auto v = env("GLOO_SOCKET_IFNAME")) o.interface = *v;
  if (auto v = env("VIGIL_DIST_TIMEOUT"))
    o.timeout = std::chrono::seconds(env_int("VIGIL_DIST_TIMEOUT", *v, 1, 7LL * 24 * 3600));
  o.validate();
  return o;
}

bool DistributedOptions::env_present() {
  return env("RANK").has_value() && env("WORLD_SIZE").has_value();
}

void DistributedOptions::validate() const {
  if (world_size < 1) throw OptionError(fmt::format("world_size must be >= 1, got {}", world_size));
  if (rank < 0 || rank >= world_size)
    throw OptionError(fmt::format("rank must be in [0, {}), got {}", world_size, rank));
  if (master_port < 1 || master_port > 65535)
    throw OptionError(fmt::format("master_port must be in [1, 65535], got {}", master_port));
  if (master_addr.empty()) throw OptionError("master_addr is empty");
  if (timeout.count() <= 0) throw OptionError("the distributed timeout must be positive");
  if (bucket_bytes < 1) throw OptionError("bucket_bytes must be >= 1");
}

ShardRange shard_range(std::int64_t n, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size || n < 0)
    throw OptionError(
        fmt::format("shard_range: bad rank {} of {} for {} examples", rank, world_size, n));
  return {n * rank / world_size, n * (rank + 1) / world_size};
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  bool failed = false;
};

namespace {

// Runs one collective; any failure becomes a DistributedError naming it, and poisons the group
// (Gloo's pairs are unusable after a timeout, so a later call must not wait again).
template <class F>
auto guarded(bool& failed, const DistributedOptions& o, const std::string& what, F&& f) {
  if (failed)
    throw DistributedError(
        fmt::format("rank {} of {}: {}: the process group already failed in an earlier collective",
                    o.rank, o.world_size, what));
  try {
    return f();
  } catch (const std::exception& e) {
    failed = true;
    std::string msg = e.what();
    // c10::Error appends a C++ backtrace after the first line: keep the message readable.
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    throw DistributedError(fmt::format(
        "rank {} of {}: {} failed: another rank died, hung for longer than the timeout ({} s) or "
        "is unreachable ({})",
        o.rank, o.world_size, what, seconds(o.timeout), msg));
  }
}

void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  // Every work is waited for even after a failure, so that none still writes into a tensor that
  // is about to be freed; the first error is rethrown.
  std::exception_ptr first;
  for (auto& w : works) {
    try {
      w->wait();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

// Every tensor from `root` into the same tensor on the other ranks, all in flight at once.
void broadcast_in_place(c10d::ProcessGroupGloo& pg, std::vector<at::Tensor>& tensors, int root) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : tensors) {
    if (!t.is_contiguous())
      throw Error("a parameter or buffer is not contiguous; cannot broadcast it in place");
    std::vector<at::Tensor> one{t};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    works.push_back(pg.broadcast(one, bo));
  }
  wait_all(works);
}

}  // namespace

ProcessGroup::ProcessGroup(DistributedOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  options_.validate();
  const auto& o = options_;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    compat::use_classic_tcp_store(so);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);

    auto gloo = c10d::ProcessGroupGloo::Options::create(o.timeout);
    if (!o.interface.empty())
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(o.interface));
    else if (is_loopback(o.master_addr))
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size,
                                                            std::move(gloo));
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    throw DistributedError(fmt::format(
        "rank {} of {}: cannot form the process group at {}:{} within {} s: {} (are all {} ranks "
        "started, with the same MASTER_ADDR/MASTER_PORT, and is the port free on rank 0?)",
        o.rank, o.world_size, o.master_addr, o.master_port, seconds(o.timeout), msg, o.world_size));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast_module(::torch::nn::Module& module, int root) {
  ::torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (const auto& p : unique_parameters(module)) tensors.push_back(p);
  for (const auto& b : module.buffers()) tensors.push_back(b);
  guarded(impl_->failed, options_, "broadcasting the model from rank 0", [&] {
    broadcast_in_place(*impl_->pg, tensors, root);
    return 0;
  });
}

void ProcessGroup::broadcast_buffers(::torch::nn::Module& module, int root) {
  std::vector<at::Tensor> buffers;
  for (const auto& b : module.buffers()) buffers.push_back(b);
  if (buffers.empty() || options_.world_size == 1) return;
  ::torch::NoGradGuard no_grad;
  guarded(impl_->failed, options_, "broadcasting buffers from rank 0", [&] {
    broadcast_in_place(*impl_->pg, buffers, root);
    return 0;
  });
}

void ProcessGroup::all_reduce_gradients(::torch::nn::Module& module, double weight) {
  ::torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  // Each tensor once: a tied weight's gradient is one tensor, reduced (and weighted) once.
  for (auto& p : unique_parameters(module)) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = ::torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  // Buckets: runs of same-dtype gradients, in parameter order, of about bucket_bytes each.
  struct Bucket {
    std::vector<at::Tensor> grads;
    at::Tensor flat;
  };
  std::vector<Bucket> buckets;
  std::int64_t bytes = 0;
  for (const auto& g : grads) {
    const std::int64_t b = g.numel() * static_cast<std::int64_t>(g.element_size());
    if (buckets.empty() || buckets.back().grads.front().scalar_type() != g.scalar_type() ||
        bytes + b > options_.bucket_bytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().grads.push_back(g);
    bytes += b;
  }
  guarded(impl_->failed, options_, "all-reducing the gradients", [&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& bucket : buckets) {
      std::vector<at::Tensor> flat_parts;
      for (const auto& g : bucket.grads) flat_parts.push_back(g.reshape({-1}));
      bucket.flat = ::torch::cat(flat_parts);
      if (weight != 1.0) bucket.flat.mul_(weight);
      std::vector<at::Tensor> one{bucket.flat};
      works.push_back(impl_->pg->allreduce(one));
    }
    wait_all(works);
    return 0;
  });
  for (auto& bucket : buckets) {
    std::int64_t offset = 0;
    for (auto& g : bucket.grads) {
      const auto n = g.numel();
      g.copy_(bucket.flat.slice(0, offset, offset + n).view_as(g));
      offset += n;
    }
  }
}

namespace {

std::vector<double> reduce_doubles(c10d::ProcessGroupGloo& pg, const std::vector<double>& values,
                                   const c10d::ReduceOp& op) {
  if (values.empty()) return {};
  auto t = ::torch::tensor(values, ::torch::kDouble);
  std::vector<at::Tensor> one{t};
  c10d::AllreduceOptions ao;
  ao.reduceOp = op;
  pg.allreduce(one, ao)->wait();
  const double* p = t.data_ptr<double>();
  return std::vector<double>(p, p + values.size());
}

}  // namespace

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  return guarded(impl_->failed, options_, "all-reducing metrics",
                 [&] { return reduce_doubles(*impl_->pg, values, c10d::ReduceOp::SUM); });
}

std::vector<double> ProcessGroup::all_reduce_max(const std::vector<double>& values) {
  return guarded(impl_->failed, options_, "all-reducing a maximum",
                 [&] { return reduce_doubles(*impl_->pg, values, c10d::ReduceOp::MAX); });
}

bool ProcessGroup::any(bool value) {
  return guarded(impl_->failed, options_, "agreeing on a decision", [&] {
           return reduce_doubles(*impl_->pg, {value ? 1.0 : 0.0}, c10d::ReduceOp::MAX);
         })[0] > 0.0;
}

std::string ProcessGroup::broadcast_string(const std::string& value, int root) {
  return guarded(
      impl_->failed, options_, fmt::format("broadcasting a value from rank {}", root), [&] {
        c10d::BroadcastOptions bo;
        bo.rootRank = root;
        auto len = ::torch::tensor({static_cast<std::int64_t>(value.size())}, ::torch::kLong);
        std::vector<at::Tensor> one{len};
        impl_->pg->broadcast(one, bo)->wait();
        const auto n = len.item<std::int64_t>();
        if (n == 0) return std::string();
        auto bytes = ::torch::zeros({n}, ::torch::kUInt8);
        if (options_.rank == root) std::memcpy(bytes.data_ptr(), value.data(), value.size());
        std::vector<at::Tensor> two{bytes};
        impl_->pg->broadcast(two, bo)->wait();
        return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<std::size_t>(n));
      });
}

void ProcessGroup::barrier() {
  guarded(impl_->failed, options_, "waiting at a barrier", [&] {
    impl_->pg->barrier()->wait();
    return 0;
  });
}

}  // namespace vigil::torch
