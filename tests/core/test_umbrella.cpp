// vigil/vigil.hpp and vigil/torch.hpp include every public header, so one include is enough.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "vigil/vigil.hpp"

namespace vigil {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The public headers of one folder, spelled as they are included ("vigil/x.hpp").
std::set<std::string> headers_in(const fs::path& include_root, const std::string& folder) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(include_root / folder))
    if (e.is_regular_file() && e.path().extension() == ".hpp")
      names.insert(folder + "/" + e.path().filename().string());
  return names;
}

void expect_includes_all(const fs::path& umbrella, const std::set<std::string>& headers) {
  const std::string text = read_text(umbrella);
  ASSERT_FALSE(text.empty()) << umbrella;
  for (const auto& h : headers) {
    EXPECT_NE(text.find("#include \"" + h + "\""), std::string::npos)
        << umbrella.filename() << " does not include " << h;
  }
}

TEST(Umbrella, CoreHeaderIncludesEveryCoreHeader) {
  const fs::path include = fs::path(VIGIL_SOURCE_DIR) / "include";
  auto headers = headers_in(include, "vigil");
  headers.erase("vigil/vigil.hpp");
  headers.erase("vigil/torch.hpp");
  expect_includes_all(include / "vigil" / "vigil.hpp", headers);
}

TEST(Umbrella, TorchHeaderIncludesEveryTorchHeaderAndTheCore) {
  const fs::path include = fs::path(VIGIL_SOURCE_DIR) / "include";
  auto headers = headers_in(include, "vigil/torch");
  headers.insert("vigil/vigil.hpp");
  expect_includes_all(include / "vigil" / "torch.hpp", headers);
}

TEST(Umbrella, CoreHeaderCompilesAlone) {
  // This file includes only vigil/vigil.hpp of vigil: these names come from it.
  EXPECT_EQ(EarlyStoppingOptions{}.monitor, "val_loss");
  EarlyStopper stopper(EarlyStoppingOptions{}.with_patience(1));
  EXPECT_FALSE(stopper.update(0, 1.0).stop);
  EXPECT_TRUE(stopper.update(1, 2.0).stop);
  EXPECT_EQ(NameTemplate::parse("epoch-{epoch:04d}").render(3, 0, {}), "epoch-0003");
}

}  // namespace
}  // namespace vigil
