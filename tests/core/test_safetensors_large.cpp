// Files over 4 GiB, kept quick with sparse files: 64-bit offsets in the reader (a crafted sparse
// file) and in the writer (zero blocks become holes), never touching 4 GiB of real disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::TempDir;

namespace {

constexpr std::uint64_t kBig = (std::uint64_t{9} << 29) + 8;  // 4.5 GiB + 8 bytes

// An anonymous mapping of `size` zero bytes; untouched pages cost no memory.
class ZeroRegion {
 public:
  explicit ZeroRegion(std::size_t size) : size_(size) {
    addr_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr_ == MAP_FAILED) addr_ = nullptr;
  }
  ~ZeroRegion() {
    if (addr_) ::munmap(addr_, size_);
  }
  ZeroRegion(const ZeroRegion&) = delete;
  ZeroRegion& operator=(const ZeroRegion&) = delete;
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), size_}; }
  bool ok() const { return addr_ != nullptr; }

 private:
  void* addr_ = nullptr;
  std::size_t size_;
};

// Real writes, except that blocks lying inside a region known to be zero become holes.
class SparseOps : public FileOps {
 public:
  explicit SparseOps(std::span<const std::byte> zeros) : zeros_(zeros) {}
  ssize_t write(int fd, const void* data, size_t size) override {
    auto* p = static_cast<const std::byte*>(data);
    if (p >= zeros_.data() && p + size <= zeros_.data() + zeros_.size()) {
      if (::lseek(fd, static_cast<off_t>(size), SEEK_CUR) < 0) return -1;
      holes += size;
      return static_cast<ssize_t>(size);
    }
    return FileOps::write(fd, data, size);
  }
  std::uint64_t holes = 0;

 private:
  std::span<const std::byte> zeros_;
};

}  // namespace

TEST(SafetensorsLarge, ReadsTensorsPastFourGiB) {
  TempDir dir;
  auto path = dir / "big.safetensors";
  std::string header = R"({"big":{"dtype":"U8","shape":[)" + std::to_string(kBig) +
                       R"(],"data_offsets":[0,)" + std::to_string(kBig) +
                       R"(]},"tail":{"dtype":"F32","shape":[2],"data_offsets":[)" +
                       std::to_string(kBig) + "," + std::to_string(kBig + 8) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::uint64_t data_start = 8 + header.size();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(fd, 0);
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  prefix += header;
  ASSERT_EQ(::pwrite(fd, prefix.data(), prefix.size(), 0), static_cast<ssize_t>(prefix.size()));
  const float tail[2] = {3.25f, -7.5f};
  unsigned char marker = 0xAB;
  ASSERT_EQ(::pwrite(fd, &marker, 1, static_cast<off_t>(data_start + kBig - 1)), 1);
  ASSERT_EQ(::pwrite(fd, tail, 8, static_cast<off_t>(data_start + kBig)), 8);
  ::close(fd);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.file_size(), data_start + kBig + 8);
  auto big = f.view("big");
  ASSERT_EQ(big.data.size(), kBig);
  EXPECT_EQ(big.data[kBig - 1], std::byte{0xAB});
  float got[2];
  f.copy_to("tail", std::as_writable_bytes(std::span(got)));
  EXPECT_EQ(got[0], 3.25f);
  EXPECT_EQ(got[1], -7.5f);
  EXPECT_EQ(f.find("tail")->begin, kBig);

  // One byte short: the 64-bit size check still catches it.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(data_start + kBig + 7)), 0);
  EXPECT_THROW((void)SafetensorsFile::open(path), FormatError);
}

TEST(SafetensorsLarge, WritesOffsetsPastFourGiB) {
  ZeroRegion zeros(kBig);
  if (!zeros.ok()) GTEST_SKIP() << "cannot reserve 4.5 GiB of address space";
  const float tail[2] = {1.5f, 2.5f};
  const std::uint8_t flag = 1;
  // The BOOL goes after the U8 in the reference order; its real write extends the file past
  // the hole.
  std::vector<TensorView> tensors = {
      {"big", DType::U8, {kBig}, zeros.bytes()},
      {"tail", DType::F32, {2}, std::as_bytes(std::span(tail))},
      {"flag", DType::BOOL, {}, std::as_bytes(std::span(&flag, 1))},
  };
  TempDir dir;
  auto ops = std::make_shared<SparseOps>(zeros.bytes());
  // Checksums off: hashing 4.5 GiB belongs in the long test, not here.
  save_safetensors(dir / "w.safetensors", tensors, {},
                   SafetensorsWriteOptions{}.with_checksums(false).with_ops(ops));
  EXPECT_EQ(ops->holes, kBig);
  auto f = SafetensorsFile::open(dir / "w.safetensors");
  // The reference order puts F32 before U8.
  EXPECT_EQ(f.tensors()[0].name, "tail");
  EXPECT_EQ(f.find("big")->begin, 8u);
  EXPECT_EQ(f.find("big")->end, kBig + 8);
  EXPECT_EQ(f.find("big")->shape, std::vector<std::uint64_t>{kBig});
  EXPECT_EQ(f.find("flag")->begin, kBig + 8);
  EXPECT_EQ(f.view("flag").data[0], std::byte{1});
  float got[2];
  f.copy_to("tail", std::as_writable_bytes(std::span(got)));
  EXPECT_EQ(got[1], 2.5f);
}
