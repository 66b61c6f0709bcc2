// The API reference builds from the public headers with no Doxygen warning (scripts/docs.sh, the
// command the README documents), and documents the main classes of both libraries.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_support.hpp"

namespace fs = std::filesystem;

TEST(Docs, DoxygenBuildsTheReferenceWithoutWarnings) {
  if (vigil::test::run_process({"/bin/sh", "-c", "command -v doxygen"}).exit_code != 0)
    GTEST_SKIP() << "doxygen is not installed (scripts/setup.sh installs it)";
  vigil::test::TempDir out;
  const auto r = vigil::test::run_process(
      {"/bin/bash", (vigil::test::source_dir() / "scripts/docs.sh").string(), out.path().string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(fs::exists(out / "warnings.log"));
  EXPECT_EQ(vigil::test::read_file(out / "warnings.log"), "");
  EXPECT_NE(r.out.find("html/index.html"), std::string::npos) << r.out;
  for (const char* page :
       {"index.html", "classvigil_1_1EarlyStopper.html", "classvigil_1_1CheckpointManager.html",
        "classvigil_1_1SafetensorsFile.html", "classvigil_1_1torch_1_1Trainer.html"})
    EXPECT_TRUE(fs::is_regular_file(out / "html" / page)) << page;
  // The main page is docs/mainpage.md, not an empty default.
  EXPECT_NE(vigil::test::read_file(out / "html/index.html").find("vigil::core"), std::string::npos);
}
