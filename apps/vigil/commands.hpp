// The subcommands of the `vigil` tool; each file apps/vigil/cmd_*.cpp registers one or a few.
#pragma once

#include <CLI/CLI.hpp>

namespace vigil::cli {

/// Shared by all subcommands: the exit code the chosen subcommand wants the process to end with.
struct Context {
  int exit_code = 0;
};

/// The one-line summaries of the libtorch commands: `vigil` lists them in its help and runs them
/// in `vigil-torch` (main.cpp), which registers them with the same words.
inline constexpr const char* kTrainSummary =
    "Train a model with early stopping and checkpoints (Fashion-MNIST by default); running "
    "again with the same --run-dir resumes";
inline constexpr const char* kEvalSummary =
    "Evaluate saved weights on the test set (model options come from the run's run.json)";

inline constexpr const char* kGenerateSummary =
    "Continue a prompt with the best model of a `vigil train --model gpt` run";

void add_replay_command(CLI::App& app, Context& ctx);
void add_plot_command(CLI::App& app, Context& ctx);  // cmd_plot.cpp
void add_inspect_command(CLI::App& app, Context& ctx);
#ifdef VIGIL_WITH_TORCH
void add_train_command(CLI::App& app, Context& ctx);     // torch_train.cpp
void add_eval_command(CLI::App& app, Context& ctx);      // torch_eval.cpp
void add_generate_command(CLI::App& app, Context& ctx);  // torch_generate.cpp
#endif
void add_verify_command(CLI::App& app, Context& ctx);

}  // namespace vigil::cli
