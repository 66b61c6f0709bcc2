// `vigil train --nproc N`: the launcher that starts local ranks (as torchrun does) and the flags
// that make a process join a data-parallel group, locally or across hosts.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "vigil/torch/distributed.hpp"

namespace vigil::cli {

/// The data-parallel flags of `vigil train`.
struct LaunchArgs {
  int nproc = 0;                          ///< --nproc: local ranks to start (0 = train alone)
  int nnodes = 1;                         ///< --nnodes: hosts taking part
  int node_rank = 0;                      ///< --node-rank: this host's index
  std::string master_addr = "127.0.0.1";  ///< --master-addr: rank 0's host
  int master_port = 0;         ///< --master-port (0: a free port, or 29500 on nnodes > 1)
  double dist_timeout = 300;   ///< --dist-timeout SECONDS
  std::string interface;       ///< --dist-interface: Gloo's network interface
  int debug_kill_rank = -1;    ///< hidden: the rank --debug-kill-* applies to
  int debug_kill_in_save = 0;  ///< hidden: die after writing shards in save N (1-based)
  CLI::Option* timeout_opt = nullptr;
  CLI::Option* interface_opt = nullptr;
};

/// Registers --nproc, --nnodes, --node-rank, --master-addr, --master-port, --dist-timeout and
/// --dist-interface on `cmd`.
void add_launch_options(CLI::App* cmd, LaunchArgs& args);

/// In the process the user started with --nproc (or --nnodes > 1): starts the local ranks (this
/// program again, with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT/LOCAL_RANK set), forwards SIGINT
/// and SIGTERM to them, stops them all when one fails, and returns the exit code. nullopt in a
/// rank, and when there is nothing to launch.
std::optional<int> launch_ranks(const LaunchArgs& args);

/// In a rank (RANK and WORLD_SIZE set, by launch_ranks or torchrun): joins the group; ranks other
/// than 0 send their standard output to /dev/null (errors still reach stderr). Null when this
/// process trains alone.
std::shared_ptr<vigil::torch::ProcessGroup> join_process_group(const LaunchArgs& args);

/// True when this rank should run a --debug-kill-* hook (hidden test flags).
bool debug_kill_applies(const LaunchArgs& args, const vigil::torch::ProcessGroup* group);

}  // namespace vigil::cli
