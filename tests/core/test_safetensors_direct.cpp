// Large files (64 MiB and more) are written with O_DIRECT through an aligned block: the bytes
// must equal the page-cache path's byte for byte, the page cache must stay untouched, and
// checkpoints and verification must work on them as on small files.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "test_support.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/safetensors.hpp"

namespace {

using namespace vigil;
using vigil::test::read_file;
using vigil::test::TempDir;

// A pass-through file layer: any FileOps other than FileOps::real() gets the page-cache path.
class PassThroughOps : public FileOps {};

struct BigState {
  std::vector<std::byte> a, b, c;
  std::vector<TensorView> views;
  BigState() {
    std::mt19937_64 rng(7);
    auto fill = [&](std::vector<std::byte>& v, std::size_t n) {
      v.resize(n);
      for (std::size_t i = 0; i + 8 <= n; i += 8) {
        auto x = rng();
        std::memcpy(v.data() + i, &x, 8);
      }
      for (std::size_t i = n / 8 * 8; i < n; ++i) v[i] = std::byte(rng());
    };
    // Odd sizes: neither the header nor the tensors nor the end fall on a 4 KiB boundary.
    fill(a, 5'000'001 * 4);
    fill(b, 7 * 1'234'567 * 2);
    fill(c, (std::size_t{40} << 20) + 13);
    views = {{"layer.a", DType::F32, {5'000'001}, a},
             {"layer.b", DType::BF16, {7, 1'234'567}, b},
             {"bytes", DType::U8, {c.size()}, c}};
  }
  std::size_t bytes() const { return a.size() + b.size() + c.size(); }
};

bool direct_io_works(const std::filesystem::path& dir) {
  auto probe = dir / "probe";
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT, 0644);
  if (fd < 0) return false;
  void* block = std::aligned_alloc(4096, 4096);
  std::memset(block, 0, 4096);
  bool ok = ::write(fd, block, 4096) == 4096;
  std::free(block);
  ::close(fd);
  ::unlink(probe.c_str());
  return ok;
}

// Fraction of the file's pages that are in the page cache.
double cached_fraction(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  auto size = static_cast<std::size_t>(::lseek(fd, 0, SEEK_END));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  EXPECT_NE(p, MAP_FAILED);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  EXPECT_EQ(::mincore(p, size, resident.data()), 0);
  ::munmap(p, size);
  std::size_t n = 0;
  for (auto r : resident) n += r & 1;
  return static_cast<double>(n) / static_cast<double>(resident.size());
}

TEST(SafetensorsDirect, LargeFileEqualsThePageCachePathByteForByte) {
  TempDir dir;
  BigState s;
  ASSERT_GE(s.bytes(), std::size_t{64} << 20);
  save_safetensors(dir / "direct.safetensors", s.views);
  save_safetensors(dir / "buffered.safetensors", s.views, {},
                   SafetensorsWriteOptions{}.with_ops(std::make_shared<PassThroughOps>()));
  if (direct_io_works(dir.path())) {
    // Written around the page cache (at most the unaligned tail page is cached)...
    EXPECT_LT(cached_fraction(dir / "direct.safetensors"), 0.01);
    // ...unlike the buffered file.
    EXPECT_GT(cached_fraction(dir / "buffered.safetensors"), 0.5);
  }
  const auto direct = read_file(dir / "direct.safetensors");
  const auto buffered = read_file(dir / "buffered.safetensors");
  ASSERT_EQ(direct.size(), buffered.size());
  EXPECT_TRUE(direct == buffered) << "the two write paths produced different bytes";

  auto f = SafetensorsFile::open(dir / "direct.safetensors");  // verifies every checksum
  for (const auto& v : s.views) {
    auto got = f.view(v.name);
    ASSERT_EQ(got.data.size(), v.data.size()) << v.name;
    EXPECT_EQ(std::memcmp(got.data.data(), v.data.data(), v.data.size()), 0) << v.name;
  }
}

TEST(SafetensorsDirect, LargeCheckpointVerifiesAndCatchesAFlippedByte) {
  TempDir dir;
  BigState s;
  CheckpointContent content;
  content.files["model"] = s.views;
  auto info = write_checkpoint(dir / "ck", content);
  ASSERT_EQ(info.files.size(), 1u);
  // The whole-file XXH3 recorded while the aligned blocks went out matches the file on disk.
  EXPECT_EQ(info.files[0].xxh3, xxh3_file(dir / "ck" / "model.safetensors"));
  EXPECT_NO_THROW(verify_checkpoint(dir / "ck"));

  // Flip one byte deep inside the second tensor: the per-tensor check (read with pread) names it.
  auto path = dir / "ck" / "model.safetensors";
  auto f = SafetensorsFile::open(path, SafetensorsReadOptions{}.with_verify_checksums(false));
  const auto* b = f.find("layer.b");
  ASSERT_NE(b, nullptr);
  const auto offset = static_cast<off_t>(f.file_size() - f.tensors().back().end + b->begin + 12345);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  unsigned char byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, offset), 1);
  byte ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &byte, 1, offset), 1);
  ::close(fd);
  try {
    (void)SafetensorsFile::open(path);
    FAIL() << "a flipped byte went unnoticed";
  } catch (const FormatError& e) {
    EXPECT_EQ(e.kind(), FormatErrorKind::ChecksumMismatch);
    EXPECT_NE(std::string(e.what()).find("layer.b"), std::string::npos) << e.what();
  }
  EXPECT_THROW(verify_checkpoint(dir / "ck"), CheckpointError);
}

// The whole-file hash is computed as the blocks fill (the writer thread writes the previous
// block meanwhile); it must equal a hash of the file read back, on both paths and for a block
// larger than the file (no block goes to the writer thread at all).
TEST(SafetensorsDirect, FileHashEqualsTheFileReadBack) {
  TempDir dir;
  BigState s;
  struct Case {
    const char* name;
    SafetensorsWriteOptions options;
  };
  const std::vector<Case> cases = {
      {"direct.safetensors", SafetensorsWriteOptions{}.with_file_hash(true)},
      {"small-blocks.safetensors",
       SafetensorsWriteOptions{}.with_file_hash(true).with_block_bytes((std::size_t{1} << 20) + 1)},
      {"one-block.safetensors",
       SafetensorsWriteOptions{}.with_file_hash(true).with_block_bytes(std::size_t{128} << 20)},
      {"buffered.safetensors",
       SafetensorsWriteOptions{}.with_file_hash(true).with_ops(std::make_shared<PassThroughOps>())},
  };
  std::string reference;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::optional<std::uint64_t> digest;
    atomic_write_file_with(
        dir / c.name,
        [&](DurableFile& f) { digest = write_safetensors(f, s.views, {}, c.options); },
        c.options.ops);
    ASSERT_TRUE(digest.has_value());
    EXPECT_EQ(*digest, xxh3_file(dir / c.name));
    auto bytes = read_file(dir / c.name);
    if (reference.empty())
      reference = bytes;
    else
      EXPECT_TRUE(bytes == reference) << "the write paths produced different bytes";
  }
  // Off by default: nothing is hashed, nothing returned.
  std::optional<std::uint64_t> none = 1;
  atomic_write_file_with(dir / "plain.safetensors",
                         [&](DurableFile& f) { none = write_safetensors(f, s.views); });
  EXPECT_FALSE(none.has_value());
}

// A real write error of the device (EFBIG from a file-size limit, at the first block on the
// caller's thread and deep in the file on the writer thread): the save fails with the errno in
// its message, stops copying, and leaves neither the file nor a temporary behind. In a child
// process, because the limit applies to the whole process.
TEST(SafetensorsDirect, AWriteErrorOnTheWriterThreadFailsTheSaveCleanly) {
  TempDir dir;
  if (!direct_io_works(dir.path())) GTEST_SKIP() << "no O_DIRECT on this file system";
  // A file of exactly ten 8 MiB blocks: every write after the first comes from the writer
  // thread (no partial last block the caller would write itself), so an error the writer
  // dropped could not be caught later.
  constexpr std::size_t kFileBytes = std::size_t{80} << 20;
  std::vector<std::byte> data(kFileBytes - 4096, std::byte{0x5a});
  std::vector<TensorView> views;
  for (int i = 0; i < 4; ++i) {  // the header's length depends on the size's digits
    views = {{"bytes", DType::U8, {data.size()}, data}};
    save_safetensors(dir / "probe.safetensors", views);
    const auto file = std::filesystem::file_size(dir / "probe.safetensors");
    if (file == kFileBytes) break;
    data.resize(data.size() + kFileBytes - file);
  }
  ASSERT_EQ(std::filesystem::file_size(dir / "probe.safetensors"), kFileBytes);
  std::filesystem::remove(dir / "probe.safetensors");
  for (rlim_t limit : {rlim_t{1} << 20, rlim_t{48} << 20}) {
    SCOPED_TRACE(testing::Message() << "file size limit " << limit);
    const auto path = dir / fmt::format("limited-{}.safetensors", limit);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal
      rlimit lim{limit, limit};
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(10);
      try {
        save_safetensors(path, views);
        ::_exit(11);  // must not succeed
      } catch (const IoError& e) {
        if (e.errno_value() != EFBIG) ::_exit(12);
        if (std::string(e.what()).find(std::strerror(EFBIG)) == std::string::npos) ::_exit(13);
      } catch (...) {
        ::_exit(14);
      }
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(dir.path(), ec)) {
        if (entry.path().filename().string().starts_with("limited")) ::_exit(15);
      }
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child died of signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0)
        << "10: setrlimit, 11: saved anyway, 12: wrong errno, 13: errno not in the message, 14: "
           "not an IoError, 15: a file was left behind";
  }
}

}  // namespace
