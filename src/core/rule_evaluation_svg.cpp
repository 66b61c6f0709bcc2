// The rules' trade-off drawn by hand as SVG: epochs trained against test metric given up.
#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "detail/text.hpp"
#include "vigil/rule_evaluation.hpp"

namespace vigil {

std::string scores_to_svg(const std::vector<RuleScore>& scores, std::string_view test_monitor) {
  constexpr double W = 800, H = 520, left = 70, right = 30, top = 50, bottom = 60;
  double max_regret = 0;
  for (const auto& s : scores)
    if (std::isfinite(s.regret)) max_regret = std::max(max_regret, s.regret);
  if (!(max_regret > 0)) max_regret = 1;
  // x: the epochs fraction, 0 to 1; y: the mean regret, 0 at the bottom.
  const auto x = [&](double f) { return left + std::clamp(f, 0.0, 1.0) * (W - left - right); };
  const auto y = [&](double r) { return H - bottom - r / max_regret * (H - top - bottom); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">Stopping rules: epochs "
      "trained against {3} given up</text>\n",
      W, H, W / 2, detail::xml_escape(test_monitor));
  svg += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n"
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{3}\" stroke=\"black\"/>\n",
      left, H - bottom, W - right, top);
  for (int i = 0; i <= 10; ++i) {
    const double f = i / 10.0, r = max_regret * i / 10.0;
    svg += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.1f}</text>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        x(f), H - bottom + 18, f, left - 6, y(r) + 4, detail::xml_escape(fmt::format("{:.3g}", r)));
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">mean epochs fraction (1 = every "
      "epoch)</text>\n<text x=\"18\" y=\"{:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 "
      "18 {:.1f})\">mean regret ({})</text>\n",
      (left + W - right) / 2, H - 18, (top + H - bottom) / 2, (top + H - bottom) / 2,
      detail::xml_escape(test_monitor));
  for (const auto& s : scores) {
    if (!std::isfinite(s.regret) || !std::isfinite(s.epochs_fraction)) continue;
    svg += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"#1f77b4\"/>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{}</text>\n",
        x(s.epochs_fraction), y(s.regret), x(s.epochs_fraction) + 6, y(s.regret) - 5,
        detail::xml_escape(s.rule));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace vigil
