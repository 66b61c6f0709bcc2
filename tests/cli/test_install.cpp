// `cmake --install` into a temporary prefix, then a project outside the tree builds against it:
// find_package(vigil) with vigil::core and vigil::torch (tests/consumer), and a core-only program
// compiled with nothing but `pkg-config --cflags --libs vigil-core`. Both include the umbrella
// headers with -Wall -Wextra -Wpedantic -Werror and no precompiled header, vigil's headers taken
// as ordinary headers: a warning from them fails the test.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_support.hpp"

namespace fs = std::filesystem;
using vigil::test::run_process;
using vigil::test::RunResult;
using vigil::test::TempDir;

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

RunResult sh(const std::string& command) {
  return run_process({"/bin/sh", "-c", command});
}

// The build tree the tests belong to: the `vigil` tool sits at its top.
fs::path build_dir() {
  return fs::path(VIGIL_CLI).parent_path();
}

std::string describe(const RunResult& r) {
  return "stdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// A sanitizer build (BUILD_TYPE=ASan/TSan) installs instrumented static libraries: programs
// linking them need the same sanitizer, so the consumers are built with it too.
std::string sanitizer_flags() {
  const std::string cache = vigil::test::read_file(build_dir() / "CMakeCache.txt");
  if (cache.find("CMAKE_BUILD_TYPE:STRING=ASan\n") != std::string::npos)
    return "-fsanitize=address,undefined";
  if (cache.find("CMAKE_BUILD_TYPE:STRING=TSan\n") != std::string::npos) return "-fsanitize=thread";
  return "";
}

}  // namespace

TEST(Install, ConsumersBuildAgainstTheInstalledPackage) {
  ASSERT_TRUE(fs::exists(build_dir() / "CMakeCache.txt")) << build_dir();
  TempDir tmp;
  const fs::path prefix = tmp / "prefix";
  auto r = run_process(
      {"/usr/bin/env", "cmake", "--install", build_dir().string(), "--prefix", prefix.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  // What a user gets: the tool, the headers, the static library, the CMake package, the .pc.
  for (const char* f :
       {"bin/vigil", "include/vigil/early_stopping.hpp", "include/vigil/safetensors.hpp",
        "lib/libvigil-core.a", "lib/cmake/vigil/vigilConfig.cmake",
        "lib/cmake/vigil/vigilConfigVersion.cmake", "lib/cmake/vigil/vigilTargets.cmake",
        "lib/pkgconfig/vigil-core.pc"})
    EXPECT_TRUE(fs::is_regular_file(prefix / f)) << f;
  r = run_process({(prefix / "bin/vigil").string(), "--version"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "vigil 0.1.0\n");
  r = run_process({(prefix / "bin/vigil").string(), "replay", "--values", "0.9,0.8,0.85,0.84",
                   "--patience", "2", "--json"});
  EXPECT_NE(r.out.find("\"stop_epoch\":3"), std::string::npos) << describe(r);

  const bool with_torch = fs::is_regular_file(prefix / "lib/libvigil-torch.a");
  EXPECT_EQ(with_torch, fs::is_regular_file(prefix / "include/vigil/torch/trainer.hpp"));
  EXPECT_EQ(with_torch, fs::is_regular_file(prefix / "bin/vigil-torch"));
  if (with_torch) {
    // `vigil train` runs in bin/vigil-torch, found beside the installed bin/vigil.
    r = run_process({(prefix / "bin/vigil").string(), "train", "--help"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.out.find("--run-dir"), std::string::npos) << describe(r);
  }

  // The CMake consumer, configured against the prefix only.
  const fs::path consumer = tmp / "consumer-build";
  r = run_process(
      {"/usr/bin/env", "cmake", "-S", (vigil::test::source_dir() / "tests/consumer").string(), "-B",
       consumer.string(), "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_PREFIX_PATH=" + prefix.string(),
       std::string("-DCONSUMER_WITH_TORCH=") + (with_torch ? "ON" : "OFF"),
       "-DCMAKE_CXX_FLAGS=" + sanitizer_flags(), "-DCMAKE_EXE_LINKER_FLAGS=" + sanitizer_flags()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // It found this install, not the build tree or another copy.
  const std::string cache = vigil::test::read_file(consumer / "CMakeCache.txt");
  EXPECT_NE(cache.find("vigil_DIR:PATH=" + (prefix / "lib/cmake/vigil").string()),
            std::string::npos);
  r = run_process({"/usr/bin/env", "cmake", "--build", consumer.string(), "--parallel", "2"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  r = run_process({(consumer / "core_consumer").string(), tmp.path().string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "stop_epoch=3 best_epoch=1\nroundtrip=ok\n");
  if (with_torch) {
    r = run_process({(consumer / "torch_consumer").string(), tmp.path().string()});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out, "tensors=4\noutputs=equal\n");  // 1.weight, 1.bias, 3.weight, 3.bias
  }

  // A project without CMake: the compiler flags come from vigil-core.pc alone.
  const std::string pkg =
      "PKG_CONFIG_PATH=" + quote((prefix / "lib/pkgconfig").string()) + " pkg-config";
  r = sh(pkg + " --modversion vigil-core");
  EXPECT_EQ(r.out, "0.1.0\n") << describe(r);
  const fs::path exe = tmp / "pc_consumer";
  r = sh("c++ -std=c++20 -O1 -Wall -Wextra -Wpedantic -Werror " + sanitizer_flags() + " -o " +
         quote(exe.string()) + " " +
         quote((vigil::test::source_dir() / "tests/consumer/core_consumer.cpp").string()) + " $(" +
         pkg + " --cflags --libs vigil-core)");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  fs::create_directories(tmp / "pc");
  r = run_process({exe.string(), (tmp / "pc").string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "stop_epoch=3 best_epoch=1\nroundtrip=ok\n");
}
