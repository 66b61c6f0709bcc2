// Checkpoint name templates: fields, specs, and that nothing can escape the checkpoints folder.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "vigil/template.hpp"

namespace vigil {
namespace {

std::string render(std::string_view t, std::int64_t epoch, std::int64_t step, const Logs& m = {}) {
  return NameTemplate::parse(t).render(epoch, step, m);
}

TEST(Template, DefaultAndKerasStyleFields) {
  EXPECT_EQ(render("epoch-{epoch:04d}", 7, 0), "epoch-0007");
  EXPECT_EQ(render("{epoch:02d}-{val_loss:.4f}", 7, 0, {{"val_loss", 0.123456}}), "07-0.1235");
  EXPECT_EQ(render("step-{step}", 0, 12345), "step-12345");
  EXPECT_EQ(render("e{epoch}-acc={val_accuracy:.2f}", 1, 0, {{"val_accuracy", 0.5}}),
            "e1-acc=0.50");
}

TEST(Template, MissingAndNonFiniteMetrics) {
  EXPECT_EQ(render("x-{val_loss:.3f}", 0, 0), "x-none");
  EXPECT_EQ(render("{val_loss:.2f}", 0, 0, {{"val_loss", std::nan("")}}), "nan");
  EXPECT_EQ(render("{val_loss}", 0, 0, {{"val_loss", -std::numeric_limits<double>::infinity()}}),
            "-inf");
}

TEST(Template, LiteralBraces) {
  EXPECT_EQ(render("a{{b}}{epoch}", 3, 0), "a_b_3");  // braces are not safe characters
}

TEST(Template, NothingEscapesTheFolder) {
  for (auto t : {"../{epoch}", "/etc/passwd", "a/../../b", ".hidden-{epoch}", "..", ".",
                 ".x.tmp-1-2", "a\\b", "a b\tc", "\xff\xfe"}) {
    auto name = render(t, 1, 0);
    EXPECT_EQ(name.find('/'), std::string::npos) << t;
    EXPECT_NE(name.front(), '.') << t;
    EXPECT_NE(name, "..");
    EXPECT_FALSE(name.empty());
    for (char c : name)
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '=' ||
                  c == '+' || c == '-')
          << t;
  }
  EXPECT_EQ(sanitize_name(std::string(500, 'a')).size(), 128u);
  EXPECT_EQ(sanitize_name(""), "_");
}

TEST(Template, BadTemplatesAreOptionErrors) {
  for (auto t : {"{epoch", "epoch}", "{}", "{a b}", "{:04d}", "", "{x{y}}"}) {
    EXPECT_THROW(NameTemplate::parse(t), OptionError) << t;
  }
  // A spec that does not fit the value fails at render time with the field named.
  try {
    render("{val_loss:04d}", 0, 0, {{"val_loss", 0.5}});
    FAIL();
  } catch (const OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("val_loss"), std::string::npos);
  }
  EXPECT_THROW(render("{epoch:.2q}", 0, 0), OptionError);
  // Widths and precisions are bounded at parse time: 999999999 formatted a gigabyte per save.
  EXPECT_THROW(NameTemplate::parse("{epoch:999999999d}"), OptionError);
  EXPECT_THROW(NameTemplate::parse("{epoch:99999999999999999999d}"), OptionError);
  EXPECT_THROW(NameTemplate::parse("{val_loss:.65f}"), OptionError);
  EXPECT_EQ(render("{epoch:064d}", 7, 0), std::string(63, '0') + "7");
}

TEST(Template, FieldsAreListed) {
  auto t = NameTemplate::parse("{epoch}-{val_loss:.2f}-{epoch}");
  EXPECT_EQ(t.fields(), (std::vector<std::string>{"epoch", "val_loss", "epoch"}));
}

}  // namespace
}  // namespace vigil
