// Tests that really fault: ENOSPC/EIO at every file-system call of a save, a process killed by
// SIGKILL at random points of a loop of saves, and a really full (tmpfs) file system.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/core.h>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"

namespace vigil {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

// A "frozen" file that never changes is shared (hard-linked) by every checkpoint after the first,
// so the faults hit links as well as writes.
struct Training {
  std::vector<float> weights = std::vector<float>(256);
  std::vector<float> moments = std::vector<float>(256);
  std::vector<float> frozen = std::vector<float>(256, 0.5f);
  SaveRequest request(std::int64_t epoch, double val_loss) {
    std::fill(weights.begin(), weights.end(), static_cast<float>(epoch));
    std::fill(moments.begin(), moments.end(), static_cast<float>(epoch) + 0.5f);
    SaveRequest r;
    r.epoch = epoch;
    r.step = epoch * 10;
    r.metrics["val_loss"] = val_loss;
    r.files["model"] = {TensorView{"w", DType::F32, {16, 16}, std::as_bytes(std::span(weights))}};
    r.files["optimizer"] = {TensorView{"m", DType::F32, {256}, std::as_bytes(std::span(moments))}};
    r.files["frozen"] = {TensorView{"f", DType::F32, {256}, std::as_bytes(std::span(frozen))}};
    r.state = {{"epoch", epoch}};
    return r;
  }
};

std::vector<std::string> temporaries_under(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (is_temporary_name(e.path().filename().string())) out.push_back(e.path().string());
  return out;
}

// A scratch folder on a RAM file system when the test may mount one (root), else on the temp
// disk. Failure handling and kill-atomicity (rename) behave the same on tmpfs; only fsync is
// free there, which keeps these many-save tests within seconds on a loaded machine.
class Scratch {
 public:
  Scratch() {
    if (::geteuid() == 0 &&
        ::mount("tmpfs", tmp_.path().c_str(), "tmpfs", 0, "size=64m,mode=0700") == 0) {
      mounted_ = true;
    }
  }
  ~Scratch() {
    if (mounted_) ::umount2(tmp_.path().c_str(), MNT_DETACH);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  const fs::path& path() const { return tmp_.path(); }
  fs::path operator/(const std::string& name) const { return tmp_ / name; }

 private:
  TempDir tmp_;
  bool mounted_ = false;
};

// Counts every call and fails the N-th one (1-based) with `err`; 0 = never.
class CountingFaultOps : public FileOps {
 public:
  int fail_at = 0;
  int err = ENOSPC;
  int calls = 0;
  std::string failed_call;

  int open(const char* path, int flags, mode_t mode) override {
    if (hit("open")) return -1;
    return FileOps::open(path, flags, mode);
  }
  ssize_t write(int fd, const void* data, size_t size) override {
    if (hit("write")) return -1;
    return FileOps::write(fd, data, size);
  }
  ssize_t pwrite(int fd, const void* data, size_t size, off_t offset) override {
    if (hit("pwrite")) return -1;
    return FileOps::pwrite(fd, data, size, offset);
  }
  int fsync(int fd) override {
    if (hit("fsync")) return -1;
    return FileOps::fsync(fd);
  }
  int close(int fd) override {
    // The descriptor must still be released, or the test leaks it; report the error anyway.
    if (hit("close")) {
      (void)FileOps::close(fd);
      errno = err;
      return -1;
    }
    return FileOps::close(fd);
  }
  int rename(const char* from, const char* to) override {
    if (hit("rename")) return -1;
    return FileOps::rename(from, to);
  }
  int mkdir(const char* path, mode_t mode) override {
    if (hit("mkdir")) return -1;
    return FileOps::mkdir(path, mode);
  }
  int link(const char* from, const char* to) override {
    if (hit("link")) return -1;
    return FileOps::link(from, to);
  }

 private:
  bool hit(const char* what) {
    ++calls;
    if (fail_at != calls) return false;
    failed_call = what;
    errno = err;
    return true;
  }
};

// Every call position of one save (commit, best/, last, rotation, manifest) fails in turn, with
// ENOSPC and with EIO: a clear error, no temporary left, committed checkpoints untouched, and the
// next save succeeds.
TEST(Faults, EveryFailingCallOfASaveIsSurvived) {
  auto options = CheckpointManagerOptions{}.with_keep_last(2);
  Training run;
  // How many calls one save makes (a rotating, best-improving save: the longest path).
  int total_calls = 0;
  {
    TempDir tmp;
    auto ops = std::make_shared<CountingFaultOps>();
    CheckpointManager m(tmp.path(), CheckpointManagerOptions{options}.with_ops(ops));
    ASSERT_TRUE(m.save(run.request(0, 0.9)).saved);
    ASSERT_TRUE(m.save(run.request(1, 0.8)).saved);
    ops->calls = 0;
    ASSERT_TRUE(m.save(run.request(2, 0.7)).saved);
    total_calls = ops->calls;
  }
  ASSERT_GT(total_calls, 15);
  int failures_seen = 0;
  bool failed_a_link = false;
  Scratch scratch;
  for (int err : {ENOSPC, EIO}) {
    for (int n = 1; n <= total_calls; ++n) {
      SCOPED_TRACE(testing::Message() << "errno " << err << ", failing call " << n);
      auto dir = scratch / fmt::format("run-{}-{}", err, n);
      struct Cleanup {
        fs::path p;
        ~Cleanup() {
          std::error_code ec;
          fs::remove_all(p, ec);
        }
      } cleanup{dir};
      auto& tmp = dir;
      auto ops = std::make_shared<CountingFaultOps>();
      CheckpointManager m(tmp, CheckpointManagerOptions{options}.with_ops(ops));
      ASSERT_TRUE(m.save(run.request(0, 0.9)).saved);
      ASSERT_TRUE(m.save(run.request(1, 0.8)).saved);
      auto before = m.checkpoints();
      ops->calls = 0;
      ops->fail_at = n;
      ops->err = err;
      bool threw = false;
      try {
        (void)m.save(run.request(2, 0.7));
      } catch (const IoError& e) {
        threw = true;
        ++failures_seen;
        failed_a_link |=
            ops->failed_call == "link" && std::string(e.what()).find("frozen") != std::string::npos;
        std::string what = e.what();
        EXPECT_NE(what.find(std::strerror(err)), std::string::npos)
            << ops->failed_call << ": " << what;
        EXPECT_EQ(what.find('\n'), std::string::npos);
      }
      EXPECT_TRUE(threw) << "call " << n << " (" << ops->failed_call << ") failed silently";
      ops->fail_at = 0;
      EXPECT_EQ(temporaries_under(tmp), std::vector<std::string>{});
      // Committed checkpoints are intact with their data (epoch 0 may have rotated out only if
      // the failure came after epoch 2 was committed and best/ was updated).
      for (const auto& c : before) {
        if (!fs::exists(c.path)) continue;
        EXPECT_NO_THROW(verify_checkpoint(c.path)) << c.name;
        EXPECT_EQ(test::first_f32(c.path / "model.safetensors"), static_cast<float>(c.epoch));
        EXPECT_EQ(test::first_f32(c.path / "frozen.safetensors", "f"), 0.5f);
      }
      EXPECT_TRUE(fs::exists(before.back().path));
      // Space is back: the next save succeeds and the run directory is consistent.
      auto r = m.save(run.request(3, 0.6));
      ASSERT_TRUE(r.saved);
      EXPECT_EQ(m.latest()->name, "epoch-0003");
      EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(tmp)), 3.0f);
    }
  }
  EXPECT_EQ(failures_seen, 2 * total_calls);
  EXPECT_TRUE(failed_a_link) << "no fault hit the link of the shared file";
}

// A child saves in a loop (resuming from the newest checkpoint each time) and is killed by
// SIGKILL at random points; after every kill the run directory opens with only intact
// checkpoints, nothing skipped, and the newest checkpoint the child reported as committed.
TEST(Faults, SigkillDuringSavesLosesNothingCommitted) {
  Scratch tmp;
  auto options = CheckpointManagerOptions{}.with_keep_last(3).with_save_top_k(1);
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> delay_us(0, 15000);
  int resumed_past_zero = 0;
  int shared = 0;  // checkpoints seen sharing their frozen file
  for (int iteration = 0; iteration < 30; ++iteration) {
    SCOPED_TRACE(testing::Message() << "iteration " << iteration);
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(pipefd[0]);
      try {
        CheckpointManager m(tmp.path(), options);
        auto latest = m.latest();
        std::int64_t epoch = latest ? latest->epoch + 1 : 0;
        Training run;
        for (;; ++epoch) {
          auto r = m.save(run.request(epoch, 1.0 / static_cast<double>(epoch + 1)));
          std::int64_t committed = r.checkpoint->epoch;
          if (::write(pipefd[1], &committed, sizeof committed) != sizeof committed) ::_exit(3);
        }
      } catch (...) {
        ::_exit(2);
      }
    }
    ::close(pipefd[1]);
    // Let it get going (the lock must be taken before we may kill) and then kill at random.
    std::int64_t reported = -1, value = 0;
    if (::read(pipefd[0], &value, sizeof value) == sizeof value) reported = value;
    ::usleep(static_cast<useconds_t>(delay_us(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited by itself with " << WEXITSTATUS(status);
    while (::read(pipefd[0], &value, sizeof value) == sizeof value) reported = value;
    ::close(pipefd[0]);
    ASSERT_GE(reported, 0);

    CheckpointManager m(tmp.path(), options);
    EXPECT_TRUE(m.open_report().skipped.empty()) << m.open_report().skipped[0].second;
    EXPECT_EQ(temporaries_under(tmp.path()), std::vector<std::string>{});
    auto latest = m.latest();
    ASSERT_TRUE(latest);
    // The child may have committed one more after its last report, never fewer.
    EXPECT_GE(latest->epoch, reported);
    EXPECT_LE(latest->epoch, reported + 1);
    bool reported_present = false;
    for (const auto& c : m.checkpoints()) {
      EXPECT_EQ(test::first_f32(c.path / "model.safetensors"), static_cast<float>(c.epoch));
      EXPECT_EQ(test::first_f32(c.path / "frozen.safetensors", "f"), 0.5f);
      struct stat st {};
      if (::stat((c.path / "frozen.safetensors").c_str(), &st) == 0 && st.st_nlink > 1) ++shared;
      reported_present |= c.epoch == reported;
    }
    EXPECT_TRUE(reported_present);
    EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(tmp.path())),
              static_cast<float>(m.best()->epoch));
    if (latest->epoch > 0) ++resumed_past_zero;
  }
  EXPECT_GT(resumed_past_zero, 20);
  EXPECT_GT(shared, 20);
}

// A real full file system (root only: a 2 MiB tmpfs).
class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
    if (::mount("tmpfs", tmp.path().c_str(), "tmpfs", 0, "size=2m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    mounted = true;
  }
  void TearDown() override {
    if (mounted) ::umount2(tmp.path().c_str(), MNT_DETACH);
  }
  TempDir tmp;
  bool mounted = false;
};

TEST_F(FullDisk, ENOSPCIsClearLosesNothingAndTheNextSaveSucceeds) {
  auto run_dir = tmp / "run";
  std::vector<float> big(64 * 1024, 1.0f);     // 256 KiB a checkpoint
  std::vector<float> frozen(64 * 1024, 0.5f);  // 256 KiB once, then shared
  auto request = [&](std::int64_t epoch) {
    std::fill(big.begin(), big.end(), static_cast<float>(epoch));
    SaveRequest r;
    r.epoch = epoch;
    r.metrics["val_loss"] = 1.0 / static_cast<double>(epoch + 1);
    r.files["model"] = {TensorView{"w", DType::F32, {big.size()}, std::as_bytes(std::span(big))}};
    r.files["frozen"] = {
        TensorView{"f", DType::F32, {frozen.size()}, std::as_bytes(std::span(frozen))}};
    return r;
  };
  // A filler file stands for whatever else fills the disk; deleting it gives the space back.
  fs::create_directories(run_dir);
  test::write_file(tmp / "filler", std::string(512 * 1024, 'x'));
  CheckpointManager m(run_dir);
  std::int64_t epoch = 0;
  bool full = false;
  for (; epoch < 20; ++epoch) {
    try {
      (void)m.save(request(epoch));
    } catch (const IoError& e) {
      EXPECT_EQ(e.errno_value(), ENOSPC) << e.what();
      EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos)
          << e.what();
      full = true;
      break;
    }
  }
  ASSERT_TRUE(full) << "2 MiB never filled up";
  EXPECT_EQ(temporaries_under(run_dir), std::vector<std::string>{});
  auto committed = m.checkpoints();
  ASSERT_GE(committed.size(), 1u);
  for (const auto& c : committed) {
    EXPECT_NO_THROW(verify_checkpoint(c.path)) << c.name;
    EXPECT_EQ(test::first_f32(c.path / "model.safetensors"), static_cast<float>(c.epoch));
    EXPECT_EQ(test::first_f32(c.path / "frozen.safetensors", "f"), 0.5f);
  }
  fs::remove(tmp / "filler");
  auto r = m.save(request(epoch));
  EXPECT_TRUE(r.saved);
  EXPECT_NO_THROW(verify_checkpoint(r.checkpoint->path));
  EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(run_dir)),
            static_cast<float>(epoch));
  for (const auto& c : committed) EXPECT_NO_THROW(verify_checkpoint(c.path)) << c.name;
}

}  // namespace
}  // namespace vigil
