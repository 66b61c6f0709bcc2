// Input read within bounds: only files and pipes are read, lines stop at a limit instead of
// growing without end, and getline_bounded() splits lines exactly as std::getline does.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "detail/input_file.hpp"
#include "test_support.hpp"
#include "vigil/error.hpp"

using vigil::detail::getline_bounded;

namespace {

std::vector<std::string> split_bounded(const std::string& text, std::size_t max) {
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string line;
  while (getline_bounded(in, line, max)) out.push_back(line);
  return out;
}

std::vector<std::string> split_std(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST(InputFile, GetlineBoundedSplitsAsStdGetline) {
  const std::string chunk(65535, 'a');  // exactly one buffer's worth of characters
  for (const std::string& text :
       {std::string(), std::string("\n"), std::string("a"), std::string("a\n"),
        std::string("a\n\nb"), std::string("\n\n\n"), chunk, chunk + "\n", chunk + "b\nc",
        chunk + chunk + "\n" + chunk, std::string("x\r\ny\n")})
    EXPECT_EQ(split_bounded(text, 1 << 20), split_std(text)) << text.size();
}

TEST(InputFile, GetlineBoundedRefusesALongLine) {
  EXPECT_EQ(split_bounded("12345\n", 5), std::vector<std::string>{"12345"});
  EXPECT_THROW(split_bounded("123456\n", 5), vigil::InputError);
  EXPECT_THROW(split_bounded(std::string(200000, 'z'), 100000), vigil::InputError);
}

TEST(InputFile, OnlyFilesAndPipesAreRead) {
  vigil::test::TempDir tmp;
  vigil::test::write_file(tmp / "f", "x");
  EXPECT_NO_THROW(vigil::detail::check_input_file(tmp / "f", "log"));
  const auto message = [](const std::filesystem::path& p) {
    try {
      vigil::detail::check_input_file(p, "log");
    } catch (const vigil::InputError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message("/dev/zero").find("log '/dev/zero' is a device"), std::string::npos);
  EXPECT_NE(message(tmp.path()).find("is a folder"), std::string::npos);
  EXPECT_NE(message(tmp / "none").find("does not exist"), std::string::npos);
  std::filesystem::create_symlink(tmp / "loop", tmp / "loop");
  EXPECT_NE(message(tmp / "loop").find("symbolic link that leads nowhere"), std::string::npos);
}
