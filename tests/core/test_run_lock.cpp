// One writer per run directory: in-process, across processes, and after the holder is killed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/run_lock.hpp"

namespace vigil {
namespace {

using test::TempDir;

TEST(RunLock, SecondLockInTheSameProcessNamesThisPid) {
  TempDir tmp;
  auto a = RunLock::acquire(tmp.path());
  EXPECT_TRUE(a.held());
  try {
    RunLock::acquire(tmp.path());
    FAIL() << "second lock granted";
  } catch (const LockError& e) {
    EXPECT_EQ(e.holder_pid(), ::getpid());
    EXPECT_NE(std::string(e.what()).find(std::to_string(::getpid())), std::string::npos);
  }
  a.release();
  EXPECT_FALSE(a.held());
  auto b = RunLock::acquire(tmp.path());
  RunLock moved = std::move(b);
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(b.held());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_THROW(RunLock::acquire(tmp.path()), LockError);
}

TEST(RunLock, AnotherProcessIsNamedAndAKilledHolderFreesTheLock) {
  TempDir tmp;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      auto lock = RunLock::acquire(tmp.path());
      char c = 'y';
      if (::write(ready[1], &c, 1) != 1) ::_exit(2);
      for (;;) ::pause();
    } catch (...) {
      ::_exit(1);
    }
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  try {
    RunLock::acquire(tmp.path());
    ADD_FAILURE() << "lock granted while another process holds it";
  } catch (const LockError& e) {
    EXPECT_EQ(e.holder_pid(), child);
    EXPECT_NE(std::string(e.what()).find("in use by process " + std::to_string(child)),
              std::string::npos)
        << e.what();
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  // The kernel dropped the flock with the process: a stale lock file does not block.
  EXPECT_NO_THROW(RunLock::acquire(tmp.path()));
}

TEST(RunLock, ASecondManagerOnTheSameRunDirectoryIsRefused) {
  TempDir tmp;
  CheckpointManager first(tmp.path());
  EXPECT_THROW(CheckpointManager second(tmp.path()), LockError);
}

TEST(RunLock, AManagerTakesOverALockItsCallerHolds) {
  TempDir tmp;
  auto lock = RunLock::acquire(tmp.path());
  {
    CheckpointManager manager(tmp.path(), CheckpointManagerOptions{}, std::move(lock));
    EXPECT_FALSE(lock.held());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_THROW(RunLock::acquire(tmp.path()), LockError);
  }
  EXPECT_NO_THROW(RunLock::acquire(tmp.path()));  // released with the manager
  // A lock of another folder, or none, is refused rather than leaving the run unlocked.
  TempDir other;
  EXPECT_THROW(CheckpointManager(tmp.path(), CheckpointManagerOptions{}, RunLock{}), OptionError);
  EXPECT_THROW(
      CheckpointManager(tmp.path(), CheckpointManagerOptions{}, RunLock::acquire(other.path())),
      OptionError);
}

}  // namespace
}  // namespace vigil
