// `vigil replay --batch` on hostile lines: each is answered in place, as the full JSON parser
// reads it, whichever path (the fast scanner or the parser) answers it.
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using nlohmann::json;
using vigil::test::run_vigil;
using namespace std::string_literals;

using vigil::test::lines;

}  // namespace

// Each line in two spellings: plain (the scanner's to read) and with an escaped key (the full
// parser's); both must get the same answer.
TEST(ReplayBatch, HostileLinesGetTheFullParsersAnswer) {
  const std::vector<std::string> cases = {
      "{\"values\":[1],\"x\":1\0}"s,                      // NUL ends nlohmann's input
      "{\"values\":[1],\"\xff\":1}",                      // invalid UTF-8 in a key
      "{\"values\":[1],\"options\":tru,\"options\":{}}",  // an invalid earlier duplicate
      "{\"values\":[-0,0.5]}",                            // "-0" is the integer 0 in JSON's DOM
  };
  std::string input;
  for (const auto& c : cases) {
    input += c + "\n";
    input += "{\"valu\\u0065s\"" + c.substr(std::string("{\"values\"").size()) + "\n";
  }
  const auto r = run_vigil({"replay", "--batch", "-"}, input);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 2 * cases.size()) << r.out << r.err;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto fast = json::parse(out[2 * i]), full = json::parse(out[2 * i + 1]);
    EXPECT_EQ(fast.contains("error"), i < 3) << out[2 * i];
    if (fast.contains("error")) {
      // The same error, but for its line and column (the escaped key is longer).
      const auto what = [](const json& answer) {
        const auto text = answer["error"].get<std::string>();
        return text.substr(text.find(": ", text.find("column")));
      };
      EXPECT_EQ(what(fast), what(full)) << out[2 * i] << "\n" << out[2 * i + 1];
    } else {
      EXPECT_EQ(out[2 * i], out[2 * i + 1]);
    }
  }
  EXPECT_NE(r.err.find("6 of 8 batch cases failed"), std::string::npos) << r.err;
}

// nlohmann's parse errors quote the bytes last read: invalid UTF-8 there must not stop the run
// (it made the error line unprintable), in the main thread or a worker.
TEST(ReplayBatch, InvalidUtf8InAnErrorIsAnsweredInPlace) {
  std::string input;
  for (int i = 0; i < 600; ++i)
    input += i % 2 ? "{\"values\":[1,0.9]}\n" : "{\"values\":[1],\"name\":\"\xff\"}\n";
  const auto r = run_vigil({"replay", "--batch", "-"}, input);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 600u) << r.err;
  EXPECT_NE(json::parse(out[0])["error"].get<std::string>().find("UTF-8"), std::string::npos);
  EXPECT_FALSE(json::parse(out[1]).contains("error")) << out[1];
  EXPECT_NE(r.err.find("300 of 600 batch cases failed"), std::string::npos) << r.err;
}

// Nesting is bounded before any parser or serializer recurses on it (100,000 levels crashed the
// process), in --batch (each line answered in place) and in --log.
TEST(ReplayBatch, DeepNestingIsRefusedInPlaceAndInALog) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string input = "{\"values\":[1],\"options\":" + deep + "}\n{\"values\":[1,0.9]}\n" +
                            "{\"values\":[1],\"x\":" + std::string(63, '[') + std::string(63, ']') +
                            "}\n";
  const auto r = run_vigil({"replay", "--batch", "-"}, input);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto out = lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.err;
  EXPECT_NE(json::parse(out[0])["error"].get<std::string>().find("nest more than 64 levels"),
            std::string::npos)
      << out[0];
  EXPECT_FALSE(json::parse(out[1]).contains("error")) << out[1];
  EXPECT_FALSE(json::parse(out[2]).contains("error")) << out[2];  // 64 levels: the limit
  vigil::test::TempDir tmp;
  vigil::test::write_file(tmp / "log.jsonl", "{\"val_loss\":1}\n{\"x\":" + deep + "}\n");
  const auto log = run_vigil({"replay", "--log", (tmp / "log.jsonl").string()});
  EXPECT_NE(log.exit_code, 0);
  EXPECT_NE(log.err.find("log.jsonl:2: at column 69: arrays and objects nest more than 64"),
            std::string::npos)
      << log.err;
}

// A device never ends: it is refused by name, for a batch file and a log alike.
TEST(ReplayBatch, DevicesAreRefusedByName) {
  auto r = run_vigil({"replay", "--batch", "/dev/zero"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("batch file '/dev/zero' is a device"), std::string::npos) << r.err;
  r = run_vigil({"replay", "--log", "/dev/zero"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("metrics log '/dev/zero' is a device"), std::string::npos) << r.err;
}

// A duration below zero is no duration: the time budget would run backwards.
TEST(ReplayBatch, ANegativeEpochDurationInALogIsRefused) {
  vigil::test::TempDir tmp;
  vigil::test::write_file(tmp / "m.csv", "epoch,val_loss,seconds\n0,1.0,2.5\n1,0.9,-3\n");
  const auto r = run_vigil({"replay", "--log", (tmp / "m.csv").string(), "--time-budget", "100"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("row 2 has seconds = -3"), std::string::npos) << r.err;
}
