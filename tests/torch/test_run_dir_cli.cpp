// What `vigil train` may do to its --run-dir: --fresh never moves a run another process holds,
// and a folder that is not a run is never written into or moved.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/run_lock.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

void expect_one_line_error(const RunResult& r, const std::string& part) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("vigil: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// A small run, quicker than quick_train's.
std::vector<std::string> tiny_train(const fs::path& dir, std::vector<std::string> extra = {}) {
  auto args = quick_train(
      dir, {"--epochs", "2", "--limit-train", "128", "--limit-test", "64", "--hidden", "8"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The names in `dir`, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// A running `vigil train` holds the run's lock (here this test process holds it, as a live run
// would): --fresh is refused with the holder's pid and moves nothing.
TEST(RunDirCli, FreshRefusesARunInUse) {
  TempDir tmp;
  const auto dir = tmp / "r";
  ASSERT_EQ(run_vigil(tiny_train(dir)).exit_code, 0);
  const auto before = entries(dir);
  const auto run_json = read_file(dir / "run.json");
  {
    const auto lock = vigil::RunLock::acquire(dir);
    const auto r = run_vigil(tiny_train(dir, {"--fresh"}));
    expect_one_line_error(r, "in use by process " + std::to_string(::getpid()));
    EXPECT_EQ(r.exit_code, 1);
  }
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"r"});
  EXPECT_EQ(entries(dir), before);
  EXPECT_EQ(read_file(dir / "run.json"), run_json);
  // Once the lock is free, --fresh moves the run aside as before.
  const auto r = run_vigil(tiny_train(dir, {"--fresh"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("moved the previous run aside to"), std::string::npos) << r.out;
  EXPECT_EQ(entries(tmp.path()).size(), 2u);
}

// A folder that is neither empty nor a run keeps the user's files: training into it, with or
// without --fresh, is refused and nothing in it changes or moves.
TEST(RunDirCli, AFolderThatIsNotARunIsNeverWrittenOrMoved) {
  TempDir tmp;
  const auto dir = tmp / "mine";
  const std::vector<std::string> names = {"last", "metrics.csv", "model.safetensors",
                                          "result.json"};
  for (const auto& n : names) write_file(dir / n, "the user's own " + n + "\n");
  for (const bool fresh : {false, true}) {
    SCOPED_TRACE(fresh);
    const auto r = run_vigil(
        tiny_train(dir, fresh ? std::vector<std::string>{"--fresh"} : std::vector<std::string>{}));
    expect_one_line_error(r, "is not a vigil run");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"mine"});
    EXPECT_EQ(entries(dir), names);
    for (const auto& n : names) EXPECT_EQ(read_file(dir / n), "the user's own " + n + "\n");
  }
  // A folder without files is fine to train into, even with empty folders inside (a refused
  // first start of the language model leaves its data/).
  fs::create_directories(tmp / "empty/data");
  const auto r = run_vigil(tiny_train(tmp / "empty"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A file deeper down is the user's too.
  write_file(tmp / "deep/notes/todo.txt", "mine\n");
  expect_one_line_error(run_vigil(tiny_train(tmp / "deep")), "is not a vigil run");
  EXPECT_EQ(read_file(tmp / "deep/notes/todo.txt"), "mine\n");
}
