// `vigil plot RUN_DIR`: draws the run's learning curve (SVG) with its best and stop epochs and
// its checkpoints, from metrics.csv, checkpoints/manifest.json and run.json.
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.hpp"
#include "vigil/io.hpp"
#include "vigil/run_plot.hpp"

namespace vigil::cli {
namespace {

namespace fs = std::filesystem;

struct PlotArgs {
  std::string run_dir;
  std::string metric = "loss";
  std::string out;
  int width = 800;
  int height = 480;
};

void run_plot(const PlotArgs& a) {
  const fs::path dir = a.run_dir;
  const RunPlot plot =
      plot_run(dir, RunPlotOptions{}.with_metric(a.metric).with_size(a.width, a.height));
  for (const auto& w : plot.warnings) fmt::print(stderr, "vigil: warning: {}\n", w);
  const fs::path out = a.out.empty() ? dir / "learning_curve.svg" : fs::path(a.out);
  atomic_write_file(out, plot.svg);
  const auto& o = plot.marks;
  fmt::print("wrote {} ({} of {} over {} epochs{}{}{})\n", out.string(),
             plot.columns.size() == 2 ? "curves" : "the curve", fmt::join(plot.columns, " and "),
             plot.epochs, o.best_epoch ? fmt::format("; best epoch {}", *o.best_epoch) : "",
             o.stop_epoch ? fmt::format("; stopped after epoch {}", *o.stop_epoch) : "",
             o.checkpoint_epochs.empty()
                 ? ""
                 : fmt::format("; {} checkpoints", o.checkpoint_epochs.size()));
}

}  // namespace

void add_plot_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<PlotArgs>();
  auto* cmd = app.add_subcommand(
      "plot", "Draw a run's learning curve (SVG) with its best and stop epochs and checkpoints");
  cmd->add_option("run_dir", args->run_dir, "A vigil train --run-dir folder")->required();
  cmd->add_option("--metric", args->metric,
                  "Metric to plot with its val_ counterpart, e.g. loss or accuracy (default loss)");
  cmd->add_option("--out", args->out,
                  "Where to write the SVG (default RUN_DIR/learning_curve.svg)");
  cmd->add_option("--width", args->width, "Picture width in pixels (default 800)");
  cmd->add_option("--height", args->height, "Picture height in pixels (default 480)");
  cmd->callback([args, &ctx] {
    run_plot(*args);
    ctx.exit_code = 0;
  });
}

}  // namespace vigil::cli
