// SVG learning curves: axes with "nice" ticks, one polyline per curve, best/stop/checkpoint
// markers and a legend, written by hand so vigil::core needs no plotting dependency.
#include "vigil/learning_curve.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "detail/text.hpp"

namespace vigil {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"};
constexpr const char* kBestColor = "#2ca02c";
constexpr const char* kStopColor = "#d62728";
constexpr const char* kCheckpointColor = "#555555";

// 1, 2 or 5 times a power of ten, at least `raw`: tick spacing people read easily.
double nice_step(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return 1.0;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

struct Scale {
  double lo, hi, px_lo, px_hi;
  double operator()(double v) const {
    if (hi == lo) return (px_lo + px_hi) / 2;
    return px_lo + (v - lo) / (hi - lo) * (px_hi - px_lo);
  }
};

}  // namespace

std::string render_learning_curve(const std::vector<long>& epochs,
                                  const std::vector<CurveSeries>& curves,
                                  const LearningCurveOptions& options) {
  if (curves.empty()) throw InputError("nothing to plot: no curve given");
  if (options.width < 200 || options.height < 150)
    throw OptionError(fmt::format("plot size {}x{} is too small (at least 200x150)", options.width,
                                  options.height));
  double vmin = INFINITY, vmax = -INFINITY;
  for (const auto& c : curves) {
    if (c.values.size() != epochs.size())
      throw InputError(fmt::format("curve '{}' has {} values for {} epochs", c.name,
                                   c.values.size(), epochs.size()));
    for (double v : c.values)
      if (std::isfinite(v)) {
        vmin = std::min(vmin, v);
        vmax = std::max(vmax, v);
      }
  }
  if (!std::isfinite(vmin)) throw InputError("nothing to plot: no finite value in any curve");

  const double W = options.width, H = options.height;
  const double left = 72, right = 20, top = 40, bottom = 62;
  const double x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;

  long emin = *std::min_element(epochs.begin(), epochs.end());
  long emax = *std::max_element(epochs.begin(), epochs.end());
  for (auto e : {options.best_epoch, options.stop_epoch})
    if (e) {
      emin = std::min(emin, *e);
      emax = std::max(emax, *e);
    }
  const Scale xs{static_cast<double>(emin), static_cast<double>(emax), x0 + 8, x1 - 8};

  // Pad the value range so lines never touch the frame; a flat curve gets a visible band.
  double span = vmax - vmin;
  if (span == 0) span = vmax != 0 ? std::fabs(vmax) * 0.2 : 1.0;
  const double step = nice_step(span / 5);
  const double ylo = std::floor((vmin - span * 0.05) / step) * step;
  const double yhi = std::ceil((vmax + span * 0.05) / step) * step;
  const Scale ys{ylo, yhi, y1, y0};

  std::string first = curves.front().name;
  std::string title =
      options.title.empty()
          ? (curves.size() > 1 ? fmt::format("{} and {} per epoch", first, curves[1].name)
                               : fmt::format("{} per epoch", first))
          : options.title;
  const std::string y_label = options.y_label.empty() ? first : options.y_label;

  std::string s;
  s += fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect class=\"background\" x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text class=\"title\" x=\"{2:.1f}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{3}"
      "</text>\n",
      options.width, options.height, W / 2, detail::xml_escape(title));

  // Grid and y ticks.
  s += "<g class=\"y-axis\">\n";
  for (double v = ylo; v <= yhi + step * 1e-6; v += step) {
    const double y = ys(v);
    s += fmt::format(
        "<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" stroke=\"#e5e5e5\"/>\n"
        "<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"end\">{}</text>\n",
        x0, y, x1, y, x0 - 6, y + 4,
        detail::xml_escape(fmt::format("{:.4g}", std::fabs(v) < step * 1e-9 ? 0.0 : v)));
  }
  s += fmt::format(
      "<text class=\"axis-label\" transform=\"translate(16 {:.2f}) rotate(-90)\" "
      "text-anchor=\"middle\">{}</text>\n</g>\n",
      (y0 + y1) / 2, detail::xml_escape(y_label));

  // X ticks at whole epochs, about ten of them.
  const long xstep = std::max(1L, static_cast<long>(nice_step((emax - emin) / 10.0)));
  s += "<g class=\"x-axis\">\n";
  for (long e = (emin / xstep) * xstep; e <= emax; e += xstep) {
    if (e < emin) continue;
    const double x = xs(static_cast<double>(e));
    s += fmt::format(
        "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>\n"
        "<text x=\"{0:.2f}\" y=\"{3:.2f}\" text-anchor=\"middle\">{4}</text>\n",
        x, y1, y1 + 5, y1 + 18, e);
  }
  s += fmt::format(
      "<text class=\"axis-label\" x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">epoch</text>\n"
      "</g>\n",
      (x0 + x1) / 2, H - 10);
  s += fmt::format(
      "<rect class=\"frame\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
      "fill=\"none\" stroke=\"#333\"/>\n",
      x0, y0, x1 - x0, y1 - y0);

  // Checkpoints as small triangles just under the x axis.
  for (long e : options.checkpoint_epochs) {
    if (e < emin || e > emax) continue;
    const double x = xs(static_cast<double>(e));
    s += fmt::format(
        "<path class=\"checkpoint\" data-epoch=\"{}\" d=\"M {:.2f} {:.2f} l -5 9 h 10 z\" "
        "fill=\"{}\"/>\n",
        e, x, y1 + 22, kCheckpointColor);
  }

  // Best and stop epochs as vertical lines.
  if (options.best_epoch) {
    const double x = xs(static_cast<double>(*options.best_epoch));
    s += fmt::format(
        "<line class=\"best-epoch\" data-epoch=\"{}\" x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" "
        "y2=\"{:.2f}\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
        *options.best_epoch, x, y0, x, y1, kBestColor);
  }
  if (options.stop_epoch) {
    const double x = xs(static_cast<double>(*options.stop_epoch));
    s += fmt::format(
        "<line class=\"stop-epoch\" data-epoch=\"{}\" x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" "
        "y2=\"{:.2f}\" stroke=\"{}\" stroke-width=\"1.5\"/>\n",
        *options.stop_epoch, x, y0, x, y1, kStopColor);
  }

  // The curves. NaN (also a missing cell) leaves a gap in the points; an infinite value cannot
  // be placed either, so it is crossed at the top (inf) or bottom (-inf) edge.
  for (std::size_t c = 0; c < curves.size(); ++c) {
    const char* color = kColors[c % std::size(kColors)];
    std::string points;
    for (std::size_t i = 0; i < epochs.size(); ++i) {
      const double v = curves[c].values[i];
      if (!std::isfinite(v)) continue;
      if (!points.empty()) points += ' ';
      points += fmt::format("{:.2f},{:.2f}", xs(static_cast<double>(epochs[i])), ys(v));
    }
    s += fmt::format(
        "<polyline class=\"curve\" data-name=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" "
        "stroke-width=\"2\" stroke-linejoin=\"round\"/>\n",
        detail::xml_escape(curves[c].name), points, color);
    for (std::size_t i = 0; i < epochs.size(); ++i) {
      const double v = curves[c].values[i];
      if (!std::isinf(v)) continue;
      s += fmt::format(
          "<text class=\"non-finite\" data-epoch=\"{}\" x=\"{:.2f}\" y=\"{:.2f}\" "
          "text-anchor=\"middle\" fill=\"{}\">×</text>\n",
          epochs[i], xs(static_cast<double>(epochs[i])), v > 0 ? y0 + 12 : y1 - 4, color);
    }
  }
  // A dot on the last curve (the validation one) at the best epoch.
  if (options.best_epoch) {
    const auto& last = curves.back();
    for (std::size_t i = 0; i < epochs.size(); ++i)
      if (epochs[i] == *options.best_epoch && std::isfinite(last.values[i]))
        s += fmt::format(
            "<circle class=\"best-point\" cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"4.5\" fill=\"{}\"/>\n",
            xs(static_cast<double>(epochs[i])), ys(last.values[i]), kBestColor);
  }

  // Legend in the top-right corner of the plot.
  struct Entry {
    std::string label, color, dash;
    bool triangle;
  };
  std::vector<Entry> entries;
  for (std::size_t c = 0; c < curves.size(); ++c)
    entries.push_back({curves[c].name, kColors[c % std::size(kColors)], "", false});
  if (options.best_epoch)
    entries.push_back(
        {fmt::format("best (epoch {})", *options.best_epoch), kBestColor, "6 4", false});
  if (options.stop_epoch)
    entries.push_back({fmt::format("stop (epoch {})", *options.stop_epoch), kStopColor, "", false});
  if (!options.checkpoint_epochs.empty())
    entries.push_back({"checkpoint", kCheckpointColor, "", true});
  std::size_t longest = 0;
  for (const auto& e : entries) longest = std::max(longest, e.label.size());
  const double lw = 44 + 7.0 * static_cast<double>(longest), lh = 18.0 * entries.size() + 8;
  const double lx = x1 - lw - 8, ly = y0 + 8;
  s += fmt::format(
      "<g class=\"legend\">\n<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
      "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
      lx, ly, lw, lh);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const double y = ly + 16 + 18.0 * static_cast<double>(i);
    if (e.triangle) {
      s += fmt::format("<path d=\"M {:.2f} {:.2f} l -5 9 h 10 z\" fill=\"{}\"/>\n", lx + 20, y - 7,
                       e.color);
    } else {
      s += fmt::format(
          "<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" stroke=\"{}\" "
          "stroke-width=\"2\"{}/>\n",
          lx + 8, y - 4, lx + 32, y - 4, e.color,
          e.dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", e.dash));
    }
    s += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n", lx + 38, y,
                     detail::xml_escape(e.label));
  }
  s += "</g>\n</svg>\n";
  return s;
}

std::vector<std::string> learning_curve_columns(const MetricsLog& log, const std::string& metric) {
  const std::string train = metric.rfind("val_", 0) == 0 ? metric.substr(4) : metric;
  const std::string val = "val_" + train;
  std::vector<std::string> out;
  for (const auto& name : {train, val})
    if (log.has_column(name)) out.push_back(name);
  if (out.empty()) {
    std::string list;
    for (const auto& n : log.columns()) list += (list.empty() ? "" : ", ") + n;
    throw InputError(fmt::format("metrics log '{}' has neither '{}' nor '{}' (columns: {})",
                                 log.source(), train, val, list.empty() ? "none" : list));
  }
  return out;
}

std::string render_learning_curve(const MetricsLog& log, const std::string& metric,
                                  const LearningCurveOptions& options) {
  const auto names = learning_curve_columns(log, metric);
  std::vector<long> epochs(log.rows());
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    epochs[i] = static_cast<long>(i);
    if (log.has_column("epoch") && log.has_value(i, "epoch")) {
      const double e = log.column("epoch")[i];
      if (std::isfinite(e)) epochs[i] = static_cast<long>(e);
    }
  }
  std::vector<CurveSeries> curves;
  for (const auto& n : names) {
    const auto col = log.column(n);
    curves.push_back({n, std::vector<double>(col.begin(), col.end())});
  }
  LearningCurveOptions o = options;
  if (o.y_label.empty())
    o.y_label = names.front().rfind("val_", 0) == 0 ? names.front().substr(4) : names.front();
  return render_learning_curve(epochs, curves, o);
}

}  // namespace vigil
