// A command whose standard output cannot be written (a full disk; here /dev/full) fails: exit
// code 1 and one line on stderr naming the errno, never a silent 0 with partial output.
#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

namespace vigil {
namespace {

using test::run_process;
using test::TempDir;

// Runs `vigil ARGS > /dev/full` through the shell (the redirection is the point).
test::RunResult run_into_full_disk(const std::vector<std::string>& args) {
  std::string command = std::string("exec '") + VIGIL_CLI + "'";
  for (const auto& a : args) command += " '" + a + "'";
  command += " > /dev/full";
  return run_process({"/bin/sh", "-c", command});
}

void expect_write_error(const test::RunResult& r) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("vigil: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("standard output"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
}

class StdoutErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<float> w(16, 0.5F);
    const std::vector<TensorView> tensors = {
        {"w", DType::F32, {4, 4}, std::as_bytes(std::span(w))}};
    save_safetensors(model, tensors);
  }
  TempDir tmp;
  std::filesystem::path model = tmp / "model.safetensors";
};

TEST_F(StdoutErrors, ReplayFailsOnAFullDisk) {
  expect_write_error(run_into_full_disk({"replay", "--values", "0.9,0.8,0.85", "--json"}));
  expect_write_error(run_into_full_disk({"replay", "--values", "0.9,0.8,0.85"}));
}

// Both a batch that fits in stdio's buffer (the error shows only when flushing) and one far
// larger (the error shows while writing: the batch stops there).
TEST_F(StdoutErrors, ReplayBatchFailsOnAFullDisk) {
  for (int lines : {3, 20000}) {
    SCOPED_TRACE(lines);
    std::string batch;
    for (int i = 0; i < lines; ++i)
      batch += R"({"values": [0.9, 0.8, 0.85, 0.84]})"
               "\n";
    test::write_file(tmp / "batch.jsonl", batch);
    expect_write_error(run_into_full_disk({"replay", "--batch", (tmp / "batch.jsonl").string()}));
  }
}

TEST_F(StdoutErrors, InspectFailsOnAFullDisk) {
  expect_write_error(run_into_full_disk({"inspect", model.string()}));
  expect_write_error(run_into_full_disk({"inspect", model.string(), "--json"}));
}

TEST_F(StdoutErrors, VerifyFailsOnAFullDisk) {
  expect_write_error(run_into_full_disk({"verify", model.string()}));
}

// The same commands with a working standard output still succeed (the check is no false alarm).
TEST_F(StdoutErrors, AWritableOutputIsNoError) {
  const auto r = test::run_vigil({"verify", model.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vigil
