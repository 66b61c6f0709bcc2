// SIGINT/SIGTERM during `vigil train`: the current batch finishes, a checkpoint is written, the
// way to resume is printed, the exit code is 130/143, and resuming works.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

// Long enough that the signal lands while training: many epochs, no early stop.
std::vector<std::string> long_run(const fs::path& dir) {
  return quick_train(dir, {"--epochs", "200", "--patience", "1000", "--limit-train", "2048"});
}

void interrupt_and_resume(int sig, int expected_exit, int signals) {
  TempDir tmp;
  const auto run = tmp.path() / "run";
  {
    VigilProcess p(long_run(run), tmp / "out.txt", tmp / "err.txt");
    ASSERT_TRUE(p.wait_for_output("epoch 1 (2 of 200)")) << p.out() << p.err();
    for (int i = 0; i < signals; ++i) p.signal(sig);
    const int code = p.wait();
    EXPECT_EQ(code, expected_exit) << p.out() << p.err();
    if (signals == 1) {
      EXPECT_NE(p.out().find("interrupted by " + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM")),
                std::string::npos)
          << p.out();
      EXPECT_NE(p.out().find("resume with: vigil train --run-dir " + run.string()),
                std::string::npos)
          << p.out();
      EXPECT_NE(p.out().find("checkpoint " + run.string()), std::string::npos) << p.out();
    } else if (p.out().find("resume with:") == std::string::npos) {
      // The second signal cut the checkpoint short: it says so rather than exiting silently.
      EXPECT_NE(p.err().find("a second SIGINT: exiting at once"), std::string::npos) << p.err();
    }
  }
  // Whatever the signals interrupted, the run directory is intact and resumes (--epochs may
  // change on resume; 2 epochs had finished when the signal was sent).
  auto args = long_run(run);
  args.insert(args.end(), {"--epochs", "4"});  // the last --epochs wins
  auto resumed = run_vigil(args);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find("resuming " + run.string()), std::string::npos) << resumed.out;
  const auto result = nlohmann::json::parse(read_file(run / "result.json"));
  EXPECT_EQ(result.at("epochs_run"), 4);
}

}  // namespace

TEST(Signals, SigintCheckpointsAndExits130) {
  interrupt_and_resume(SIGINT, 130, 1);
}

TEST(Signals, SigtermCheckpointsAndExits143) {
  interrupt_and_resume(SIGTERM, 143, 1);
}

TEST(Signals, ASecondSignalExitsAtOnceWithoutCorruptingTheRun) {
  interrupt_and_resume(SIGINT, 130, 2);
}
