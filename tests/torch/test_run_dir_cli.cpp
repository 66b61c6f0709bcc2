// What `vigil train` may do to its --run-dir: --fresh never moves a run another process holds,
// a folder that is not a run is never written into or moved, checkpoints of another run are
// refused, and runs made before run ids (tests/data/run-without-id) still resume and verify.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "train_cli_helpers.hpp"
#include "vigil/run_lock.hpp"

namespace fs = std::filesystem;
using namespace vigil::test;

namespace {

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

nlohmann::json json_of(const fs::path& file) {
  return nlohmann::json::parse(read_file(file));
}

// The run id a checkpoint recorded (null if none).
nlohmann::json checkpoint_run_id(const fs::path& checkpoint) {
  const auto state = json_of(checkpoint / "state.json");
  return state.contains("run_id") ? state.at("run_id") : nlohmann::json();
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

// Every run has an id, in run.json and in each checkpoint; a checkpoint copied in from another
// run is refused on resume, before anything in the run changes.
TEST(RunDirCli, ACheckpointOfAnotherRunIsRefused) {
  TempDir tmp;
  const auto a = tmp / "a", b = tmp / "b";
  ASSERT_EQ(run_vigil(tiny_train(a)).exit_code, 0);
  ASSERT_EQ(run_vigil(tiny_train(b)).exit_code, 0);
  const auto id_a = json_of(a / "run.json").at("run_id");
  const auto id_b = json_of(b / "run.json").at("run_id");
  ASSERT_TRUE(id_a.is_string());
  EXPECT_EQ(id_a.get<std::string>().size(), 16u);
  EXPECT_NE(id_a, id_b);
  for (const auto& name : folders(b / "checkpoints"))
    EXPECT_EQ(checkpoint_run_id(b / "checkpoints" / name), id_b) << name;

  fs::copy(a / "checkpoints/epoch-0001", b / "checkpoints/epoch-0007");
  const auto run_json = read_file(b / "run.json");
  const auto r = run_vigil(tiny_train(b, {"--epochs", "3"}));
  expect_one_line_error(r, "belongs to another run");
  EXPECT_NE(r.err.find("epoch-0007"), std::string::npos) << r.err;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(read_file(b / "run.json"), run_json);
  const auto v = run_vigil({"verify", b.string()});
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_NE(v.out.find("DAMAGED   checkpoints/epoch-0007: belongs to another run"),
            std::string::npos)
      << v.out;
  EXPECT_EQ(folders(b / "checkpoints"),
            (std::vector<std::string>{"epoch-0000", "epoch-0001", "epoch-0007"}));
  // run_id is a record, not an option: there is no flag for it.
  EXPECT_NE(run_vigil(tiny_train(b, {"--run-id", "x"})).exit_code, 0);
}

// A run written before run ids verifies, and resumes with one note; it then has an id, which the
// new checkpoints carry, and later resumes say nothing more about it.
TEST(RunDirCli, ARunWithoutIdResumesWithANote) {
  TempDir tmp;
  const auto dir = tmp / "old";
  fs::copy(source_dir() / "tests/data/run-without-id", dir, fs::copy_options::recursive);
  ASSERT_FALSE(json_of(dir / "run.json").contains("run_id"));
  const auto v = run_vigil({"verify", dir.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  auto r = run_vigil({"train", "--run-dir", dir.string(), "--epochs", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("resuming " + dir.string() + " from checkpoint epoch-0001"),
            std::string::npos)
      << r.out;
  const std::string note = "has no run id";
  EXPECT_NE(r.out.find(note), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(note), r.out.rfind(note)) << r.out;
  const auto id = json_of(dir / "run.json").at("run_id");
  ASSERT_TRUE(id.is_string());
  EXPECT_EQ(checkpoint_run_id(dir / "checkpoints/epoch-0002"), id);

  r = run_vigil({"train", "--run-dir", dir.string(), "--epochs", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find(note), std::string::npos) << r.out;
  EXPECT_EQ(json_of(dir / "run.json").at("run_id"), id);
  EXPECT_EQ(run_vigil({"verify", dir.string()}).exit_code, 0);
}
