// Data-parallel training across processes: a process group on PyTorch's c10d (TCPStore
// rendezvous, Gloo collectives) with the operations the Trainer needs, all bounded by a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// A collective failed (declared in vigil/error.hpp with every other error).
using DistributedError = vigil::DistributedError;

/// Options of ProcessGroup; from_env() reads them the way torchrun sets them.
struct DistributedOptions {
  /// This process's rank in [0, world_size) (default 0). Rank 0 hosts the TCPStore.
  int rank = 0;
  /// Number of processes (default 1).
  int world_size = 1;
  /// Address of rank 0's TCPStore (default "127.0.0.1"), torchrun's MASTER_ADDR.
  std::string master_addr = "127.0.0.1";
  /// Port of rank 0's TCPStore (default 29500), torchrun's MASTER_PORT.
  int master_port = 29500;
  /// Longest wait for the rendezvous and for any collective; a rank that died or hangs makes the
  /// others throw DistributedError after this long (default 300 s).
  std::chrono::milliseconds timeout = std::chrono::seconds(300);
  /// Network interface Gloo binds to, e.g. "eth0" (default empty: the loopback when master_addr
  /// is a loopback address, else the address this host's name resolves to), as GLOO_SOCKET_IFNAME.
  std::string interface;
  /// Gradients are all-reduced in flat buckets of about this many bytes (default 25 MiB, DDP's
  /// bucket_cap_mb): one collective per bucket instead of one per tensor.
  std::int64_t bucket_bytes = 25 << 20;

  VIGIL_SETTER(rank)
  VIGIL_SETTER(world_size)
  VIGIL_SETTER(master_addr)
  VIGIL_SETTER(master_port)
  VIGIL_SETTER(timeout)
  VIGIL_SETTER(interface)
  VIGIL_SETTER(bucket_bytes)

  /// Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (as torchrun sets them), GLOO_SOCKET_IFNAME
  /// and VIGIL_DIST_TIMEOUT (seconds); unset variables keep the defaults above. Throws
  /// OptionError for a malformed value.
  static DistributedOptions from_env();
  /// True when RANK and WORLD_SIZE are both set (the process was started by a launcher).
  static bool env_present();

  /// Throws OptionError naming the bad option.
  void validate() const;
};

/// The examples [begin, end) of `n` that rank `rank` of `world_size` takes: contiguous, sizes
/// differing by at most one, in rank order (so the shards concatenate to the whole).
struct ShardRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
};
ShardRange shard_range(std::int64_t n, int rank, int world_size);

/// One process's membership in a group of `world_size` training processes. Construction is the
/// rendezvous (every rank must construct it within the timeout). Every collective must be called
/// by all ranks in the same order; each either completes on all ranks or throws DistributedError
/// (within the timeout) naming the operation and this rank. Not thread-safe.
class ProcessGroup {
 public:
  explicit ProcessGroup(DistributedOptions options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  /// Rank 0: the one that writes logs and the console.
  bool is_main() const { return options_.rank == 0; }
  const DistributedOptions& options() const { return options_; }

  /// Copies rank `root`'s parameters (a tied tensor once) and buffers into every rank's module
  /// (same architecture).
  void broadcast_module(::torch::nn::Module& module, int root = 0);
  /// Copies rank `root`'s buffers (e.g. BatchNorm running statistics) to every rank, as DDP does
  /// before each forward pass; does nothing for a module without floating-point buffers.
  void broadcast_buffers(::torch::nn::Module& module, int root = 0);
  /// Every trainable parameter's gradient (a tied tensor's once) becomes the sum over ranks of
  /// `weight` times that rank's gradient (pass weight = local examples / global batch examples:
  /// the result is the gradient of the global batch's mean loss). Gradients are flattened into
  /// buckets of about `bucket_bytes`, one all-reduce per bucket. A missing gradient counts as
  /// zeros.
  void all_reduce_gradients(::torch::nn::Module& module, double weight);
  /// Element-wise sums over ranks, computed in double precision.
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  /// Element-wise maximum over ranks.
  std::vector<double> all_reduce_max(const std::vector<double>& values);
  /// True on every rank when it is true on any rank (an agreed stop decision).
  bool any(bool value);
  /// Rank `root`'s bytes on every rank (e.g. a checkpoint folder's name).
  std::string broadcast_string(const std::string& value, int root = 0);
  /// Returns once every rank has called it.
  void barrier();

 private:
  struct Impl;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::torch
