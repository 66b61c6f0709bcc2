// docs/guide.md cannot rot: every ```console block's `$ ` commands run, in order, in one scratch
// folder (with examples/, scripts/ and data/ linked in and the built `vigil` first on PATH), and
// must exit 0 and print what the guide shows under them. A line `...` in the shown output stands
// for any number of lines, `...` inside a line for any text; `[exit status N]` expects that status.
// A command may continue over lines ending in a backslash, or on lines starting with "> ".
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

struct Command {
  int line = 0;                   // in guide.md, for messages
  int section = 0;                // N of the "## N. title" it is under (0 before the first)
  std::string text;               // what runs under bash
  std::vector<std::string> want;  // the output shown (empty: not checked)
  int exit_status = 0;
};

std::string rtrim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

// Every console block's commands; fails the test for a shell block of another kind, so no
// command can slip past untested.
std::vector<Command> parse_guide(const std::string& text) {
  std::vector<Command> out;
  std::istringstream in(text);
  std::string line, fence;
  int n = 0;
  bool continued = false, in_command = false;
  int section = 0;
  while (std::getline(in, line)) {
    ++n;
    if (fence.empty() && line.starts_with("## ")) section = std::atoi(line.c_str() + 3);
    if (fence.empty()) {
      if (line.starts_with("```")) fence = line.substr(3).empty() ? "plain" : line.substr(3);
      for (const char* shell : {"sh", "bash", "shell"})
        EXPECT_NE(fence, shell) << "guide.md:" << n << ": use ```console so the test runs it";
      continue;
    }
    if (line.starts_with("```")) {
      fence.clear();
      continued = in_command = false;
      continue;
    }
    if (fence != "console") {
      EXPECT_FALSE(line.starts_with("$ ") || line.starts_with("vigil "))
          << "guide.md:" << n << ": a command outside a ```console block is never tested";
      continue;
    }
    if (continued) {
      out.back().text.append("\n").append(line);
      continued = line.ends_with("\\");
    } else if (in_command && line.starts_with("> ")) {  // the shell's secondary prompt
      out.back().text.append("\n").append(line, 2);
      continued = line.ends_with("\\");
    } else if (line.starts_with("$ ")) {
      out.push_back({n, section, line.substr(2), {}, 0});
      continued = line.ends_with("\\");
      in_command = true;
    } else if (!out.empty()) {
      in_command = false;
      if (line.starts_with("[exit status "))
        out.back().exit_status = std::stoi(line.substr(13));
      else
        out.back().want.push_back(rtrim(line));
    }
  }
  EXPECT_TRUE(fence.empty()) << "guide.md ends inside a ``` block";
  return out;
}

// `pattern` with "..." as a wildcard for any text.
bool line_matches(const std::string& pattern, const std::string& line) {
  const auto star = pattern.find("...");
  if (star == std::string::npos) return pattern == line;
  const std::string head = pattern.substr(0, star), rest = pattern.substr(star + 3);
  if (!line.starts_with(head)) return false;
  for (std::size_t i = head.size(); i <= line.size(); ++i)
    if (line_matches(rest, line.substr(i))) return true;
  return false;
}

// `want` against `got` line by line, a lone "..." matching any number of lines.
bool lines_match(const std::vector<std::string>& want, std::size_t w,
                 const std::vector<std::string>& got, std::size_t g) {
  if (w == want.size()) return g == got.size();
  if (want[w] == "...") {
    for (std::size_t k = g; k <= got.size(); ++k)
      if (lines_match(want, w + 1, got, k)) return true;
    return false;
  }
  return g < got.size() && line_matches(want[w], got[g]) && lines_match(want, w + 1, got, g + 1);
}

std::vector<std::string> output_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(rtrim(line));
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// The last `n` lines of `text`: a long run's failure is in its end, and a report that shows only
// the beginning of a long message would hide it.
std::string last_lines(const std::string& text, std::size_t n) {
  const auto lines = output_lines(text);
  const std::size_t first = lines.size() > n ? lines.size() - n : 0;
  std::string out;
  if (first > 0) out.append("[").append(std::to_string(first)).append(" earlier lines]\n");
  for (std::size_t i = first; i < lines.size(); ++i) out.append(lines[i]).append("\n");
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

TEST(Guide, ParserMatchesEllipsesAndContinuations) {
  const auto cmds = parse_guide(
      "text\n```console\n"
      "$ echo a \\\n  b\na b\n"
      "$ false\n[exit status 1]\n"
      "$ echo 'x\n> y'\nx\n> y\n"
      "```\n```cpp\nint x;\n```\n");
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[0].text, "echo a \\\n  b");
  EXPECT_EQ(cmds[0].want, std::vector<std::string>{"a b"});
  EXPECT_EQ(cmds[1].exit_status, 1);
  EXPECT_TRUE(cmds[1].want.empty());
  EXPECT_EQ(cmds[2].text, "echo 'x\ny'");
  EXPECT_EQ(cmds[2].want, (std::vector<std::string>{"x", "> y"}));
  EXPECT_TRUE(
      line_matches("stopped after epoch ... (patience)", "stopped after epoch 4 (patience)"));
  EXPECT_FALSE(line_matches("stopped after epoch ... (patience)", "stopped after epoch 4 (gl)"));
  EXPECT_TRUE(lines_match({"a", "...", "d"}, 0, {"a", "b", "c", "d"}, 0));
  EXPECT_TRUE(lines_match({"a", "...", "b"}, 0, {"a", "b"}, 0));
  EXPECT_FALSE(lines_match({"a", "...", "d"}, 0, {"a", "b", "c"}, 0));
  EXPECT_FALSE(lines_match({"a"}, 0, {"a", "b"}, 0));
}

namespace {

std::vector<Command> guide_commands() {
  return parse_guide(vigil::test::read_file(vigil::test::source_dir() / "docs/guide.md"));
}

// Runs the commands of `sections`, in order, in one fresh scratch folder.
void run_sections(const std::set<int>& sections) {
#ifndef VIGIL_TORCH_CLI
  // Without libtorch there is no vigil train or eval (the top-level --help would still answer
  // `vigil train --help`, so ask the build, not the binary).
  for (const auto& c : guide_commands())
    if (sections.count(c.section) && (c.text.find("vigil train") != std::string::npos ||
                                      c.text.find("vigil eval") != std::string::npos))
      GTEST_SKIP() << "vigil was built without libtorch (VIGIL_WITH_TORCH=OFF): no vigil train";
#endif
  if (!fs::exists("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (dataset-fashion-mnist)";
  const auto source = vigil::test::source_dir();
  vigil::test::TempDir work;
  fs::create_directory_symlink(source / "examples", work / "examples");
  fs::create_directory_symlink(source / "scripts", work / "scripts");
  fs::create_directory_symlink(source / "data", work / "data");
  // Debian's python3 (with python3-torch) and the vigil just built come first.
  const std::string prelude =
      "set -o pipefail; export PATH=" + quote(fs::path(VIGIL_CLI).parent_path().string()) +
      ":/usr/bin:/bin:$PATH; cd " + quote(work.path().string()) + "\n";
  int ran = 0;
  for (const auto& c : guide_commands()) {
    if (!sections.count(c.section)) continue;
    ++ran;
    const auto r = vigil::test::run_process({"/bin/bash", "-c", prelude + c.text});
    const std::string where = "guide.md:" + std::to_string(c.line) + ": $ " + c.text;
    ASSERT_EQ(r.exit_code, c.exit_status) << where << "\nstdout:\n"
                                          << r.out << "stderr:\n"
                                          << r.err;
    if (c.want.empty()) continue;
    const auto got = output_lines(r.out);
    auto want = c.want;
    while (!want.empty() && want.back().empty()) want.pop_back();
    std::string shown;
    for (const auto& l : want) shown += l + "\n";
    ASSERT_TRUE(lines_match(want, 0, got, 0)) << where << "\nthe guide shows:\n"
                                              << shown << "its output ends:\n"
                                              << last_lines(r.out, 12) << "its errors end:\n"
                                              << last_lines(r.err, 12);
  }
  EXPECT_GE(ran, 3) << "the guide lost its commands";
}

// One test per group of sections that share files, so each gets its own time limit and ctest
// may run them in parallel. Sections 5 and 6 use the run that section 3 trains.
struct Group {
  const char* name;  // the test's name
  std::set<int> sections;
};
const std::vector<Group> kGroups = {{"Section1PatienceAndMinDeltaSweep", {1}},
                                    {"Section2StoppingRules", {2}},
                                    {"Sections3And5And6RetentionDurabilityPython", {3, 5, 6}},
                                    {"Section4Resume", {4}},
                                    {"Section7TrainingBySteps", {7}},
                                    {"Section8LanguageModel", {8}},
                                    {"Section9EvidenceForStoppingRules", {9}}};

// gtest shows a parameter in the test's listing: its name, not its bytes.
void PrintTo(const Group& group, std::ostream* out) {
  *out << group.name;
}

class GuideSections : public ::testing::TestWithParam<Group> {};

}  // namespace

TEST(Guide, EverySectionWithCommandsIsRunBelow) {
  const auto commands = guide_commands();
  ASSERT_GE(commands.size(), 25u) << "the guide lost its commands";
  for (const auto& c : commands) {
    bool covered = false;
    for (const auto& g : kGroups) covered = covered || g.sections.count(c.section);
    EXPECT_TRUE(covered) << "guide.md:" << c.line << ": section " << c.section
                         << " is in no group of test_guide.cpp, so it would never run";
  }
}

TEST_P(GuideSections, RunAsTheGuideShows) {
  run_sections(GetParam().sections);
}

INSTANTIATE_TEST_SUITE_P(Guide, GuideSections, ::testing::ValuesIn(kGroups),
                         [](const ::testing::TestParamInfo<Group>& group) {
                           return std::string(group.param.name);
                         });
