// vigil built from source inside another project's build (tests/subproject), brought in by
// add_subdirectory or by FetchContent, vigil::core only: the consumer links `vigil::core`, the
// name the installed package exports, compiles vigil's headers as ordinary headers with -Werror,
// and runs. Not being the top-level project, vigil defines its library and nothing else there
// (no tool, tests, benchmarks or examples) and installs nothing into the consumer's prefix. A
// vigil::torch consumer is configured and generated, not built (libtorch makes that slow).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using vigil::test::run_process;
using vigil::test::RunResult;
using vigil::test::TempDir;

namespace {

std::string describe(const RunResult& r) {
  return "stdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The compiler launcher (ccache) of the build tree the tests belong to, if it has one: the
// consumer then rebuilds vigil::core from the cache in seconds.
std::string parent_launcher() {
  const fs::path cache = fs::path(VIGIL_CLI).parent_path() / "CMakeCache.txt";
  if (!fs::exists(cache)) return "";
  std::smatch m;
  const std::string text = vigil::test::read_file(cache);
  static const std::regex line("(^|\n)CMAKE_CXX_COMPILER_LAUNCHER:[A-Z]+=([^\n]*)");
  return std::regex_search(text, m, line) ? m[2].str() : "";
}

// Configures tests/subproject into `build` with vigil brought in by `via`.
RunResult configure_consumer(const fs::path& build, const std::string& via, bool with_torch) {
  const fs::path source = vigil::test::source_dir();
  std::vector<std::string> configure = {
      "/usr/bin/env",
      "cmake",
      "-S",
      (source / "tests/subproject").string(),
      "-B",
      build.string(),
      "-DVIGIL_SOURCE_DIR=" + source.string(),
      "-DCONSUMER_VIA=" + via,
      std::string("-DCONSUMER_WITH_TORCH=") + (with_torch ? "ON" : "OFF")};
  if (const std::string launcher = parent_launcher(); !launcher.empty())
    configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=" + launcher);
  return run_process(configure);
}

// Configures, builds, runs and installs tests/subproject with vigil brought in by `via`.
void build_and_run_consumer(const std::string& via) {
  TempDir tmp;
  const fs::path build = tmp / "build";
  auto r = configure_consumer(build, via, false);
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  // vigil defined its library and nothing else: no tool, no tests/bench/examples folders.
  EXPECT_EQ(vigil::test::read_file(build / "vigil-targets.txt"), "targets=vigil_core\nsubdirs=\n");
  const std::string cache = vigil::test::read_file(build / "CMakeCache.txt");
  for (const char* off :
       {"VIGIL_BUILD_TOOL:BOOL=OFF", "VIGIL_BUILD_TESTS:BOOL=OFF", "VIGIL_BUILD_BENCH:BOOL=OFF",
        "VIGIL_BUILD_EXAMPLES:BOOL=OFF", "VIGIL_INSTALL:BOOL=OFF"})
    EXPECT_NE(cache.find(off), std::string::npos) << off;

  r = run_process({"/usr/bin/env", "cmake", "--build", build.string(), "--parallel", "2"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  fs::create_directories(tmp / "run");
  r = run_process({(build / "core_consumer").string(), (tmp / "run").string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "stop_epoch=3 best_epoch=1\nroundtrip=ok\n");

  // The consumer has no install rules of its own and vigil added none: nothing is installed.
  const fs::path prefix = tmp / "prefix";
  r = run_process(
      {"/usr/bin/env", "cmake", "--install", build.string(), "--prefix", prefix.string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(!fs::exists(prefix) || fs::is_empty(prefix)) << describe(r);
}

}  // namespace

TEST(Subproject, AddSubdirectoryConsumerBuildsAndRuns) {
  build_and_run_consumer("add_subdirectory");
}

TEST(Subproject, FetchContentConsumerBuildsAndRuns) {
  build_and_run_consumer("FetchContent");
}

TEST(Subproject, TorchConsumerConfigures) {
#ifndef VIGIL_TORCH_CLI
  GTEST_SKIP() << "built without the libtorch adapter";
#endif
  TempDir tmp;
  // The consumer's targets see libtorch's targets that vigil found in its own folder.
  const auto r = configure_consumer(tmp / "build", "add_subdirectory", true);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(vigil::test::read_file(tmp / "build/vigil-targets.txt"),
            "targets=vigil_core;vigil_torch\nsubdirs=\n");
}
