// SIGINT/SIGTERM during `vigil train`: the current batch finishes, a checkpoint is written, the
// way to resume is printed, the exit code is 130/143, and resuming works.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/error.hpp"
#include "vigil/torch/signals.hpp"

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
    } else {
      // Sent back to back, as `timeout` does (to the child, then to its process group): one
      // request, so the run still checkpoints and says how to resume.
      EXPECT_NE(p.out().find("resume with: vigil train --run-dir " + run.string()),
                std::string::npos)
          << p.out() << p.err();
      EXPECT_EQ(p.err().find("exiting at once"), std::string::npos) << p.err();
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

TEST(Signals, TheSameSignalTwiceAtOnceIsOneRequestAndStillCheckpoints) {
  interrupt_and_resume(SIGINT, 130, 2);
}

// In a child process each: a second signal ends the process at once by design.
TEST(StopSignalsDeath, ARepeatWithinTheWindowWaitsAndALaterOneExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        vigil::torch::StopSignals signals(
            vigil::torch::StopSignalsOptions{}.with_repeat_window(std::chrono::milliseconds(300)));
        std::raise(SIGINT);
        std::raise(SIGINT);  // the same request delivered twice
        if (signals.received() != SIGINT) std::_Exit(1);
        std::fputs("still running after the repeat\n", stderr);
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        std::raise(SIGINT);
        std::_Exit(2);  // not reached: the handler exits with 130
      },
      ::testing::ExitedWithCode(130),
      "still running after the repeat\n(.|\n)*a second SIGINT: exiting at once");
}

TEST(StopSignalsDeath, AnotherSignalWithinTheWindowExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        vigil::torch::StopSignals signals;
        std::raise(SIGINT);
        std::raise(SIGTERM);
        std::_Exit(2);
      },
      ::testing::ExitedWithCode(143), "a second SIGTERM: exiting at once");
}

TEST(StopSignalsDeath, WithoutSecondExitsEverySignalOnlyAsksToStop) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        vigil::torch::StopSignals signals(
            vigil::torch::StopSignalsOptions{}.with_second_exits(false).with_repeat_window(
                std::chrono::milliseconds(0)));
        std::raise(SIGTERM);
        std::raise(SIGINT);
        std::raise(SIGTERM);
        std::_Exit(signals.received() == SIGTERM ? 7 : 1);
      },
      ::testing::ExitedWithCode(7), "");
}

TEST(StopSignals, ANegativeRepeatWindowIsRefused) {
  EXPECT_THROW(vigil::torch::StopSignals(vigil::torch::StopSignalsOptions{}.with_repeat_window(
                   std::chrono::milliseconds(-1))),
               vigil::OptionError);
}
