// MetricsLog: the CSV vigil train writes, JSON lines, missing cells, and every bad input.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.hpp"
#include "vigil/metrics_log.hpp"

namespace {

using vigil::InputError;
using vigil::MetricsLog;
using vigil::test::TempDir;
using vigil::test::write_file;

// The message of the InputError that reading `p` throws.
std::string error_of(const std::filesystem::path& p) {
  return vigil::test::error_of<InputError>([&] { MetricsLog::read(p); });
}

TEST(MetricsLog, ReadsTheShippedExample) {
  const auto log = MetricsLog::read(vigil::test::source_dir() / "examples/data/metrics.csv");
  EXPECT_EQ(log.columns().front(), "epoch");
  EXPECT_TRUE(log.has_column("val_loss"));
  EXPECT_GE(log.rows(), 10u);
  EXPECT_EQ(log.column("val_loss")[0], 0.4301);
  EXPECT_EQ(log.column("epoch")[3], 3.0);
}

TEST(MetricsLog, CsvWithMissingAndNonFiniteCells) {
  TempDir dir;
  write_file(dir / "m.csv",
             "epoch,step,loss,val_loss,lr,seconds\r\n"
             "0,10,1.5,nan,0.1,2.0\r\n"
             "1,20,1.2,,0.1,2.5\r\n"
             "2,30,1.0,-Inf,0.1,2.0\r\n\n");
  const auto log = MetricsLog::read(dir / "m.csv");
  ASSERT_EQ(log.rows(), 3u);
  const auto v = log.column("val_loss");
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_TRUE(log.has_value(0, "val_loss"));
  EXPECT_FALSE(log.has_value(1, "val_loss"));
  EXPECT_TRUE(std::isinf(v[2]) && v[2] < 0);
  const auto rows = log.rows_as_logs();
  EXPECT_EQ(rows[1].count("val_loss"), 0u);
  EXPECT_EQ(rows[1].at("loss"), 1.2);
  EXPECT_EQ(rows[2].at("step"), 30.0);
}

TEST(MetricsLog, OtherSeparatorsAndQuotedNames) {
  const auto tabs = MetricsLog::parse_csv("epoch\tval_acc\n0\t0.5\n1\t0.6\n");
  EXPECT_EQ(tabs.column("val_acc")[1], 0.6);
  const auto quoted = MetricsLog::parse_csv("\"epoch\",\"val loss\"\n0,+0.5\n");
  EXPECT_EQ(quoted.column("val loss")[0], 0.5);
}

TEST(MetricsLog, JsonLines) {
  TempDir dir;
  write_file(dir / "m.jsonl",
             "{\"epoch\": 0, \"loss\": 1.0}\n"
             "\n"
             "{\"epoch\": 1, \"loss\": 0.8, \"val_loss\": \"inf\"}\n"
             "{\"epoch\": 2, \"loss\": null, \"val_loss\": 0.7}\n");
  const auto log = MetricsLog::read(dir / "m.jsonl");
  ASSERT_EQ(log.rows(), 3u);
  EXPECT_EQ(log.columns(), (std::vector<std::string>{"epoch", "loss", "val_loss"}));
  EXPECT_FALSE(log.has_value(0, "val_loss"));
  EXPECT_TRUE(std::isinf(log.column("val_loss")[1]));
  EXPECT_FALSE(log.has_value(2, "loss"));
  EXPECT_EQ(log.column("val_loss")[2], 0.7);
}

TEST(MetricsLog, MissingColumnNamesTheOnesThatExist) {
  const auto log = MetricsLog::parse_csv("epoch,loss\n0,1\n", "run/metrics.csv");
  const auto msg = vigil::test::error_of<InputError>([&] { (void)log.column("val_loss"); });
  EXPECT_NE(msg.find("'val_loss'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("epoch, loss"), std::string::npos) << msg;
  EXPECT_NE(msg.find("run/metrics.csv"), std::string::npos) << msg;
}

TEST(MetricsLog, BadInputsGetClearErrors) {
  TempDir dir;
  EXPECT_NE(error_of(dir / "absent.csv").find("does not exist"), std::string::npos);
  EXPECT_NE(error_of(dir.path()).find("is a folder"), std::string::npos);
  write_file(dir / "word.csv", "epoch,val_loss\n0,0.5\n1,fast\n");
  const auto word = error_of(dir / "word.csv");
  EXPECT_NE(word.find(":3:"), std::string::npos) << word;
  EXPECT_NE(word.find("'fast' is not a number"), std::string::npos) << word;
  struct Bad {
    const char* name;
    const char* text;
    const char* message;  // a part of the error's message
  };
  for (const Bad& b : std::vector<Bad>{{"empty.csv", "", "is empty"},
                                       {"blank.csv", "\n  \n", "is empty"},
                                       {"ragged.csv", "epoch,val_loss\n0,0.5,7\n", "3 cells"},
                                       {"dup.csv", "loss,loss\n1,2\n", "twice"},
                                       {"noname.csv", "epoch,,loss\n1,2,3\n", "empty column name"},
                                       {"bad.jsonl", "{\"loss\": 1}\n{\"loss\": \n", ":2:"},
                                       {"text.jsonl", "{\"loss\": \"low\"}\n", "not a number"},
                                       {"nested.jsonl", "{\"loss\": [1]}\n", "not a number"},
                                       {"array.jsonl", "{\"loss\": 1}\n[1, 2]\n", "JSON object"}}) {
    write_file(dir / b.name, b.text);
    EXPECT_NE(error_of(dir / b.name).find(b.message), std::string::npos) << b.name;
  }
}

}  // namespace
