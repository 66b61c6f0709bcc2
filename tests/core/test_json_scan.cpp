// The `vigil replay --batch` line scanner: what it accepts must read exactly as nlohmann's full
// parser reads it, and everything else must be left to that parser.
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "detail/json_scan.hpp"
#include "vigil/error.hpp"

using nlohmann::json;
using vigil::detail::BatchCase;

namespace {

std::vector<std::uint64_t> bits(const std::vector<double>& v) {
  std::vector<std::uint64_t> out;
  for (double x : v) out.push_back(std::bit_cast<std::uint64_t>(x));
  return out;
}

// The scanner accepts `line`, and reads it exactly (to the bit) as the full parser does.
void expect_scanned_as_parsed(const std::string& line) {
  SCOPED_TRACE(line);
  BatchCase fast, full;
  ASSERT_TRUE(vigil::detail::scan_batch_case(line, fast));
  ASSERT_NO_THROW(vigil::detail::parse_batch_case(line, full));
  EXPECT_EQ(bits(fast.values), bits(full.values));
  EXPECT_EQ(bits(fast.train_values), bits(full.train_values));
  EXPECT_EQ(bits(fast.elapsed_seconds), bits(full.elapsed_seconds));
  EXPECT_EQ(fast.options, full.options);
  EXPECT_EQ(fast.name, full.name);
}

bool scanned(const std::string& line) {
  BatchCase c;
  return vigil::detail::scan_batch_case(line, c);
}

std::vector<double> numbers(const std::string& text) {
  std::vector<double> out;
  EXPECT_TRUE(vigil::detail::read_number_array(text, out)) << text;
  return out;
}

}  // namespace

TEST(JsonScan, SpacingAroundEveryToken) {
  expect_scanned_as_parsed(R"({"values":[1,0.9],"options":{"patience":1}})");
  expect_scanned_as_parsed(
      " \t{ \"values\" :\t[ 1 ,\r0.9 ] , \"options\" : { \"patience\" : 1 } }\r\n");
  expect_scanned_as_parsed(R"({"values":[ ]})");
  expect_scanned_as_parsed(R"({"values":[]})");
  const auto m = vigil::detail::split_json_object(R"( { "a" : 1 , "b":"x" } )");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].key, "a");
  EXPECT_EQ((*m)[0].value, "1");
  EXPECT_EQ((*m)[1].value, "\"x\"");
  EXPECT_TRUE(vigil::detail::split_json_object("{}"));
  EXPECT_TRUE(vigil::detail::split_json_object(" { } ")->empty());
}

TEST(JsonScan, SpellingsOfNumbers) {
  EXPECT_EQ(numbers("[1, 9e-1, 0.95, 97E-2, 1E+2, -3.5e0]"),
            (std::vector<double>{1, 0.9, 0.95, 0.97, 100, -3.5}));
  expect_scanned_as_parsed(
      R"({"values":[0,1,-1,0.1,1e5,1E5,1e+5,1e-5,-0.0,123456789012345678901234567890,)"
      R"(18446744073709551615,9223372036854775807,-9223372036854775808,)"
      R"(1.7976931348623157e308,0.30000000000000004]})");
  EXPECT_EQ(vigil::detail::json_number_length("-12.5e+3,"), 8u);
  EXPECT_EQ(vigil::detail::json_number_length("0123"), 1u);  // a leading zero ends the number
  std::vector<double> out;
  for (const char* bad : {"[01]",      "[1.]",   "[.5]",       "[+1]",     "[1e]", "[1e+]", "[-]",
                          "[0x10]",    "[NaN]",  "[Infinity]", "[1,]",     "[,1]", "[1 2]", "[1]]",
                          "[\"nan\"]", "[null]", "[1e999]",    "[-1e999]", "[1",   "1",     ""})
    EXPECT_FALSE(vigil::detail::read_number_array(bad, out)) << bad;
}

TEST(JsonScan, OutOfRangeNumbersGoToTheFullParser) {
  EXPECT_FALSE(scanned(R"({"values":[1e999]})"));
  BatchCase c;
  EXPECT_THROW(vigil::detail::read_batch_case(R"({"values":[1e999]})", c), json::out_of_range);
}

TEST(JsonScan, EscapedKeysGoToTheFullParser) {
  const std::string line = R"({"val\u0075es":[1,0.9]})";
  EXPECT_FALSE(vigil::detail::split_json_object(line));
  BatchCase c;
  vigil::detail::read_batch_case(line, c);
  EXPECT_EQ(c.values, (std::vector<double>{1, 0.9}));
  EXPECT_FALSE(vigil::detail::split_json_object(R"({"a\"b":1})"));
}

TEST(JsonScan, NestedStringsWithBrackets) {
  expect_scanned_as_parsed(
      R"({"values":[1],"extra":{"a":[1,{"b":"]}"}],"c":"{[\"\\"},"name":"[\"]\"}","options":{}})");
  const auto m = vigil::detail::split_json_object(R"({"a":["]",{"}":"\\"}],"b":2})");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].value, R"(["]",{"}":"\\"}])");
  EXPECT_EQ((*m)[1].value, "2");
}

TEST(JsonScan, NamesAndOptionsAreParsedByNlohmann) {
  expect_scanned_as_parsed(R"({"values":[1],"name":"a \"quoted\" name\n","options":null})");
  expect_scanned_as_parsed(R"({"values":[1],"name":{"run":[1,2]},"train_values":[2],)"
                           R"("elapsed_seconds":[0.5]})");
  BatchCase c;
  ASSERT_TRUE(vigil::detail::scan_batch_case(R"({"values":[1],"options":null})", c));
  ASSERT_TRUE(c.options);  // present though null: EarlyStoppingOptions::from_json decides
  EXPECT_TRUE(c.options->is_null());
  EXPECT_FALSE(c.name);
}

TEST(JsonScan, MalformedLinesAreRefused) {
  for (const char* bad : {"",
                          " ",
                          "[]",
                          "1",
                          "{",
                          "}",
                          "{\"values\":[1]",
                          "{\"values\":[1]} x",
                          "{\"values\":[1],}",
                          "{,\"values\":[1]}",
                          "{\"values\" [1]}",
                          "{\"values\":}",
                          "{\"values\":[1] \"a\":1}",
                          "{\"values\":[1],\"extra\":tru}",
                          "{\"values\":[1],\"extra\":[}",
                          "{\"values\":[1,0.9}",
                          "{\"values\":[1],\"name\":\"open}",
                          "{'values':[1]}",
                          "{values:[1]}",
                          "{\"values\":[1],\"a\":1\"b\"}",
                          "{\"values\":[1],\"name\":\"tab\there\"}",
                          "{\"values\":[1],\"extra\":[1]]}",
                          "{\"options\":{}}",
                          "{\"values\":\"[1]\"}"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(scanned(bad));
    BatchCase c;
    EXPECT_ANY_THROW(vigil::detail::parse_batch_case(bad, c));
  }
}

TEST(JsonScan, WrongShapesAreNamedByTheFullParser) {
  BatchCase c;
  auto message = [&](const std::string& line) {
    try {
      vigil::detail::read_batch_case(line, c);
    } catch (const vigil::InputError& e) {
      return std::string(e.what());
    }
    return std::string("no InputError");
  };
  EXPECT_EQ(message("[1]"), "a batch line must be a JSON object with \"values\"");
  EXPECT_EQ(message(R"({"values":1})"), "a batch line needs \"values\": an array of numbers");
  EXPECT_EQ(message(R"({"values":[1],"train_values":2})"),
            "\"train_values\" must be an array of numbers");
  EXPECT_EQ(message(R"({"values":[1],"elapsed_seconds":{}})"),
            "\"elapsed_seconds\" must be an array of numbers");
  EXPECT_NE(message(R"({"values":[1,"x"]})").find("'x' is not a number"), std::string::npos);
  EXPECT_NE(message(R"({"values":[1,"nan",null]})").find("null is not a number"),
            std::string::npos);
}

TEST(JsonScan, InvalidUtf8InValuesIsLeftToNlohmann) {
  // A member value is split by structure only; nlohmann then refuses the bad bytes.
  EXPECT_FALSE(scanned("{\"values\":[1],\"name\":\"\xff\"}"));
  EXPECT_FALSE(scanned("{\"values\":[1],\"extra\":[\"\xc3\x28\"]}"));
  EXPECT_FALSE(scanned("{\"values\":[1],\"options\":{\"monitor\":\"\xed\xa0\x80\"}}"));
  expect_scanned_as_parsed("{\"values\":[1],\"name\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}");
}

TEST(JsonScan, DeepNestingNeitherRecursesNorMisSplits) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto m = vigil::detail::split_json_object("{\"extra\":" + deep + ",\"values\":[1]}");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].value.size(), deep.size());
  // One '[' short: the extra ']' after the value is refused.
  EXPECT_FALSE(vigil::detail::split_json_object("{\"extra\":" + deep.substr(1) + "}"));
  std::size_t i = 0;
  EXPECT_FALSE(vigil::detail::skip_json_value(std::string(100000, '{'), i));
}

// nlohmann reads a NUL byte outside a string as the end of its input, so a member value "1\0"
// passes its check while the whole line does not: lines with NUL bytes go to the full parser.
TEST(JsonScan, NulBytesAreRefusedBeforeEitherParser) {
  using namespace std::string_literals;
  const auto value_then_nul = "{\"values\":[1],\"x\":1\0}"s;
  EXPECT_FALSE(vigil::detail::split_json_object(value_then_nul));
  EXPECT_FALSE(scanned("{\"values\":[1],\"options\":{}\0}"s));
  EXPECT_FALSE(scanned("{\"values\":[1],\"name\":\"a\0\"}"s));
  BatchCase c;
  EXPECT_THROW(vigil::detail::read_batch_case(value_then_nul, c), vigil::InputError);
  // nlohmann's lexer ends its input at a NUL: what follows the object must not go unread.
  const auto trailing = "{\"values\":[1,2]}\0junk"s;
  EXPECT_FALSE(scanned(trailing));
  EXPECT_THROW(vigil::detail::read_batch_case(trailing, c), vigil::InputError);
}

// Keys are compared as written, so one that is not plain ASCII goes to the full parser, which
// checks its UTF-8 (an ignored member with a bad key used to be answered).
TEST(JsonScan, KeysOutsideAsciiGoToTheFullParser) {
  EXPECT_FALSE(vigil::detail::split_json_object("{\"\xff\":1}"));
  EXPECT_FALSE(vigil::detail::split_json_object("{\"caf\xc3\xa9\":1}"));
  EXPECT_FALSE(vigil::detail::split_json_object("{\"\x7f\":1}"));
  BatchCase c;
  EXPECT_THROW(vigil::detail::read_batch_case("{\"values\":[1],\"\xff\":1}", c), json::parse_error);
  vigil::detail::read_batch_case("{\"values\":[1],\"caf\xc3\xa9\":1}", c);
  EXPECT_EQ(c.values, (std::vector<double>{1}));
}

// nlohmann's DOM keeps the last of repeated keys; the scanner lists them all. A case key given
// twice goes to the full parser, which refuses it (an invalid first one as JSON says).
TEST(JsonScan, DuplicateKeys) {
  const auto m = vigil::detail::split_json_object(R"({"a":1,"a":tru})");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[1].value, "tru");
  for (const char* line :
       {R"({"values":[1],"options":tru,"options":{}})", R"({"values":[1,,],"values":[1]})",
        R"({"values":[1],"name":x,"name":1})",
        R"({"values":[1],"train_values":[,],"train_values":[1]})"}) {
    SCOPED_TRACE(line);
    EXPECT_FALSE(scanned(line));
    BatchCase c;
    EXPECT_THROW(vigil::detail::read_batch_case(line, c), json::parse_error);
  }
  // Valid JSON, but which of two cases is meant? The DOM would silently keep the last.
  const std::string twice = R"({"values":[1,0.9],"values":[1,0.9,0.95],"x":1,"x":[2]})";
  EXPECT_FALSE(scanned(twice));
  BatchCase c;
  EXPECT_THROW(vigil::detail::read_batch_case(twice, c), vigil::InputError);
  expect_scanned_as_parsed(R"({"values":[1],"x":1,"x":[2]})");  // ignored keys may repeat
}

// JSON's "-0" is an integer, and nlohmann's integer 0 has no sign; "-0.0" and "-0e0" keep it.
TEST(JsonScan, MinusZeroReadsAsTheFullParserReadsIt) {
  const auto v = numbers("[-0, -0.0, -0e0, 0]");
  ASSERT_EQ(v.size(), 4u);
  EXPECT_FALSE(std::signbit(v[0]));
  EXPECT_TRUE(std::signbit(v[1]));
  EXPECT_TRUE(std::signbit(v[2]));
  EXPECT_FALSE(std::signbit(v[3]));
  expect_scanned_as_parsed(R"({"values":[-0,-0.0,-0e0,-0E+0,0],"train_values":[-0]})");
}

TEST(JsonScan, CheckJsonTextRefusesNulAndDeepNestingOutsideStrings) {
  using vigil::detail::check_json_text;
  using vigil::detail::kMaxJsonDepth;
  EXPECT_NO_THROW(
      check_json_text(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  EXPECT_THROW(check_json_text(std::string(kMaxJsonDepth + 1, '[')), vigil::InputError);
  // Brackets inside strings (escaped quotes included) are text, not nesting.
  EXPECT_NO_THROW(check_json_text("{\"a\":\"" + std::string(1000, '[') + "\\\"[[[\"}"));
  EXPECT_THROW(check_json_text(std::string("{\"a\":1}\0{}", 10)), vigil::InputError);
  EXPECT_THROW(check_json_text(std::string("{\"a\":\"\0\"}", 9)), vigil::InputError);
  // Unbalanced closers cannot drive the depth negative and hide later nesting.
  EXPECT_THROW(check_json_text(std::string(100, ']') + std::string(kMaxJsonDepth + 1, '{')),
               vigil::InputError);
}
