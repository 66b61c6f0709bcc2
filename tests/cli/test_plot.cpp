// `vigil plot RUN_DIR`: the SVG lands in the run folder with the run's best and stop epochs
// (replayed from run.json) and its checkpoints; bad folders get one clear error line.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace {

using vigil::test::expect_clean_error;
using vigil::test::read_file;
using vigil::test::run_vigil;
using vigil::test::TempDir;
using vigil::test::write_file;

const char* kMetrics =
    "epoch,step,loss,accuracy,val_loss,val_accuracy,lr,seconds\n"
    "0,10,0.90,0.60,0.80,0.65,0.01,1.0\n"
    "1,20,0.60,0.75,0.62,0.74,0.01,1.0\n"
    "2,30,0.45,0.82,0.50,0.80,0.01,1.0\n"
    "3,40,0.38,0.86,0.52,0.81,0.01,1.0\n"
    "4,50,0.33,0.88,0.55,0.80,0.01,1.0\n";

std::vector<std::string> attr_values(const std::string& svg, const std::string& cls,
                                     const std::string& attr) {
  std::vector<std::string> out;
  const std::regex element("<[a-z]+ class=\"" + cls + "\"[^>]*>");
  const std::regex value(attr + "=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), element);
       it != std::sregex_iterator(); ++it) {
    std::smatch m;
    const std::string tag = it->str();
    if (std::regex_search(tag, m, value)) out.push_back(m[1]);
  }
  return out;
}

std::size_t point_count(const std::string& points) {
  std::istringstream in(points);
  std::size_t n = 0;
  for (std::string p; in >> p;) ++n;
  return n;
}

TEST(Plot, DrawsTheRunWithItsBestStopAndCheckpoints) {
  TempDir run;
  write_file(run / "metrics.csv", kMetrics);
  write_file(run / "run.json",
             R"({"epochs": 30, "early_stopping": {"monitor": "val_loss", "patience": 2}})");
  write_file(
      run / "checkpoints/manifest.json",
      R"({"checkpoints": [{"name": "epoch-0001", "epoch": 1}, {"name": "epoch-0002", "epoch": 2}]})");
  const auto r = run_vigil({"plot", run.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("best epoch 2; stopped after epoch 4; 2 checkpoints"), std::string::npos)
      << r.out;
  const auto svg = read_file(run / "learning_curve.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(attr_values(svg, "curve", "data-name"), (std::vector<std::string>{"loss", "val_loss"}));
  for (const auto& pts : attr_values(svg, "curve", "points")) EXPECT_EQ(point_count(pts), 5u);
  EXPECT_EQ(attr_values(svg, "best-epoch", "data-epoch"), std::vector<std::string>{"2"});
  EXPECT_EQ(attr_values(svg, "stop-epoch", "data-epoch"), std::vector<std::string>{"4"});
  EXPECT_EQ(attr_values(svg, "checkpoint", "data-epoch"), (std::vector<std::string>{"1", "2"}));
}

TEST(Plot, OtherMetricAndOutputWithoutRunJson) {
  TempDir run;
  write_file(run / "metrics.csv", kMetrics);
  const auto out = (run / "acc.svg").string();
  const auto r = run_vigil({"plot", run.path().string(), "--metric", "accuracy", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto svg = read_file(out);
  EXPECT_EQ(attr_values(svg, "curve", "data-name"),
            (std::vector<std::string>{"accuracy", "val_accuracy"}));
  // No run.json: the best validation accuracy (maximised, by its name) and no stop line.
  EXPECT_EQ(attr_values(svg, "best-epoch", "data-epoch"), std::vector<std::string>{"3"});
  EXPECT_TRUE(attr_values(svg, "stop-epoch", "data-epoch").empty());
}

// --out replaces only regular files: a symbolic link keeps pointing at its target (which gets
// the picture), a FIFO is written through and stays a FIFO.
TEST(Plot, OutFollowsSymlinksAndWritesThroughFifos) {
  TempDir run;
  write_file(run / "metrics.csv", kMetrics);
  write_file(run / "pictures/curve.svg", "old");
  std::filesystem::create_symlink("pictures/curve.svg", run / "link.svg");
  auto r = run_vigil({"plot", run.path().string(), "--out", (run / "link.svg").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::is_symlink(run / "link.svg"));
  EXPECT_NE(read_file(run / "pictures/curve.svg").find("<svg"), std::string::npos);

  const auto fifo = run / "curve.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  // Opened first without blocking, the reader lets `vigil` open the FIFO at once; the picture
  // (a few KiB) waits in the pipe's buffer.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0) << std::strerror(errno);
  r = run_vigil({"plot", run.path().string(), "--out", fifo.string()});
  std::string got(1 << 16, '\0');
  const ssize_t n = ::read(reader, got.data(), got.size());
  ::close(reader);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  ASSERT_GT(n, 0);
  got.resize(static_cast<std::size_t>(n));
  EXPECT_NE(got.find("<svg"), std::string::npos);
  EXPECT_NE(got.find("</svg>"), std::string::npos);
}

TEST(Plot, BadRunFolders) {
  TempDir run;
  expect_clean_error(run_vigil({"plot", (run / "nope").string()}), "does not exist");
  expect_clean_error(run_vigil({"plot", run.path().string()}), "has no metrics.csv");
  write_file(run / "metrics.csv", kMetrics);
  expect_clean_error(run_vigil({"plot", run.path().string(), "--metric", "f1"}),
                     "neither 'f1' nor 'val_f1'");
  expect_clean_error(run_vigil({"plot", run.path().string(), "--width", "10"}), "too small");
  write_file(run / "empty/metrics.csv", "");
  expect_clean_error(run_vigil({"plot", (run / "empty").string()}), "is empty");
}

}  // namespace
