// Helpers of the `vigil train` / `vigil eval` tests: quick-run flags, a run shared by a suite,
// killed-and-resumed runs, file comparison, and a child process that can be signalled while it
// trains.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

namespace vigil::test {

/// `err` without the note AddressSanitizer's runtime writes to the same stderr when it refuses an
/// allocation (allocator_may_return_null=1, set by ctest in the ASan build); a release build
/// never prints it, so what is left is what a user sees.
inline std::string without_sanitizer_notes(const std::string& err) {
  static const std::regex note(
      R"(==[0-9]+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes\n)");
  return std::regex_replace(err, note, "");
}

/// The command failed with exactly one line on stderr, "vigil: error: ..." holding `part`, and
/// exit code `code` (nullopt: any failure).
inline void expect_one_line_error(const RunResult& r, const std::string& part,
                                  std::optional<int> code = std::nullopt) {
  if (code)
    EXPECT_EQ(r.exit_code, *code) << r.out << r.err;
  else
    EXPECT_NE(r.exit_code, 0);
  const std::string err = without_sanitizer_notes(r.err);
  EXPECT_EQ(err.rfind("vigil: error: ", 0), 0u) << err;
  EXPECT_NE(err.find(part), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

/// Flags for a tiny, bit-reproducible run: a few hundred examples, a small MLP, one thread.
inline std::vector<std::string> quick_train(const std::filesystem::path& run_dir,
                                            std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"train",
                                   "--run-dir",
                                   run_dir.string(),
                                   "--limit-train",
                                   "512",
                                   "--limit-test",
                                   "300",
                                   "--hidden",
                                   "16",
                                   "--epochs",
                                   "5",
                                   "--threads",
                                   "1",
                                   "--seed",
                                   "7",
                                   "--batch-size",
                                   "64"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

/// A suite whose tests read one `vigil train` run, made once before its first test with the
/// arguments Derived::shared_run_args(dir) and kept in a scratch folder until the suite ends.
template <class Derived>
class SharedRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    result_ = run_vigil(Derived::shared_run_args(shared_run()));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  /// The run directory.
  static std::filesystem::path shared_run() { return dir_->path() / "run"; }
  /// The exit code and output of the run.
  static const RunResult& result() { return result_; }

 private:
  static inline std::unique_ptr<TempDir> dir_;
  static inline RunResult result_;
};

/// Runs `vigil` with args(run, k) for each k of `kills` in turn, each of which must die by
/// SIGKILL (k holds a --debug-kill-after-* flag) and leave `run` without a result.json, then with
/// args(run, resume), which must succeed. Returns the resume's result (or, if a run was not
/// killed, that run's).
template <class Args>
RunResult kill_then_resume(const std::filesystem::path& run, Args&& args,
                           const std::vector<std::vector<std::string>>& kills,
                           const std::vector<std::string>& resume = {}) {
  for (const auto& k : kills) {
    auto killed = run_vigil(args(run, k));
    if (killed.exit_code != 128 + SIGKILL) {
      std::string flags;
      for (const auto& f : k) flags += " " + f;
      ADD_FAILURE() << "not killed (exit code " << killed.exit_code << "):" << flags << "\n"
                    << killed.out << killed.err;
      return killed;
    }
    EXPECT_FALSE(std::filesystem::exists(run / "result.json")) << "a killed run wrote it";
  }
  auto resumed = run_vigil(args(run, resume));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  return resumed;
}

/// kill_then_resume's `kills` for runs killed after each of `batches` optimizer steps in turn.
inline std::vector<std::vector<std::string>> kills_after_batches(
    std::initializer_list<const char*> batches) {
  std::vector<std::vector<std::string>> kills;
  for (const char* b : batches) kills.push_back({"--debug-kill-after-batches", b});
  return kills;
}

/// metrics.csv without its last column (seconds, the only one that differs between runs).
inline std::string metrics_without_seconds(const std::filesystem::path& csv) {
  std::istringstream in(read_file(csv));
  std::string out;
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

/// A CSV file without quoted cells (metrics.csv): its header's names and each row's cells.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

inline CsvTable read_csv(const std::filesystem::path& csv) {
  CsvTable table;
  std::istringstream in(read_file(csv));
  bool first = true;
  for (std::string line; std::getline(in, line); first = false) {
    std::vector<std::string> cells;
    std::istringstream cell_stream(line);
    for (std::string cell; std::getline(cell_stream, cell, ',');) cells.push_back(cell);
    if (first)
      table.header = std::move(cells);
    else
      table.rows.push_back(std::move(cells));
  }
  return table;
}

/// The names of the folders in `dir`, sorted (none if `dir` does not exist).
inline std::vector<std::string> folders(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Every tensor of every .safetensors file of a checkpoint folder: "stem:name" -> bytes. A
/// shard counts as its file ("model-00001-of-00002" as "model"), so both layouts compare.
inline std::map<std::string, std::string> tensors_of(const std::filesystem::path& checkpoint) {
  static const std::regex shard("(.*)-[0-9]{5}-of-[0-9]{5}");
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(checkpoint)) {
    if (e.path().extension() != ".safetensors") continue;
    const auto file = vigil::SafetensorsFile::open(e.path());
    std::smatch m;
    auto stem = e.path().stem().string();
    if (std::regex_match(stem, m, shard)) stem = m[1].str();
    for (const auto& info : file.tensors()) {
      const auto view = file.view(info.name);
      out[stem + ":" + info.name] =
          std::string(reinterpret_cast<const char*>(view.data.data()), view.data.size());
    }
  }
  return out;
}

/// Expects `run` to hold the checkpoints `ref` holds and every tensor of the newest one to be
/// byte-identical to `ref`'s; returns that checkpoint's tensors ("stem:name" -> bytes).
inline std::map<std::string, std::string> expect_same_last_checkpoint(
    const std::filesystem::path& ref, const std::filesystem::path& run) {
  const auto names = folders(ref / "checkpoints");
  EXPECT_FALSE(names.empty());
  EXPECT_EQ(folders(run / "checkpoints"), names);
  if (names.empty()) return {};
  const auto last_ref = tensors_of(ref / "checkpoints" / names.back());
  const auto last_run = tensors_of(run / "checkpoints" / names.back());
  EXPECT_EQ(last_run.size(), last_ref.size());
  for (const auto& [name, bytes] : last_ref) {
    const auto it = last_run.find(name);
    EXPECT_TRUE(it != last_run.end() && it->second == bytes) << name << " is missing or differs";
  }
  return last_ref;
}

/// Expects the finished run `run` to equal `ref`: the same final and best weights byte for byte,
/// the same metrics.csv but for the seconds, and the same outcome in result.json.
inline void expect_same_run(const std::filesystem::path& run, const std::filesystem::path& ref) {
  EXPECT_EQ(read_file(run / "model.safetensors"), read_file(ref / "model.safetensors"))
      << "final weights differ";
  EXPECT_EQ(read_file(run / "best" / "model.safetensors"),
            read_file(ref / "best" / "model.safetensors"))
      << "best weights differ";
  EXPECT_EQ(metrics_without_seconds(run / "metrics.csv"),
            metrics_without_seconds(ref / "metrics.csv"));
  const auto a = nlohmann::json::parse(read_file(run / "result.json"));
  const auto b = nlohmann::json::parse(read_file(ref / "result.json"));
  for (const char* k : {"stop_reason", "best_epoch", "best_value", "test", "global_step"})
    EXPECT_EQ(a.at(k), b.at(k)) << k;
}

/// Runs `vigil` with args(run, kill) in a scratch folder, which must be killed, resumes it with
/// args(run, resume), and expects the run to end as `ref` did (expect_same_run). Returns what the
/// resume printed.
template <class Args>
std::string expect_exact_resume(const std::filesystem::path& ref, Args&& args,
                                const std::vector<std::string>& kill,
                                const std::vector<std::string>& resume = {}) {
  TempDir tmp;
  const auto run = tmp.path() / "run";
  const auto resumed = kill_then_resume(run, args, {kill}, resume);
  if (resumed.exit_code == 0) expect_same_run(run, ref);
  return resumed.out;
}

/// A `vigil` child process with stdout and stderr going to files.
class VigilProcess {
 public:
  VigilProcess(const std::vector<std::string>& args, const std::filesystem::path& out,
               const std::filesystem::path& err)
      : out_(out), err_(err) {
    std::vector<std::string> argv = {VIGIL_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fo, 1);
      ::dup2(fe, 2);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  ~VigilProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  VigilProcess(const VigilProcess&) = delete;
  VigilProcess& operator=(const VigilProcess&) = delete;

  /// Waits (up to `seconds`) until stdout contains `text`; false on timeout or exit.
  bool wait_for_output(const std::string& text, double seconds = 120) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (std::filesystem::exists(out_) && read_file(out_).find(text) != std::string::npos)
        return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        status_ = status;
        return std::filesystem::exists(out_) && read_file(out_).find(text) != std::string::npos;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  /// Waits for the exit; returns the exit code, or 128 + signal.
  int wait() {
    if (!reaped_) {
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -1;
  }
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }

 private:
  std::filesystem::path out_, err_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace vigil::test
