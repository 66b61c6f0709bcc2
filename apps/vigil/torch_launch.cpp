// `vigil train --nproc N`: starts N local ranks of this program, watches them, forwards signals,
// and stops them all when one fails; and the rank side: joining the process group.
#include "torch_launch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>
#include <vector>

#include "vigil/error.hpp"

namespace vigil::cli {

namespace {

namespace vt = vigil::torch;

// Set in every rank the launcher starts, so that a rank never launches again.
constexpr const char* kLaunchedVar = "VIGIL_LAUNCHED";
// After one rank failed, the others usually fail at their next collective and say why; they get
// this long to do so before SIGTERM, and as long again before SIGKILL.
constexpr auto kStopGrace = std::chrono::seconds(5);

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (all.empty()) throw Error("cannot read /proc/self/cmdline to start the ranks");
  std::vector<std::string> args;
  std::size_t pos = 0;
  while (pos < all.size()) {
    const auto end = all.find('\0', pos);
    args.push_back(all.substr(pos, end - pos));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return args;
}

// A TCP port that is free on the loopback now (bind to port 0, read it back, close): the ranks'
// TCPStore binds it a moment later.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(fmt::format("socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(fmt::format("cannot find a free port on 127.0.0.1: {}", std::strerror(e)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return fmt::format("was killed by signal {} ({})", sig, name ? name : "?");
  }
  return fmt::format("ended with wait status {}", status);
}

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
};

}  // namespace

void add_launch_options(CLI::App* cmd, LaunchArgs& a) {
  const char* kDist = "Data-parallel training";
  cmd->add_option("--nproc", a.nproc,
                  "Start this many ranks on this host, each training on its slice of every batch "
                  "(0 = train in this process)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024))
      ->group(kDist);
  cmd->add_option("--nnodes", a.nnodes, "Hosts taking part (each runs vigil train --nproc ...)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536))
      ->group(kDist);
  cmd->add_option("--node-rank", a.node_rank, "This host's index in [0, --nnodes)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(kDist);
  cmd->add_option("--master-addr", a.master_addr, "Address of the host of rank 0")
      ->capture_default_str()
      ->group(kDist);
  cmd->add_option("--master-port", a.master_port,
                  "Port of rank 0's rendezvous (0 = a free port on one host, 29500 on several)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535))
      ->group(kDist);
  a.timeout_opt = cmd->add_option("--dist-timeout", a.dist_timeout,
                                  "Seconds a rank waits for the others (rendezvous, every "
                                  "collective) before it fails with an error")
                      ->capture_default_str()
                      ->check(CLI::PositiveNumber)
                      ->group(kDist);
  a.interface_opt = cmd->add_option("--dist-interface", a.interface,
                                    "Network interface for the ranks' traffic, e.g. eth0 "
                                    "(default: loopback on one host, else the host name's "
                                    "address; GLOO_SOCKET_IFNAME)")
                        ->group(kDist);
  cmd->add_option("--debug-kill-rank", a.debug_kill_rank)->group("");
  cmd->add_option("--debug-kill-in-save", a.debug_kill_in_save)->group("");
}

std::optional<int> launch_ranks(const LaunchArgs& a) {
  if (std::getenv(kLaunchedVar) != nullptr) return std::nullopt;
  if (a.nproc == 0 && a.nnodes == 1) return std::nullopt;
  const int nproc = std::max(a.nproc, 1);
  if (a.node_rank >= a.nnodes)
    throw OptionError(
        fmt::format("--node-rank must be in [0, {}) for --nnodes {}", a.nnodes, a.nnodes));
  const int world = nproc * a.nnodes;
  if (world == 1) return std::nullopt;
  const int port = a.master_port != 0 ? a.master_port : a.nnodes > 1 ? 29500 : free_loopback_port();
  // Like torchrun: ranks share the cores instead of each taking them all.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string omp_threads =
      std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));
  const auto argv_strings = own_command_line();
  const std::string timeout = fmt::format("{}", static_cast<long long>(std::ceil(a.dist_timeout)));

  sigset_t watched, old_mask;
  sigemptyset(&watched);
  sigaddset(&watched, SIGINT);
  sigaddset(&watched, SIGTERM);
  sigaddset(&watched, SIGCHLD);
  // Blocked here and read with sigtimedwait: no signal can slip between a check and a wait.
  sigprocmask(SIG_BLOCK, &watched, &old_mask);

  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t launcher = ::getpid();
  std::vector<Rank> ranks;
  for (int local = 0; local < nproc; ++local) {
    const int rank = a.node_rank * nproc + local;
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      for (auto& r : ranks) ::kill(r.pid, SIGKILL);
      sigprocmask(SIG_SETMASK, &old_mask, nullptr);
      throw Error(fmt::format("cannot start rank {}: fork: {}", rank, std::strerror(e)));
    }
    if (pid == 0) {
      // The rank: its own process group (a terminal's Ctrl-C reaches the launcher alone, which
      // forwards it once), and SIGTERM if the launcher dies.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(1);
      sigprocmask(SIG_SETMASK, &old_mask, nullptr);
      ::setenv(kLaunchedVar, "1", 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("VIGIL_DIST_TIMEOUT", timeout.c_str(), 1);
      if (!a.interface.empty()) ::setenv("GLOO_SOCKET_IFNAME", a.interface.c_str(), 1);
      ::setenv("OMP_NUM_THREADS", omp_threads.c_str(), 0);
      std::vector<char*> argv;
      for (const auto& s : argv_strings) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "vigil: error: rank %d: cannot start %s: %s\n", rank, argv[0],
                   std::strerror(errno));
      ::_exit(127);
    }
    ranks.push_back(Rank{rank, pid, true, 0});
  }
  fmt::print("started {} rank{} on this host ({} of {}, rendezvous {}:{}, timeout {} s)\n", nproc,
             nproc == 1 ? "" : "s",
             nproc == 1 ? fmt::format("rank {}", ranks.front().rank)
                        : fmt::format("ranks {}..{}", ranks.front().rank, ranks.back().rank),
             world, a.master_addr, port, timeout);
  std::fflush(stdout);

  using Clock = std::chrono::steady_clock;
  int forwarded = 0;             // the signal the user sent, if any
  const Rank* failed = nullptr;  // the first rank that failed on its own
  // time_point::max() = not armed (an optional here drew a GCC -Wmaybe-uninitialized false alarm).
  constexpr auto never = Clock::time_point::max();
  Clock::time_point term_at = never, kill_at = never;
  auto running = [&] {
    return std::count_if(ranks.begin(), ranks.end(), [](const Rank& r) { return r.running; });
  };
  while (running() > 0) {
    timespec tick{0, 200'000'000};
    siginfo_t info{};
    const int sig = ::sigtimedwait(&watched, &info, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      forwarded = sig;
      for (auto& r : ranks)
        if (r.running) ::kill(r.pid, sig);
    }
    int status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (auto& r : ranks) {
        if (r.pid != pid) continue;
        r.running = false;
        r.status = status;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (ok || forwarded != 0) continue;
        // Every failure is named (the first one is usually the cause, the others its echo).
        fmt::print(stderr, "vigil: error: rank {} of {} {}{}\n", r.rank, world,
                   describe_status(status), failed == nullptr ? "; stopping the other ranks" : "");
        if (failed == nullptr) {
          failed = &r;
          term_at = Clock::now() + kStopGrace;
          kill_at = Clock::now() + 2 * kStopGrace;
        }
      }
    }
    if (term_at != never && Clock::now() >= term_at) {
      for (auto& r : ranks)
        if (r.running) ::kill(r.pid, SIGTERM);
      term_at = never;
    }
    if (kill_at != never && Clock::now() >= kill_at) {
      for (auto& r : ranks)
        if (r.running) ::kill(r.pid, SIGKILL);
      kill_at = never;
    }
  }
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);

  if (failed != nullptr) {
    fmt::print(stderr,
               "vigil: error: data-parallel training failed: rank {} {}; every committed "
               "checkpoint is intact, run the same command again to resume\n",
               failed->rank, describe_status(failed->status));
    return 1;
  }
  if (forwarded != 0) {
    // Every rank finished its batch and exited 128+signal (rank 0 wrote the checkpoint).
    for (const auto& r : ranks)
      if (WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0) return WEXITSTATUS(r.status);
    return 128 + forwarded;
  }
  return 0;
}

std::shared_ptr<vt::ProcessGroup> join_process_group(const LaunchArgs& a) {
  if (!vt::DistributedOptions::env_present()) return nullptr;
  auto options = vt::DistributedOptions::from_env();
  if (options.world_size == 1) return nullptr;
  if (a.timeout_opt != nullptr && a.timeout_opt->count() > 0)
    options.timeout = std::chrono::milliseconds(static_cast<long long>(a.dist_timeout * 1000));
  if (a.interface_opt != nullptr && a.interface_opt->count() > 0) options.interface = a.interface;
  if (options.rank != 0) {
    // One console: rank 0's. Errors still go to stderr.
    std::fflush(stdout);
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::close(fd);
    }
  }
  return std::make_shared<vt::ProcessGroup>(options);
}

bool debug_kill_applies(const LaunchArgs& a, const vt::ProcessGroup* group) {
  if (a.debug_kill_rank < 0) return true;
  return group != nullptr && group->rank() == a.debug_kill_rank;
}

}  // namespace vigil::cli
