// The safetensors writer against the reference implementation's own expected bytes, and
// round trips of every dtype through a real file.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::TempDir;

namespace {

std::vector<std::byte> f32_bytes(std::initializer_list<float> values) {
  std::vector<std::byte> out(values.size() * 4);
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

std::vector<std::byte> to_bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::span<const std::byte> as_span(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Writes through the real file path and returns the file's bytes.
std::string write_to_string(std::span<const TensorView> tensors, const Metadata& metadata,
                            const SafetensorsWriteOptions& options) {
  TempDir dir;
  save_safetensors(dir / "t.safetensors", tensors, metadata, options);
  return vigil::test::read_file(dir / "t.safetensors");
}

std::string bytes_string(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

const auto kNoChecksums = SafetensorsWriteOptions{}.with_checksums(false);

}  // namespace

// safetensors/src/tensor.rs, test_serialization: the exact bytes of the reference serializer.
TEST(SafetensorsReference, SerializationMatchesReferenceBytes) {
  auto data = f32_bytes({0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f});
  std::vector<TensorView> tensors = {{"attn.0", DType::F32, {1, 2, 3}, data}};
  auto expected =
      to_bytes({64, 0,  0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,
                34, 58, 123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,
                44, 34, 115, 104, 97,  112, 101, 34,  58,  91,  49,  44,  50,  44,  51,  93,
                44, 34, 100, 97,  116, 97,  95,  111, 102, 102, 115, 101, 116, 115, 34,  58,
                91, 48, 44,  50,  52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
                0,  0,  0,   64,  0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64});
  EXPECT_EQ(write_to_string(tensors, {}, kNoChecksums), bytes_string(expected));
}

// tensor.rs, test_serialization_forced_alignement: padding with spaces to a multiple of 8.
TEST(SafetensorsReference, HeaderIsPaddedWithSpacesLikeReference) {
  auto data = f32_bytes({0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f});
  std::vector<TensorView> tensors = {{"attn0", DType::F32, {1, 1, 2, 3}, data}};
  auto expected = to_bytes({72,  0,   0,   0,   0,   0,   0,   0,   123, 34, 97, 116, 116, 110, 48,
                            34,  58,  123, 34,  100, 116, 121, 112, 101, 34, 58, 34,  70,  51,  50,
                            34,  44,  34,  115, 104, 97,  112, 101, 34,  58, 91, 49,  44,  49,  44,
                            50,  44,  51,  93,  44,  34,  100, 97,  116, 97, 95, 111, 102, 102, 115,
                            101, 116, 115, 34,  58,  91,  48,  44,  50,  52, 93, 125, 125, 32,  32,
                            32,  32,  32,  32,  32,  0,   0,   0,   0,   0,  0,  128, 63,  0,   0,
                            0,   64,  0,   0,   64,  64,  0,   0,   128, 64, 0,  0,   160, 64});
  EXPECT_EQ(write_to_string(tensors, {}, kNoChecksums), bytes_string(expected));
}

// tensor.rs, test_empty: no tensors, with and without metadata.
TEST(SafetensorsReference, EmptyFilesMatchReferenceBytes) {
  EXPECT_EQ(write_to_string({}, {}, kNoChecksums),
            bytes_string(to_bytes({8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32})));
  auto expected =
      to_bytes({40,  0,   0,   0,  0,  0,  0,   0,   123, 34,  95,  95,  109, 101, 116, 97,
                100, 97,  116, 97, 95, 95, 34,  58,  123, 34,  102, 114, 97,  109, 101, 119,
                111, 114, 107, 34, 58, 34, 112, 116, 34,  125, 125, 32,  32,  32,  32,  32});
  EXPECT_EQ(write_to_string({}, {{"framework", "pt"}}, kNoChecksums), bytes_string(expected));
}

// tensor.rs, test_deserialization and test_empty_shapes_allowed: files the reference reads.
TEST(SafetensorsReference, ReadsReferenceFiles) {
  std::string file = std::string("<\0\0\0\0\0\0\0", 8) +
                     R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})" +
                     std::string(16, '\0');
  auto f = SafetensorsFile::from_bytes(as_span(file));
  ASSERT_EQ(f.tensors().size(), 1u);
  auto v = f.view("test");
  EXPECT_EQ(v.dtype, DType::I32);
  EXPECT_EQ(v.shape, (std::vector<std::uint64_t>{2, 2}));
  EXPECT_EQ(v.data.size(), 16u);
  EXPECT_FALSE(f.has_checksums());

  std::string scalar = std::string("8\0\0\0\0\0\0\0", 8) +
                       R"({"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})" +
                       std::string(4, '\0');
  auto s = SafetensorsFile::from_bytes(as_span(scalar));
  EXPECT_TRUE(s.view("test").shape.empty());
  EXPECT_EQ(s.view("test").data.size(), 4u);

  // test_whitespace_padded_header: any JSON whitespace may pad the header.
  std::string padded = std::string("\x06\0\0\0\0\0\0\0", 8) + "{}\x0D\x20\x09\x0A";
  EXPECT_TRUE(SafetensorsFile::from_bytes(as_span(padded)).tensors().empty());

  // test_zero_sized_tensor (with the 60-byte length it declares matching the header).
  std::string zero = R"({"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}})";
  std::string zfile = std::string(1, static_cast<char>(zero.size())) + std::string(7, '\0') + zero;
  auto z = SafetensorsFile::from_bytes(as_span(zfile));
  EXPECT_EQ(z.view("test").shape, (std::vector<std::uint64_t>{2, 0}));
  EXPECT_TRUE(z.view("test").data.empty());
}

TEST(Safetensors, OrderIsDtypeAlignmentDescendingThenName) {
  std::vector<std::byte> one(1), two(2), four(4), eight(8);
  std::vector<TensorView> tensors = {{"b", DType::U8, {1}, one},    {"a", DType::U8, {1}, one},
                                     {"z", DType::F16, {1}, two},   {"c", DType::F64, {1}, eight},
                                     {"y", DType::U64, {1}, eight}, {"x", DType::I64, {1}, eight},
                                     {"m", DType::BOOL, {1}, one},  {"q", DType::F32, {1}, four}};
  TempDir dir;
  save_safetensors(dir / "o.safetensors", tensors, {}, kNoChecksums);
  auto f = SafetensorsFile::open(dir / "o.safetensors");
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  // The reference's enum puts F64 below I64 and U64.
  EXPECT_EQ(names, (std::vector<std::string>{"y", "x", "c", "q", "z", "a", "b", "m"}));
}

TEST(Safetensors, RoundTripsEveryDtypeWithChecksums) {
  const DType all[] = {DType::BOOL, DType::U8,  DType::I8,  DType::F8_E5M2, DType::F8_E4M3,
                       DType::I16,  DType::U16, DType::F16, DType::BF16,    DType::I32,
                       DType::U32,  DType::F32, DType::I64, DType::U64,     DType::F64};
  std::vector<std::vector<std::byte>> storage;
  std::vector<TensorView> tensors;
  for (DType d : all) {
    std::size_t n = 3 * 5 * dtype_size(d);
    std::vector<std::byte> bytes(n);
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>((i * 7 + n) & 0xFF);
    storage.push_back(std::move(bytes));
    tensors.push_back({"t." + std::string(dtype_name(d)), d, {3, 5}, storage.back()});
    EXPECT_EQ(parse_dtype(dtype_name(d)), d);
  }
  std::vector<std::byte> empty;
  std::vector<std::byte> scalar(8, std::byte{0x5A});
  tensors.push_back({"empty", DType::F32, {0, 7}, empty});
  tensors.push_back({"scalar", DType::F64, {}, scalar});

  TempDir dir;
  save_safetensors(dir / "all.safetensors", tensors, {{"epoch", "7"}});
  auto f = SafetensorsFile::open(dir / "all.safetensors");
  EXPECT_TRUE(f.has_checksums());
  EXPECT_EQ(f.metadata().at("epoch"), "7");
  EXPECT_EQ(f.metadata().at(std::string(kFormatKey)), "1");
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (const auto& t : tensors) {
    SCOPED_TRACE(t.name);
    auto v = f.view(t.name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.data.size(), t.data.size());
    EXPECT_TRUE(std::equal(v.data.begin(), v.data.end(), t.data.begin()));
    auto key = std::string(kChecksumKeyPrefix) + t.name;
    ASSERT_EQ(f.metadata().at(key).size(), 16u);
    std::vector<std::byte> copy(t.data.size());
    f.copy_to(t.name, copy);
    EXPECT_TRUE(std::equal(copy.begin(), copy.end(), t.data.begin()));
    // Zero-copy views of a mapped file keep each dtype's natural alignment.
    if (!v.data.empty()) {
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data.data()) % dtype_size(t.dtype), 0u);
    }
  }
  f.verify_checksums();
  EXPECT_EQ(f.file_size(), std::filesystem::file_size(dir / "all.safetensors"));
}

TEST(Safetensors, ChecksumIsXxh3OfTheTensorBytes) {
  auto data = f32_bytes({1.0f, -2.5f});
  std::vector<TensorView> tensors = {{"w", DType::F32, {2}, data}};
  TempDir dir;
  save_safetensors(dir / "c.safetensors", tensors);
  auto f = SafetensorsFile::open(dir / "c.safetensors");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(xxh3_64(data)));
  EXPECT_EQ(f.metadata().at("vigil.xxh3:w"), hex);
  // XXH3-64 of the empty input, a published constant of the algorithm.
  EXPECT_EQ(xxh3_64({}), 0x2D06800538D394C2ULL);
}
