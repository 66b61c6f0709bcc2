// The examples' command line: a run directory and `--flag value` pairs over defaults.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

/// What an example was given: its run directory and every flag's value (a default if absent).
struct ExampleArgs {
  std::filesystem::path run_dir;
  std::map<std::string, std::string> flags;
};

/// Reads `RUN_DIR --flag value ...`: a word without "--" is the run directory (default
/// `run_dir`), a flag of `flags` takes the next word. An unknown flag is reported on stderr and
/// ends the program with exit code 2.
inline ExampleArgs parse_example_args(int argc, char** argv, std::filesystem::path run_dir,
                                      std::map<std::string, std::string> flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (flags.count(a) && i + 1 < argc) {
      flags[a] = argv[++i];
    } else if (a.rfind("--", 0) != 0) {
      run_dir = a;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  return {std::move(run_dir), std::move(flags)};
}
