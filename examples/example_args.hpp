// The examples' command line: a run directory and `--flag value` pairs over defaults.
#pragma once

#include <cstdio>
#include <map>
#include <optional>
#include <string>

/// Reads `RUN_DIR --flag value ...`: a word without "--" is the run directory, a known flag takes
/// the next word. An unknown flag is reported on stderr and gives nullopt (exit with 2).
inline std::optional<std::map<std::string, std::string>> parse_example_args(
    int argc, char** argv, std::string& run_dir, std::map<std::string, std::string> flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (flags.count(a) && i + 1 < argc) {
      flags[a] = argv[++i];
    } else if (a.rfind("--", 0) != 0) {
      run_dir = a;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return std::nullopt;
    }
  }
  return flags;
}
