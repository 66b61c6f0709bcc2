// `cpack` builds the Debian packages vigil and libvigil-dev. Checked without touching the
// machine's package database: every shared library the `vigil` tool needs (its ELF NEEDED
// entries) belongs to a package its Depends names, apt resolves the Depends of both packages
// (a simulated `apt-get install`), and the unpacked files work (the tool runs; the headers,
// CMake package and .pc file are where find_package and pkg-config look under /usr).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>

#include "test_support.hpp"

namespace fs = std::filesystem;
using vigil::test::run_process;
using vigil::test::RunResult;
using vigil::test::TempDir;

namespace {

// Only the packaging test below uses these, and it needs vigil-torch.
#ifdef VIGIL_TORCH_CLI
std::string describe(const RunResult& r) {
  return "stdout:\n" + r.out + "\nstderr:\n" + r.err;
}

fs::path build_dir() {
  return fs::path(VIGIL_CLI).parent_path();
}

bool have(const std::string& tool) {
  return run_process({"/bin/sh", "-c", "command -v " + tool + " >/dev/null"}).exit_code == 0;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

// "libc6 (>= 2.34), libfmt9 (>= 9.1.0+ds1), a | b" -> {"libc6", "libfmt9", "a", "b"}.
std::set<std::string> depends_names(const std::string& field) {
  std::set<std::string> out;
  std::string item;
  std::istringstream in(field);
  while (std::getline(in, item, ',')) {
    std::istringstream alts(item);
    std::string alt;
    while (std::getline(alts, alt, '|')) {
      alt = trim(alt.substr(0, alt.find('(')));
      alt = alt.substr(0, alt.find(':'));  // libfoo:any
      if (!alt.empty()) out.insert(alt);
    }
  }
  return out;
}

// The Debian package that ships the shared library `soname` the tool loads (via ldd + dpkg -S).
std::string package_of(const std::string& ldd_out, const std::string& soname) {
  std::istringstream in(ldd_out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string name, arrow, path;
    words >> name >> arrow >> path;
    if (name != soname || arrow != "=>") continue;
    const auto r = run_process({"/usr/bin/dpkg", "-S", fs::canonical(path).string()});
    if (r.exit_code != 0) {
      // usrmerge: /lib/... and /usr/lib/... are one file, recorded under one of the names.
      const auto r2 = run_process({"/usr/bin/dpkg", "-S", path});
      if (r2.exit_code != 0) return "";
      return r2.out.substr(0, r2.out.find_first_of(":"));
    }
    return r.out.substr(0, r.out.find_first_of(":"));
  }
  return "";
}
#endif

}  // namespace

TEST(Package, DebianPackagesDependOnWhatTheToolLoads) {
#ifndef VIGIL_TORCH_CLI
  GTEST_SKIP() << "vigil was built without libtorch (VIGIL_WITH_TORCH=OFF): the packages hold "
                  "vigil-torch, which this build lacks";
#else
  if (!have("dpkg-deb") || !have("dpkg-shlibdeps"))
    GTEST_SKIP() << "not a Debian system with dpkg-dev (dpkg-deb, dpkg-shlibdeps)";
  TempDir tmp;
  auto r =
      run_process({"/usr/bin/env", "cpack", "-G", "DEB", "--config",
                   (build_dir() / "CPackConfig.cmake").string(), "-B", (tmp / "pkg").string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  fs::path tool_deb, dev_deb;
  for (const auto& e : fs::directory_iterator(tmp / "pkg")) {
    const auto name = e.path().filename().string();
    if (name.starts_with("vigil_") && name.ends_with(".deb")) tool_deb = e.path();
    if (name.starts_with("libvigil-dev_") && name.ends_with(".deb")) dev_deb = e.path();
  }
  ASSERT_FALSE(tool_deb.empty()) << describe(r);
  ASSERT_FALSE(dev_deb.empty()) << describe(r);
  EXPECT_EQ(tool_deb.filename().string().substr(0, 12), "vigil_0.1.0_");

  // Every library the tool links directly must come from a package in its Depends (the
  // libraries those load are covered by their own packages' Depends).
  r = run_process({"/usr/bin/dpkg-deb", "-f", tool_deb.string(), "Depends"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto depends = depends_names(r.out);
  int checked = 0;
  for (const std::string vigil_bin : {VIGIL_CLI, VIGIL_TORCH_CLI}) {
    const auto needed = run_process(
        {"/bin/sh", "-c", "objdump -p '" + vigil_bin + "' | awk '$1 == \"NEEDED\" {print $2}'"});
    ASSERT_EQ(needed.exit_code, 0) << describe(needed);
    const auto ldd = run_process({"/usr/bin/ldd", vigil_bin});
    ASSERT_EQ(ldd.exit_code, 0) << describe(ldd);
    std::istringstream sonames(needed.out);
    std::string soname;
    while (std::getline(sonames, soname)) {
      const std::string package = package_of(ldd.out, soname);
      ASSERT_FALSE(package.empty()) << "no Debian package ships " << soname << "\n" << ldd.out;
      EXPECT_TRUE(depends.count(package)) << vigil_bin << ": " << soname << " comes from "
                                          << package << ", which Depends does not name: " << r.out;
      ++checked;
    }
  }
  EXPECT_GE(checked, 6);  // vigil: at least libstdc++, libc; vigil-torch: libtorch or libc10 too
  r = run_process({"/usr/bin/dpkg-deb", "-f", dev_deb.string(), "Depends"});
  const auto dev_depends = depends_names(r.out);
  for (const char* p : {"nlohmann-json3-dev", "libfmt-dev", "libxxhash-dev"})
    EXPECT_TRUE(dev_depends.count(p)) << p << " missing from libvigil-dev's Depends: " << r.out;

  // apt can satisfy both packages' Depends here (simulation: nothing is installed).
  if (have("apt-get")) {
    r = run_process({"/usr/bin/apt-get", "install", "--simulate", "-q", "--no-install-recommends",
                     tool_deb.string(), dev_deb.string()});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.out.find("Inst vigil "), std::string::npos) << describe(r);
    EXPECT_NE(r.out.find("Inst libvigil-dev "), std::string::npos) << describe(r);
  }

  // Unpacked, the files are where users and tools look for them, and the tool runs.
  const fs::path root = tmp / "root";
  for (const auto& deb : {tool_deb, dev_deb}) {
    r = run_process({"/usr/bin/dpkg-deb", "-x", deb.string(), root.string()});
    ASSERT_EQ(r.exit_code, 0) << describe(r);
  }
  for (const char* f :
       {"usr/bin/vigil", "usr/bin/vigil-torch", "usr/include/vigil/checkpoint_manager.hpp",
        "usr/lib/libvigil-core.a", "usr/lib/cmake/vigil/vigilConfig.cmake",
        "usr/lib/cmake/vigil/vigilTargets.cmake", "usr/lib/pkgconfig/vigil-core.pc"})
    EXPECT_TRUE(fs::is_regular_file(root / f)) << f;
  r = run_process({(root / "usr/bin/vigil").string(), "--version"});
  EXPECT_EQ(r.out, "vigil 0.1.0\n") << describe(r);
  // The training commands run in usr/bin/vigil-torch, found beside usr/bin/vigil.
  r = run_process({(root / "usr/bin/vigil").string(), "eval", "--help"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("--run-dir"), std::string::npos) << describe(r);
  // The .pc file finds its prefix from its own place, so it works unpacked anywhere too.
  r = run_process({"/bin/sh", "-c",
                   "PKG_CONFIG_PATH='" + (root / "usr/lib/pkgconfig").string() +
                       "' pkg-config --variable=includedir vigil-core"});
  EXPECT_EQ(fs::weakly_canonical(trim(r.out)), fs::weakly_canonical(root / "usr/include"))
      << describe(r);
#endif
}
