// vigil: early stopping and checkpointing for libtorch training, from the command line.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "commands.hpp"
#include "vigil/error.hpp"

int main(int argc, char** argv) {
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
#endif
  vigil::cli::add_verify_command(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const vigil::OptionError& e) {
    fmt::print(stderr, "vigil: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vigil: error: {}\n", e.what());
    return 1;
  }
  return ctx.exit_code;
}
