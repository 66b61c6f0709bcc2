// Learning-curve SVG: well-formed, one polyline per curve with a point per epoch, and the best,
// stop and checkpoint epochs marked where asked.
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "vigil/learning_curve.hpp"

namespace {

using vigil::CurveSeries;
using vigil::LearningCurveOptions;

struct Element {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;  // text directly inside, for <text>
};

// A minimal XML reader: checks that tags nest and close properly and that attributes are
// quoted, and returns every element in document order. Throws on anything malformed.
std::vector<Element> parse_xml(const std::string& doc) {
  std::vector<Element> out;
  std::vector<std::string> open;
  std::size_t i = 0;
  bool root_seen = false;
  while (i < doc.size()) {
    const auto lt = doc.find('<', i);
    if (lt == std::string::npos) break;
    if (!open.empty() && !out.empty() && out.back().name == open.back())
      out.back().text += doc.substr(i, lt - i);
    if (doc.compare(lt, 5, "<?xml") == 0) {
      i = doc.find("?>", lt);
      if (i == std::string::npos) throw std::runtime_error("unterminated declaration");
      i += 2;
      continue;
    }
    const auto gt = doc.find('>', lt);
    if (gt == std::string::npos) throw std::runtime_error("unterminated tag");
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (tag.empty()) throw std::runtime_error("empty tag");
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1))
        throw std::runtime_error("mismatched </" + tag.substr(1) + ">");
      open.pop_back();
      continue;
    }
    const bool self_closing = tag.back() == '/';
    if (self_closing) tag.pop_back();
    Element e;
    std::size_t p = tag.find_first_of(" \n");
    e.name = tag.substr(0, p);
    while (p != std::string::npos && p < tag.size()) {
      p = tag.find_first_not_of(" \n", p);
      if (p == std::string::npos) break;
      const auto eq = tag.find('=', p);
      if (eq == std::string::npos || eq + 1 >= tag.size() || tag[eq + 1] != '"')
        throw std::runtime_error("unquoted attribute in <" + e.name + ">");
      const auto end = tag.find('"', eq + 2);
      if (end == std::string::npos) throw std::runtime_error("unterminated attribute");
      const std::string key = tag.substr(p, eq - p);
      if (e.attrs.count(key)) throw std::runtime_error("duplicate attribute " + key);
      e.attrs[key] = tag.substr(eq + 2, end - eq - 2);
      p = end + 1;
    }
    if (open.empty()) {
      if (root_seen) throw std::runtime_error("second root element");
      root_seen = true;
    }
    out.push_back(e);
    if (!self_closing) open.push_back(e.name);
  }
  if (!open.empty()) throw std::runtime_error("unclosed <" + open.back() + ">");
  if (!root_seen) throw std::runtime_error("no root element");
  return out;
}

std::vector<Element> with_class(const std::vector<Element>& all, const std::string& cls) {
  std::vector<Element> out;
  for (const auto& e : all)
    if (e.attrs.count("class") && e.attrs.at("class") == cls) out.push_back(e);
  return out;
}

std::vector<std::pair<double, double>> points(const std::string& text) {
  std::vector<std::pair<double, double>> out;
  std::istringstream in(text);
  std::string pt;
  while (in >> pt) {
    const auto comma = pt.find(',');
    out.emplace_back(std::stod(pt.substr(0, comma)), std::stod(pt.substr(comma + 1)));
  }
  return out;
}

TEST(LearningCurve, WellFormedWithACurvePerSeriesAndAPointPerEpoch) {
  const std::vector<long> epochs{0, 1, 2, 3, 4, 5};
  const std::vector<CurveSeries> curves{{"loss", {0.9, 0.6, 0.45, 0.38, 0.33, 0.3}},
                                        {"val_loss", {0.8, 0.6, 0.5, 0.52, 0.55, 0.6}}};
  const auto svg = vigil::render_learning_curve(
      epochs, curves,
      LearningCurveOptions{}.with_best_epoch(2).with_stop_epoch(5).with_checkpoint_epochs(
          {1, 2, 4}));
  const auto doc = parse_xml(svg);
  EXPECT_EQ(doc.front().name, "svg");
  EXPECT_EQ(doc.front().attrs.at("xmlns"), "http://www.w3.org/2000/svg");
  const auto lines = with_class(doc, "curve");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].attrs.at("data-name"), "loss");
  EXPECT_EQ(lines[1].attrs.at("data-name"), "val_loss");
  for (const auto& l : lines) {
    const auto pts = points(l.attrs.at("points"));
    ASSERT_EQ(pts.size(), epochs.size());
    for (std::size_t i = 1; i < pts.size(); ++i) EXPECT_GT(pts[i].first, pts[i - 1].first);
  }
  // Larger values are drawn higher; SVG's y grows downwards, so a falling loss ends at a
  // larger y than it started.
  const auto train = points(lines[0].attrs.at("points"));
  EXPECT_GT(train.back().second, train.front().second);

  const auto best = with_class(doc, "best-epoch");
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(best[0].attrs.at("data-epoch"), "2");
  const auto val = points(lines[1].attrs.at("points"));
  EXPECT_DOUBLE_EQ(std::stod(best[0].attrs.at("x1")), val[2].first);
  const auto dot = with_class(doc, "best-point");
  ASSERT_EQ(dot.size(), 1u);
  EXPECT_DOUBLE_EQ(std::stod(dot[0].attrs.at("cy")), val[2].second);
  const auto stop = with_class(doc, "stop-epoch");
  ASSERT_EQ(stop.size(), 1u);
  EXPECT_EQ(stop[0].attrs.at("data-epoch"), "5");
  EXPECT_DOUBLE_EQ(std::stod(stop[0].attrs.at("x1")), val[5].first);
  const auto ticks = with_class(doc, "checkpoint");
  ASSERT_EQ(ticks.size(), 3u);
  EXPECT_EQ(ticks[2].attrs.at("data-epoch"), "4");

  // Axis labels, title and a legend naming both curves.
  std::string all_text;
  for (const auto& e : doc)
    if (e.name == "text") all_text += e.text + "|";
  for (const char* want : {"epoch|", "loss|", "val_loss|", "best (epoch 2)|", "stop (epoch 5)|",
                           "checkpoint|", "loss and val_loss per epoch|"})
    EXPECT_NE(all_text.find(want), std::string::npos) << want << " in " << all_text;
  EXPECT_EQ(with_class(doc, "legend").size(), 1u);
}

TEST(LearningCurve, NoMarkersUnlessAsked) {
  const auto doc =
      parse_xml(vigil::render_learning_curve({0, 1, 2}, {{"val_acc", {0.5, 0.7, 0.6}}}));
  EXPECT_EQ(with_class(doc, "curve").size(), 1u);
  EXPECT_TRUE(with_class(doc, "best-epoch").empty());
  EXPECT_TRUE(with_class(doc, "stop-epoch").empty());
  EXPECT_TRUE(with_class(doc, "checkpoint").empty());
}

TEST(LearningCurve, NonFiniteValuesAndEscaping) {
  const auto svg =
      vigil::render_learning_curve({0, 1, 2, 3}, {{"a<b & \"c\"", {1.0, NAN, INFINITY, 0.5}}},
                                   LearningCurveOptions{}.with_title("x < y"));
  const auto doc = parse_xml(svg);
  const auto curve = with_class(doc, "curve");
  ASSERT_EQ(curve.size(), 1u);
  EXPECT_EQ(points(curve[0].attrs.at("points")).size(), 2u);  // nan and inf left out
  EXPECT_EQ(curve[0].attrs.at("data-name"), "a&lt;b &amp; &quot;c&quot;");
  const auto crosses = with_class(doc, "non-finite");
  ASSERT_EQ(crosses.size(), 1u);
  EXPECT_EQ(crosses[0].attrs.at("data-epoch"), "2");
}

TEST(LearningCurve, FlatAndSingleEpochCurvesStillRender) {
  EXPECT_NO_THROW(parse_xml(vigil::render_learning_curve({0, 1, 2}, {{"loss", {1, 1, 1}}})));
  const auto one = parse_xml(vigil::render_learning_curve({7}, {{"loss", {0.0}}}));
  EXPECT_EQ(points(with_class(one, "curve")[0].attrs.at("points")).size(), 1u);
}

TEST(LearningCurve, Errors) {
  EXPECT_THROW(vigil::render_learning_curve({0, 1}, {}), vigil::InputError);
  EXPECT_THROW(vigil::render_learning_curve({0, 1}, {{"loss", {1.0}}}), vigil::InputError);
  EXPECT_THROW(vigil::render_learning_curve({0, 1}, {{"loss", {NAN, NAN}}}), vigil::InputError);
  EXPECT_THROW(vigil::render_learning_curve({0}, {{"loss", {1.0}}},
                                            LearningCurveOptions{}.with_size(50, 50)),
               vigil::OptionError);
}

TEST(LearningCurve, FromAMetricsLog) {
  const auto log = vigil::MetricsLog::parse_csv(
      "epoch,step,loss,val_loss,lr,seconds\n3,1,1.0,1.1,0.1,1\n4,2,0.8,0.9,0.1,1\n5,3,0.7,,0.1,1\n",
      "m.csv");
  EXPECT_EQ(vigil::learning_curve_columns(log, "val_loss"),
            (std::vector<std::string>{"loss", "val_loss"}));
  const auto doc = parse_xml(vigil::render_learning_curve(log, "loss"));
  const auto curves = with_class(doc, "curve");
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(points(curves[0].attrs.at("points")).size(), 3u);
  EXPECT_EQ(points(curves[1].attrs.at("points")).size(), 2u);  // the missing cell is a gap
  try {
    vigil::learning_curve_columns(log, "accuracy");
    FAIL() << "no error";
  } catch (const vigil::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("columns: epoch, step, loss"), std::string::npos)
        << e.what();
  }
}

}  // namespace
