// The durable file layer under injected faults: ENOSPC, EIO and short writes through the FileOps
// seam must surface as IoError with the errno, leave no temporary file and keep the old file.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/io.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::TempDir;

namespace {

enum class Op { Write, Fsync, Close, Rename, Open };

// Real system calls, except that the `fail_at`-th call (1-based) of `op` fails with `err`
// (or, for writes with `short_by` > 0, writes `short_by` bytes fewer and reports that).
class FaultyOps : public FileOps {
 public:
  FaultyOps(Op op, int fail_at, int err) : op_(op), fail_at_(fail_at), err_(err) {}

  int short_by = 0;           // with err == 0: make that write short instead of failing
  std::size_t max_write = 0;  // if > 0, every write transfers at most this many bytes
  int eintr_every = 0;        // if > 0, every n-th write first fails with EINTR
  int calls(Op op) const { return counts_[static_cast<int>(op)]; }

  int open(const char* path, int flags, mode_t mode) override {
    if (hit(Op::Open)) return fail();
    return FileOps::open(path, flags, mode);
  }
  ssize_t write(int fd, const void* data, size_t size) override {
    if (eintr_every > 0 && ++write_attempts_ % eintr_every == 0) {
      errno = EINTR;
      return -1;
    }
    if (hit(Op::Write)) {
      if (err_ == 0 && short_by > 0 && size > static_cast<size_t>(short_by)) {
        return FileOps::write(fd, data, size - short_by);
      }
      if (err_ == 0) return 0;
      return fail();
    }
    if (max_write > 0) size = std::min(size, max_write);
    return FileOps::write(fd, data, size);
  }
  int fsync(int fd) override {
    if (hit(Op::Fsync)) return fail();
    return FileOps::fsync(fd);
  }
  int close(int fd) override {
    if (hit(Op::Close)) {
      (void)FileOps::close(fd);  // like Linux: the descriptor is released even when close fails
      return fail();
    }
    return FileOps::close(fd);
  }
  int rename(const char* from, const char* to) override {
    if (hit(Op::Rename)) return fail();
    return FileOps::rename(from, to);
  }

 private:
  bool hit(Op op) {
    int n = ++counts_[static_cast<int>(op)];
    return op == op_ && n == fail_at_;
  }
  int fail() {
    errno = err_;
    return -1;
  }
  Op op_;
  int fail_at_;
  int err_;
  int counts_[5] = {};
  int write_attempts_ = 0;
};

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(DurableFile, WritesEverythingThroughShortWritesAndEintr) {
  TempDir dir;
  auto ops = std::make_shared<FaultyOps>(Op::Write, -1, 0);
  ops->max_write = 3;
  ops->eintr_every = 4;
  auto f = DurableFile::create(dir / "a", ops);
  std::string text = "the quick brown fox jumps over the lazy dog";
  f.write_all(std::as_bytes(std::span(text.data(), text.size())));
  EXPECT_EQ(f.size(), text.size());
  f.sync();
  f.close();
  f.close();  // a second close is a no-op
  EXPECT_EQ(vigil::test::read_file(dir / "a"), text);
}

TEST(DurableFile, ReportsEnospcAndEioWithErrnoAndFileName) {
  for (int err : {ENOSPC, EIO}) {
    TempDir dir;
    auto ops = std::make_shared<FaultyOps>(Op::Write, 2, err);
    auto f = DurableFile::create(dir / "a", ops);
    std::string text(100, 'x');
    auto bytes = std::as_bytes(std::span(text.data(), text.size()));
    f.write_all(bytes);
    try {
      f.write_all(bytes);
      FAIL() << "no error";
    } catch (const IoError& e) {
      EXPECT_EQ(e.errno_value(), err);
      std::string msg = e.what();
      EXPECT_NE(msg.find((dir / "a").string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::strerror(err)), std::string::npos) << msg;
      EXPECT_NE(msg.find("after 100 bytes"), std::string::npos) << msg;
    }
  }
}

TEST(DurableFile, ShortWriteThenNoProgressIsAnError) {
  TempDir dir;
  // A short write is continued; the continuation then makes no progress (write returns 0).
  auto ops = std::make_shared<FaultyOps>(Op::Write, 1, 0);
  ops->short_by = 10;
  auto f = DurableFile::create(dir / "a", ops);
  std::string text(50, 'y');
  f.write_all(std::as_bytes(std::span(text.data(), text.size())));
  EXPECT_EQ(vigil::test::read_file(dir / "a").size(), 50u);

  auto zero = std::make_shared<FaultyOps>(Op::Write, 1, 0);
  auto g = DurableFile::create(dir / "b", zero);
  try {
    g.write_all(std::as_bytes(std::span(text.data(), text.size())));
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), 0);
    EXPECT_NE(std::string(e.what()).find("no progress"), std::string::npos);
  }
}

TEST(DurableFile, FsyncAndCloseFailuresAreReported) {
  TempDir dir;
  auto ops = std::make_shared<FaultyOps>(Op::Fsync, 1, EIO);
  auto f = DurableFile::create(dir / "a", ops);
  try {
    f.sync();
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), EIO);
    EXPECT_NE(std::string(e.what()).find("fsync"), std::string::npos);
  }
  auto c = std::make_shared<FaultyOps>(Op::Close, 1, EIO);
  auto g = DurableFile::create(dir / "b", c);
  EXPECT_THROW(g.close(), IoError);
  EXPECT_EQ(g.fd(), -1);
  EXPECT_THROW(g.sync(), IoError);  // closed files cannot be synced
}

TEST(DurableFile, CreateRefusesExistingFiles) {
  TempDir dir;
  vigil::test::write_file(dir / "a", "old");
  try {
    (void)DurableFile::create(dir / "a");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), EEXIST);
  }
  EXPECT_EQ(vigil::test::read_file(dir / "a"), "old");
  EXPECT_THROW(fsync_dir(dir / "missing"), IoError);
  EXPECT_NO_THROW(fsync_dir(dir.path()));
}

TEST(AtomicWriteFile, ReplacesContentAndLeavesOnlyTheFinalFile) {
  TempDir dir;
  atomic_write_file(dir / "state.json", "one");
  atomic_write_file(dir / "state.json", "two");
  EXPECT_EQ(vigil::test::read_file(dir / "state.json"), "two");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"state.json"});
  auto tmp = temporary_path_for(dir / "state.json");
  EXPECT_EQ(tmp.parent_path(), dir.path());
  EXPECT_TRUE(is_temporary_name(tmp.filename().string()));
  EXPECT_FALSE(is_temporary_name("state.json"));
}

// Every failure before the rename keeps the old content and removes the temporary file.
TEST(AtomicWriteFile, FailureAtAnyStepKeepsTheOldFile) {
  struct Case {
    Op op;
    int at;
    int err;
  };
  for (Case c : {Case{Op::Write, 1, ENOSPC}, Case{Op::Write, 1, EIO}, Case{Op::Write, 1, 0},
                 Case{Op::Fsync, 1, EIO}, Case{Op::Close, 1, EIO}, Case{Op::Rename, 1, EXDEV},
                 Case{Op::Open, 1, EMFILE}}) {
    SCOPED_TRACE(static_cast<int>(c.op));
    TempDir dir;
    atomic_write_file(dir / "f", "old content");
    auto ops = std::make_shared<FaultyOps>(c.op, c.at, c.err);
    try {
      atomic_write_file(dir / "f", std::string(1000, 'n'), ops);
      FAIL() << "no error";
    } catch (const IoError& e) {
      EXPECT_EQ(e.errno_value(), c.err);
    }
    EXPECT_EQ(vigil::test::read_file(dir / "f"), "old content");
    EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"f"});
  }
}

TEST(AtomicWriteFile, FolderFsyncFailureIsReportedAfterTheRename) {
  TempDir dir;
  // Fsync #1 is the file's, #2 the folder's.
  auto ops = std::make_shared<FaultyOps>(Op::Fsync, 2, EIO);
  EXPECT_THROW(atomic_write_file(dir / "f", "new", ops), IoError);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"f"});
}

TEST(AtomicWriteFile, SyncsTheFileAndTheFolder) {
  TempDir dir;
  auto ops = std::make_shared<FaultyOps>(Op::Write, -1, 0);
  atomic_write_file(dir / "f", "x", ops);
  EXPECT_EQ(ops->calls(Op::Fsync), 2);
  EXPECT_EQ(ops->calls(Op::Rename), 1);
}

// Atomic replacement is for regular files: a symbolic link keeps pointing at its target, which
// gets the new content (through a chain of relative links, and a dangling one creates it).
TEST(AtomicWriteFile, FollowsSymbolicLinksAndReplacesTheTarget) {
  TempDir dir;
  std::filesystem::create_directories(dir / "real");
  atomic_write_file(dir / "real/target.svg", "old");
  std::filesystem::create_symlink("real/target.svg", dir / "hop");
  std::filesystem::create_symlink("hop", dir / "out.svg");
  atomic_write_file(dir / "out.svg", "new");
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "out.svg"));
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "hop"));
  EXPECT_EQ(vigil::test::read_file(dir / "real/target.svg"), "new");
  EXPECT_EQ(names_in(dir / "real"), std::vector<std::string>{"target.svg"});

  std::filesystem::create_symlink("real/created.svg", dir / "dangling");
  atomic_write_file(dir / "dangling", "made");
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "dangling"));
  EXPECT_EQ(vigil::test::read_file(dir / "real/created.svg"), "made");

  std::filesystem::create_symlink("loop", dir / "loop");
  try {
    atomic_write_file(dir / "loop", "x");
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), ELOOP);
  }
}

// A FIFO is a channel, not stored content: it is written through and stays a FIFO.
TEST(AtomicWriteFile, WritesThroughAFifo) {
  TempDir dir;
  const auto fifo = dir / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // A reader opened first (without blocking) lets the writer open at once; the few bytes stay
  // in the pipe's buffer until read below.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0) << std::strerror(errno);
  atomic_write_file(fifo, "through the pipe");
  std::string got(64, '\0');
  const ssize_t n = ::read(reader, got.data(), got.size());
  ::close(reader);
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  ASSERT_GT(n, 0);
  got.resize(static_cast<std::size_t>(n));
  EXPECT_EQ(got, "through the pipe");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"out.fifo"});
}

// A character device is written through (its errors are reported) and never replaced; a folder
// is refused. Device nodes are made in a scratch folder, so this needs root (else skipped).
TEST(AtomicWriteFile, WritesThroughCharacterDevicesAndNeverReplacesThem) {
  TempDir dir;
  const auto null_dev = dir / "null";
  const auto full_dev = dir / "full";
  if (::mknod(null_dev.c_str(), S_IFCHR | 0666, ::makedev(1, 3)) != 0 ||
      ::mknod(full_dev.c_str(), S_IFCHR | 0666, ::makedev(1, 7)) != 0) {
    GTEST_SKIP() << "cannot make device nodes: " << std::strerror(errno);
  }
  EXPECT_NO_THROW(atomic_write_file(null_dev, "discarded"));
  EXPECT_TRUE(std::filesystem::is_character_file(null_dev));
  try {
    atomic_write_file(full_dev, "no room");
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_EQ(e.errno_value(), ENOSPC);
  }
  EXPECT_TRUE(std::filesystem::is_character_file(full_dev));
  std::filesystem::create_directories(dir / "folder");
  EXPECT_THROW(atomic_write_file(dir / "folder", "x"), IoError);
  EXPECT_TRUE(std::filesystem::is_directory(dir / "folder"));
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"folder", "full", "null"}));
}

// A save that fails at the n-th write, for every n a save makes, loses nothing committed; the
// next save, once the "disk" works again, succeeds.
TEST(SaveSafetensors, EnospcAtEveryWriteKeepsTheCommittedFile) {
  std::vector<float> w(1000), b(10);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  std::vector<TensorView> v1 = {{"w", DType::F32, {1000}, std::as_bytes(std::span(w))},
                                {"b", DType::F32, {10}, std::as_bytes(std::span(b))}};
  TempDir dir;
  auto path = dir / "model.safetensors";
  save_safetensors(path, v1, {{"epoch", "1"}});
  auto committed = vigil::test::read_file(path);

  // Count the writes of one save done in 512-byte blocks.
  auto counter = std::make_shared<FaultyOps>(Op::Write, -1, 0);
  auto opts = SafetensorsWriteOptions{}.with_block_bytes(512);
  save_safetensors(dir / "probe.safetensors", v1, {},
                   SafetensorsWriteOptions(opts).with_ops(counter));
  std::filesystem::remove(dir / "probe.safetensors");
  int writes = counter->calls(Op::Write);
  ASSERT_GE(writes, 9);  // header + 4000/512 blocks + the bias

  std::fill(w.begin(), w.end(), -1.0f);
  for (int n = 1; n <= writes; ++n) {
    for (int err : {ENOSPC, EIO}) {
      auto ops = std::make_shared<FaultyOps>(Op::Write, n, err);
      try {
        save_safetensors(path, v1, {{"epoch", "2"}}, SafetensorsWriteOptions(opts).with_ops(ops));
        FAIL() << "write " << n << " did not fail";
      } catch (const IoError& e) {
        EXPECT_EQ(e.errno_value(), err);
      }
      ASSERT_EQ(vigil::test::read_file(path), committed) << "write " << n;
      ASSERT_EQ(names_in(dir.path()), std::vector<std::string>{"model.safetensors"});
    }
  }
  auto fsync_fail = std::make_shared<FaultyOps>(Op::Fsync, 1, EIO);
  EXPECT_THROW(save_safetensors(path, v1, {}, SafetensorsWriteOptions{}.with_ops(fsync_fail)),
               IoError);
  EXPECT_EQ(vigil::test::read_file(path), committed);

  save_safetensors(path, v1, {{"epoch", "2"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().at("epoch"), "2");
  float first;
  std::memcpy(&first, f.view("w").data.data(), 4);
  EXPECT_EQ(first, -1.0f);
}

// The writer hands the caller's own memory to write(2) in blocks of at most block_bytes: no
// staging copy of the state.
class RecordingOps : public FileOps {
 public:
  struct Call {
    const std::byte* data;
    std::size_t size;
  };
  std::vector<Call> calls;
  ssize_t write(int fd, const void* data, size_t size) override {
    calls.push_back({static_cast<const std::byte*>(data), size});
    return FileOps::write(fd, data, size);
  }
};

TEST(SaveSafetensors, StreamsStraightFromCallerMemoryInBlocks) {
  std::vector<std::byte> big(100'000), small(7);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 31);
  std::vector<TensorView> tensors = {{"big", DType::U8, {100'000}, big},
                                     {"small", DType::U8, {7}, small}};
  TempDir dir;
  auto ops = std::make_shared<RecordingOps>();
  save_safetensors(dir / "s.safetensors", tensors, {},
                   SafetensorsWriteOptions{}.with_block_bytes(4096).with_ops(ops));
  ASSERT_GE(ops->calls.size(), 2u);
  std::size_t from_caller = 0;
  for (std::size_t i = 1; i < ops->calls.size(); ++i) {
    const auto& c = ops->calls[i];
    EXPECT_LE(c.size, 4096u);
    bool in_big = c.data >= big.data() && c.data + c.size <= big.data() + big.size();
    bool in_small = c.data >= small.data() && c.data + c.size <= small.data() + small.size();
    EXPECT_TRUE(in_big || in_small) << "write " << i << " is not from the caller's buffers";
    from_caller += c.size;
  }
  EXPECT_EQ(from_caller, big.size() + small.size());
  auto f = SafetensorsFile::open(dir / "s.safetensors");
  EXPECT_EQ(std::memcmp(f.view("big").data.data(), big.data(), big.size()), 0);
}
