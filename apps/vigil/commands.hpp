// The subcommands of the `vigil` tool; each file apps/vigil/cmd_*.cpp registers one or a few.
#pragma once

#include <CLI/CLI.hpp>

namespace vigil::cli {

/// Shared by all subcommands: the exit code the chosen subcommand wants the process to end with.
struct Context {
  int exit_code = 0;
};

void add_replay_command(CLI::App& app, Context& ctx);
void add_plot_command(CLI::App& app, Context& ctx);  // cmd_plot.cpp
void add_inspect_command(CLI::App& app, Context& ctx);
#ifdef VIGIL_WITH_TORCH
void add_train_command(CLI::App& app, Context& ctx);  // torch_train.cpp
void add_eval_command(CLI::App& app, Context& ctx);   // torch_eval.cpp
#endif
void add_verify_command(CLI::App& app, Context& ctx);

}  // namespace vigil::cli
