// vigil: early stopping and checkpointing for libtorch training, from the command line.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "stdout.hpp"
#include "vigil/error.hpp"

namespace vigil::cli {
namespace {

// libtorch's errors carry a backtrace of a few dozen lines ("frame #0: ..."): the user gets the
// first line, and a failed allocation says what it means.
std::string one_line(std::string what) {
  if (what.find("\nframe #") != std::string::npos ||
      what.find("Exception raised from") != std::string::npos)
    what = what.substr(0, what.find('\n'));
  constexpr std::string_view kAlloc = "you tried to allocate ";
  if (const auto at = what.find(kAlloc); at != std::string::npos) {
    const double bytes = std::strtod(what.c_str() + at + kAlloc.size(), nullptr);
    return fmt::format(
        "out of memory: a tensor of {:.1f} GiB was asked for, more than this machine can give "
        "(a model or batch too large for it: choose smaller sizes, e.g. --hidden or --batch-size)",
        bytes / (1024.0 * 1024.0 * 1024.0));
  }
  return what;
}

}  // namespace
}  // namespace vigil::cli

#ifdef VIGIL_FORWARD_TORCH_COMMANDS
namespace {

constexpr const char* kTorchCommands[][2] = {{"train", vigil::cli::kTrainSummary},
                                             {"eval", vigil::cli::kEvalSummary},
                                             {"generate", vigil::cli::kGenerateSummary}};

// Runs the command in `vigil-torch` from this executable's folder; returns only on failure.
int forward_to_torch_tool(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto tool = (ec ? std::filesystem::path(argv[0]) : self).parent_path() / "vigil-torch";
  ::execv(tool.c_str(), argv);
  fmt::print(stderr,
             "vigil: error: '{}' is run by {}, which cannot be started: {} (install vigil-torch "
             "next to vigil, or build the target vigil_torch_cli)\n",
             argv[1], tool.string(), std::strerror(errno));
  return 1;
}

}  // namespace
#endif

int main(int argc, char** argv) {
#ifdef VIGIL_FORWARD_TORCH_COMMANDS
  // Before any parsing: the torch tool parses (and prints help for) these commands itself.
  if (argc > 1)
    for (const auto& [name, description] : kTorchCommands)
      if (std::string_view(argv[1]) == name) return forward_to_torch_tool(argv);
#endif
  CLI::App app{"vigil: keeps watch over neural-network training (early stopping, checkpoints)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vigil 0.1.0"));
  // One line per usage error, as scripts expect.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vigil: error: ") + e.what() + " (see --help)\n";
  });

  vigil::cli::Context ctx;
  vigil::cli::add_replay_command(app, ctx);
  vigil::cli::add_plot_command(app, ctx);
  vigil::cli::add_inspect_command(app, ctx);
#ifdef VIGIL_WITH_TORCH
  vigil::cli::add_train_command(app, ctx);
  vigil::cli::add_eval_command(app, ctx);
  vigil::cli::add_generate_command(app, ctx);
#elif defined(VIGIL_FORWARD_TORCH_COMMANDS)
  // Listed in --help; never parsed here (see above).
  for (const auto& [name, description] : kTorchCommands) app.add_subcommand(name, description);
#endif
  vigil::cli::add_verify_command(app, ctx);

  try {
    app.parse(argc, argv);
    // Output that never arrived is a failure, whatever the command decided.
    vigil::cli::flush_stdout();
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, as OptionError does.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const vigil::OptionError& e) {
    fmt::print(stderr, "vigil: error: {}\n", e.what());
    return 2;
  } catch (const std::system_error& e) {
    // fmt::print reports a failed write this way; name the stream that failed.
    if (std::ferror(stdout) != 0) {
      fmt::print(stderr, "vigil: error: {}\n", vigil::cli::stdout_error(e.code().value()).what());
    } else {
      fmt::print(stderr, "vigil: error: {}\n", e.what());
    }
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vigil: error: {}\n", vigil::cli::one_line(e.what()));
    return 1;
  }
  return ctx.exit_code;
}
