// `vigil inspect`: the --json shape fixed by the design, the human table, and one-line errors
// with exit 1 for corrupt and hostile files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::run_vigil;
using vigil::test::TempDir;

namespace {

std::filesystem::path write_model(const TempDir& dir) {
  static const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  static const std::vector<std::int64_t> steps = {42};
  std::vector<TensorView> tensors = {
      {"fc.weight", DType::F32, {2, 3}, std::as_bytes(std::span(w))},
      {"step", DType::I64, {}, std::as_bytes(std::span(steps))},
  };
  auto path = dir / "model.safetensors";
  save_safetensors(path, tensors, {{"epoch", "7"}});
  return path;
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

std::string craft(const std::string& header, std::size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

void expect_one_line_error(const vigil::test::RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("vigil: error: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace

TEST(Inspect, JsonHasTheDesignedShape) {
  TempDir dir;
  auto path = write_model(dir);
  auto r = run_vigil({"inspect", path.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 2u);
  EXPECT_EQ(j["metadata"]["epoch"], "7");
  EXPECT_EQ(j["metadata"]["vigil.format"], "1");
  EXPECT_EQ(j["metadata"]["vigil.xxh3:fc.weight"].get<std::string>().size(), 16u);
  ASSERT_EQ(j["tensors"].size(), 2u);
  // File order: the 8-byte I64 first, as the reference lays tensors out.
  auto step = j["tensors"][0];
  EXPECT_EQ(step.size(), 4u);
  EXPECT_EQ(step["name"], "step");
  EXPECT_EQ(step["dtype"], "I64");
  EXPECT_EQ(step["shape"], nlohmann::json::array());
  EXPECT_EQ(step["data_offsets"], nlohmann::json::array({0, 8}));
  auto w = j["tensors"][1];
  EXPECT_EQ(w["name"], "fc.weight");
  EXPECT_EQ(w["dtype"], "F32");
  EXPECT_EQ(w["shape"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(w["data_offsets"], nlohmann::json::array({8, 32}));
}

TEST(Inspect, HumanTableListsTensorsBytesAndTotal) {
  TempDir dir;
  auto path = write_model(dir);
  auto r = run_vigil({"inspect", path.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 tensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checksums verified"), std::string::npos) << r.out;
  for (const char* s : {"name", "dtype", "shape", "bytes", "fc.weight", "F32", "[2, 3]", "24",
                        "step", "I64", "[]", "total", "32", "epoch = 7"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " missing in\n" << r.out;
  }
  EXPECT_EQ(r.out.find("vigil.xxh3:"), std::string::npos) << r.out;
}

TEST(Inspect, CorruptDataIsAnErrorUnlessVerificationIsSkipped) {
  TempDir dir;
  auto path = write_model(dir);
  auto bytes = vigil::test::read_file(path);
  bytes[bytes.size() - 3] ^= 0x40;  // inside fc.weight
  vigil::test::write_file(path, bytes);
  expect_one_line_error(run_vigil({"inspect", path.string()}), "\"fc.weight\" is corrupt");
  auto r = run_vigil({"inspect", path.string(), "--no-verify", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out)["tensors"].is_array());
}

TEST(Inspect, HostileFilesGetOneLineErrors) {
  TempDir dir;
  struct Case {
    std::string bytes;
    std::string needle;
  };
  std::string deep(50'000, '[');
  std::vector<Case> cases = {
      {"", "fewer than the 8-byte"},
      {le64(~std::uint64_t{0}), "above the limit"},
      {le64(99'999'999) + "{}", "only 2 bytes follow"},
      {le64(2) + "\xff\xfe", "UTF-8"},
      {le64(deep.size()) + deep, "not a JSON object"},
      {le64(4) + "{\"a\"", "not valid JSON"},
      {craft(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0, 4]}})", 4),
       "needs 16 bytes"},
      {craft(R"({"t":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}})", 16),
       "overflows"},
      {craft(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1), "does not support"},
      {craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 9), "trailing bytes"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    auto path = dir / ("hostile" + std::to_string(i));
    vigil::test::write_file(path, cases[i].bytes);
    expect_one_line_error(run_vigil({"inspect", path.string()}), cases[i].needle);
    expect_one_line_error(run_vigil({"inspect", path.string(), "--json"}), cases[i].needle);
  }
  expect_one_line_error(run_vigil({"inspect", (dir / "missing").string()}), "cannot open");
  expect_one_line_error(run_vigil({"inspect", dir.path().string()}), "not a regular file");
}

TEST(Inspect, MissingArgumentIsAUsageError) {
  auto r = run_vigil({"inspect"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("FILE"), std::string::npos) << r.err;
}
