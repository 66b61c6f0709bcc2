// The private text helpers behind vigil's messages: numbers for people, bounded lists, UTF-8.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "safetensors/format.hpp"

namespace vigil::detail {
namespace {

TEST(Text, HumanNumbersHaveSixSignificantDigits) {
  EXPECT_EQ(human_number(0.30272871752580005), "0.302729");
  EXPECT_EQ(human_number(0.1), "0.1");
  EXPECT_EQ(human_number(1234567.0), "1.23457e+06");
  EXPECT_EQ(human_number(-2.5e-9), "-2.5e-09");
  EXPECT_EQ(human_number(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(human_number(-std::numeric_limits<double>::infinity()), "-inf");
  // The shortest exact spelling stays for what must read back.
  EXPECT_EQ(format_number(0.30272871752580005), "0.30272871752580005");
}

TEST(Text, NameListsAreCutWithTheTotal) {
  EXPECT_EQ(name_list({}), "none");
  EXPECT_EQ(name_list({"a", "b"}), "a, b");
  std::vector<std::string> many;
  for (int i = 0; i < 5000; ++i) many.push_back(fmt::format("c{}", i));
  EXPECT_EQ(name_list(many, 3), "c0, c1, c2, ... (5000 in all)");
}

TEST(Text, Utf8IsCheckedAsJsonNeedsIt) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("val_loss"));
  EXPECT_TRUE(is_utf8("\xC3\xA9"));          // é
  EXPECT_TRUE(is_utf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(is_utf8("\xF0\x9F\x98\x80"));  // an emoji
  EXPECT_TRUE(is_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_FALSE(is_utf8("val\xFF"));
  EXPECT_FALSE(is_utf8("\xC3"));              // cut short
  EXPECT_FALSE(is_utf8("\xE2\x82"));          // cut short
  EXPECT_FALSE(is_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(is_utf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(is_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_utf8("\x80"));              // a continuation byte alone
  EXPECT_FALSE(is_utf8("\xC3\x28"));          // a bad continuation
}

}  // namespace
}  // namespace vigil::detail
