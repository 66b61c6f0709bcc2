// A real, fully written 4.5 GiB file with checksums, verified on load. Slow (writes and hashes
// 4.5 GiB), so it is labelled "long" and skips unless VIGIL_LONG_TESTS=1:
//   VIGIL_LONG_TESTS=1 ctest -L long
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::TempDir;

TEST(SafetensorsLong, RoundTripOfAFileOverFourGiBWithChecksums) {
  const char* on = std::getenv("VIGIL_LONG_TESTS");
  if (!on || std::string(on) != "1") GTEST_SKIP() << "set VIGIL_LONG_TESTS=1 to run";
  constexpr std::uint64_t kElems = (std::uint64_t{9} << 29) / 4;  // 4.5 GiB of F32
  std::vector<float> big(kElems);
  for (std::uint64_t i = 0; i < kElems; i += 4096) big[i] = static_cast<float>(i);
  big.back() = -1.0f;
  const std::int64_t step = 99;
  std::vector<TensorView> tensors = {
      {"big", DType::F32, {kElems}, std::as_bytes(std::span(big))},
      {"step", DType::I64, {}, std::as_bytes(std::span(&step, 1))},
  };
  TempDir dir;
  auto path = dir / "huge.safetensors";
  save_safetensors(path, tensors);
  auto f = SafetensorsFile::open(path);  // verifies both checksums
  ASSERT_GT(f.file_size(), std::uint64_t{4} << 30);
  auto v = f.view("big");
  ASSERT_EQ(v.data.size(), kElems * 4);
  EXPECT_EQ(std::memcmp(v.data.data(), big.data(), v.data.size()), 0);
  // The reference order puts the I64 first, so the F32 data ends past 4 GiB.
  EXPECT_EQ(f.find("step")->begin, 0u);
  EXPECT_EQ(f.find("big")->end, 8 + kElems * 4);
}
