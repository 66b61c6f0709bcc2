// Two ranks as two hosts: scripts/netns_two_hosts.sh runs `vigil train --nnodes 2` in two network
// namespaces joined by a veth pair. Skipped where the machine does not allow `ip netns` (not
// root, no iproute2, no CAP_NET_ADMIN).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

bool netns_allowed() {
  if (::geteuid() != 0 || (!fs::exists("/usr/sbin/ip") && !fs::exists("/sbin/ip"))) return false;
  const std::string probe = "vigil-probe-" + std::to_string(::getpid());
  const auto add = run_process({"/usr/bin/env", "ip", "netns", "add", probe});
  if (add.exit_code != 0) return false;
  run_process({"/usr/bin/env", "ip", "netns", "del", probe});
  // The script also needs veth pairs (a kernel module some containers lack).
  const std::string a = "vgpa" + std::to_string(::getpid() % 100000);
  const std::string b = "vgpb" + std::to_string(::getpid() % 100000);
  const auto veth =
      run_process({"/usr/bin/env", "ip", "link", "add", a, "type", "veth", "peer", "name", b});
  if (veth.exit_code != 0) return false;
  run_process({"/usr/bin/env", "ip", "link", "del", a});
  return true;
}

}  // namespace

TEST(DistributedNetns, TwoHostsInNetworkNamespacesTrainOneRun) {
  if (!netns_allowed())
    GTEST_SKIP() << "ip netns/veth are not allowed here (needs root, iproute2, veth)";
  TempDir tmp;
  const auto run = tmp / "run";
  const auto r = run_process(
      {"/usr/bin/env", std::string("VIGIL=") + VIGIL_CLI, "RUN_DIR=" + run.string(), "TIMEOUT=60",
       "bash", (source_dir() / "scripts" / "netns_two_hosts.sh").string(), "--limit-train", "256",
       "--limit-test", "100", "--hidden", "8", "--epochs", "2", "--threads", "1", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("host 0 exited 0, host 1 exited 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rendezvous 10.77.0.1:"), std::string::npos) << r.out;
  // One run directory, written by rank 0, with sharded checkpoints from both hosts.
  std::istringstream csv(read_file(run / "metrics.csv"));
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, 3);  // header + 2 epochs
  EXPECT_TRUE(fs::exists(run / "checkpoints" / "epoch-0001" / "model-00002-of-00002.safetensors"));
  const auto v = run_vigil({"verify", run.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out;
  // The namespaces are gone.
  EXPECT_EQ(run_process({"/usr/bin/env", "ip", "netns", "list"}).out.find("vigil-h"),
            std::string::npos);
}
