// Data sets: Fashion-MNIST IDX reading and its validation, CSV tables, standardisation, the
// seeded split and resumable mini-batches.
#include <gtest/gtest.h>
#include <zlib.h>

#include <torch/torch.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "test_support.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/rng_state.hpp"

namespace vt = vigil::torch;
namespace fs = std::filesystem;
using vigil::test::error_of;
using vigil::test::TempDir;
using vigil::test::write_file;

namespace {

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// An IDX file image: magic, dims, then `data`.
std::string idx(std::uint32_t magic, std::vector<std::uint32_t> dims, const std::string& data) {
  std::string s = be32(magic);
  for (auto d : dims) s += be32(d);
  return s + data;
}

std::string images_data(int n) {
  std::string s;
  for (int i = 0; i < n * 784; ++i) s += static_cast<char>((i * 7 + i / 784) % 256);
  return s;
}

std::string labels_data(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>(i % 10);
  return s;
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
}

// A small Fashion-MNIST-shaped folder: `n` train and `n` test examples.
void write_fake_mnist(const fs::path& dir, int n, bool gz) {
  for (std::string split : {"train", "t10k"}) {
    auto img = idx(0x803, {static_cast<std::uint32_t>(n), 28, 28}, images_data(n));
    auto lab = idx(0x801, {static_cast<std::uint32_t>(n)}, labels_data(n));
    if (gz) {
      write_gz(dir / (split + "-images-idx3-ubyte.gz"), img);
      write_gz(dir / (split + "-labels-idx1-ubyte.gz"), lab);
    } else {
      write_file(dir / (split + "-images-idx3-ubyte"), img);
      write_file(dir / (split + "-labels-idx1-ubyte"), lab);
    }
  }
}

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "'" << (part) << "' not in: " << (text)

}  // namespace

// ---- the real data set (Debian's dataset-fashion-mnist) ----

TEST(FashionMnist, RealFilesLoadWithShapesScalingAndKnownLabels) {
  if (!fs::exists(vt::kFashionMnistDir)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto train = vt::load_fashion_mnist(
      vt::Split::Train, vt::FashionMnistOptions().with_limit(100).with_normalize(false));
  ASSERT_EQ(train.features.sizes(), torch::IntArrayRef({100, 1, 28, 28}));
  EXPECT_EQ(train.features.scalar_type(), torch::kFloat);
  EXPECT_EQ(train.targets.scalar_type(), torch::kLong);
  EXPECT_GE(train.features.min().item<float>(), 0.0f);
  EXPECT_LE(train.features.max().item<float>(), 1.0f);
  // First labels and the first image's pixel sum, read independently with Python's gzip.
  EXPECT_TRUE(torch::equal(train.targets.narrow(0, 0, 10),
                           torch::tensor({9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, torch::kLong)));
  EXPECT_NEAR(train.features[0].sum().item<double>() * 255.0, 76247.0, 0.5);
  auto test = vt::load_fashion_mnist(vt::Split::Test, vt::FashionMnistOptions().with_limit(10));
  EXPECT_TRUE(
      torch::equal(test.targets, torch::tensor({9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, torch::kLong)));
  auto plain = vt::load_fashion_mnist(
      vt::Split::Test, vt::FashionMnistOptions().with_limit(10).with_normalize(false));
  EXPECT_TRUE(torch::allclose(
      test.features, (plain.features - vt::kFashionMnistMean) / vt::kFashionMnistStd, 1e-5, 1e-5));
  EXPECT_EQ(vt::fashion_mnist_classes().at(9), "Ankle boot");
}

TEST(FashionMnist, MissingFolderNamesTheDebianPackage) {
  auto msg = error_of([] {
    vt::load_fashion_mnist(vt::Split::Train,
                           vt::FashionMnistOptions().with_root("/nonexistent/fm"));
  });
  EXPECT_CONTAINS(msg, "/nonexistent/fm");
  EXPECT_CONTAINS(msg, "dataset-fashion-mnist");
}

TEST(FashionMnist, GzippedAndRawCopiesLoadTheSame) {
  TempDir gz, raw;
  write_fake_mnist(gz.path(), 12, true);
  write_fake_mnist(raw.path(), 12, false);
  auto a = vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions().with_root(gz.path()));
  auto b =
      vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions().with_root(raw.path()));
  EXPECT_EQ(a.size(), 12);
  EXPECT_TRUE(torch::equal(a.features, b.features));
  EXPECT_TRUE(torch::equal(a.targets, b.targets));
  EXPECT_EQ(a.targets[11].item<std::int64_t>(), 1);
  auto limited = vt::load_fashion_mnist(
      vt::Split::Test, vt::FashionMnistOptions().with_root(gz.path()).with_limit(5));
  EXPECT_EQ(limited.size(), 5);
  EXPECT_TRUE(torch::equal(limited.features, a.features.narrow(0, 0, 5)));
}

TEST(FashionMnist, MissingFileIsNamed) {
  TempDir dir;
  write_fake_mnist(dir.path(), 3, false);
  fs::remove(dir / "t10k-labels-idx1-ubyte");
  auto msg = error_of([&] {
    vt::load_fashion_mnist(vt::Split::Test, vt::FashionMnistOptions().with_root(dir.path()));
  });
  EXPECT_CONTAINS(msg, "t10k-labels-idx1-ubyte");
}

TEST(FashionMnist, CorruptIdxFilesGiveErrorsNamingFileAndProblem) {
  struct Bad {
    const char* what;
    std::string images, labels;
    const char* expect_file;
    const char* expect;
  };
  const std::string good_img = idx(0x803, {4, 28, 28}, images_data(4));
  const std::string good_lab = idx(0x801, {4}, labels_data(4));
  std::vector<Bad> cases = {
      {"bad magic", idx(0x903, {4, 28, 28}, images_data(4)), good_lab, "train-images",
       "bad magic number 0x00000903"},
      {"labels with image magic", good_img, idx(0x803, {4}, labels_data(4)), "train-labels",
       "bad magic"},
      {"truncated", good_img.substr(0, good_img.size() - 10), good_lab, "train-images",
       "truncated or corrupt"},
      {"trailing bytes", good_img + "xx", good_lab, "train-images", "truncated or corrupt"},
      {"wrong size", idx(0x803, {4, 20, 20}, images_data(4).substr(0, 1600)), good_lab,
       "train-images", "28x28"},
      {"label out of range", good_img, idx(0x801, {4}, std::string("\x01\x02\x0a\x03", 4)),
       "train-labels", "label 10 of example 2"},
      {"count mismatch", good_img, idx(0x801, {3}, labels_data(3)), "labels", "4 images"},
      {"short header", std::string("\x00\x00\x08", 3), good_lab, "train-images", "IDX"},
      {"zero dimension", idx(0x803, {0, 28, 28}, ""), good_lab, "train-images", "is 0"},
  };
  for (const auto& c : cases) {
    for (bool gz : {false, true}) {
      TempDir dir;
      write_fake_mnist(dir.path(), 4, false);
      fs::remove(dir / "train-images-idx3-ubyte");
      fs::remove(dir / "train-labels-idx1-ubyte");
      if (gz) {
        write_gz(dir / "train-images-idx3-ubyte.gz", c.images);
        write_gz(dir / "train-labels-idx1-ubyte.gz", c.labels);
      } else {
        write_file(dir / "train-images-idx3-ubyte", c.images);
        write_file(dir / "train-labels-idx1-ubyte", c.labels);
      }
      auto msg = error_of([&] {
        vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions().with_root(dir.path()));
      });
      SCOPED_TRACE(std::string(c.what) + (gz ? " (gz)" : " (raw)"));
      EXPECT_CONTAINS(msg, c.expect_file);
      EXPECT_CONTAINS(msg, c.expect);
      EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
  }
}

TEST(FashionMnist, DamagedGzipStreamIsAnError) {
  TempDir dir;
  write_fake_mnist(dir.path(), 50, true);
  auto path = dir / "train-images-idx3-ubyte.gz";
  auto bytes = vigil::test::read_file(path);
  for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
  write_file(path, bytes);
  auto msg = error_of([&] {
    vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions().with_root(dir.path()));
  });
  EXPECT_CONTAINS(msg, "train-images-idx3-ubyte.gz");
}

TEST(FashionMnist, ALimitedReadStillChecksTheWholeGzipMember) {
  TempDir dir;
  write_fake_mnist(dir.path(), 50, true);
  const auto opts = vt::FashionMnistOptions().with_root(dir.path()).with_limit(5);
  ASSERT_EQ(vt::load_fashion_mnist(vt::Split::Train, opts).size(), 5);
  // The CRC-32 in the trailer no longer matches: the first 5 images read fine, the member is bad.
  auto path = dir / "train-images-idx3-ubyte.gz";
  auto bytes = vigil::test::read_file(path);
  bytes[bytes.size() - 8] ^= 0x01;
  write_file(path, bytes);
  auto msg = error_of([&] { vt::load_fashion_mnist(vt::Split::Train, opts); });
  EXPECT_CONTAINS(msg, "train-images-idx3-ubyte.gz");
  EXPECT_CONTAINS(msg, "cannot decompress");
}

TEST(FashionMnist, ATruncatedGzipIsNotGivenTheSizeItsLastBytesSpell) {
  TempDir dir;
  write_fake_mnist(dir.path(), 50, true);
  auto path = dir / "train-images-idx3-ubyte.gz";
  auto bytes = vigil::test::read_file(path);
  write_file(path, bytes.substr(0, bytes.size() / 2));
  auto msg = error_of([&] {
    vt::load_fashion_mnist(vt::Split::Train, vt::FashionMnistOptions().with_root(dir.path()));
  });
  EXPECT_CONTAINS(msg, "train-images-idx3-ubyte.gz");
  EXPECT_CONTAINS(msg, "truncated or corrupt");
  EXPECT_EQ(msg.find("file holds"), std::string::npos) << msg;
}

TEST(FashionMnist, BadLimitIsAnOptionError) {
  TempDir dir;
  write_fake_mnist(dir.path(), 3, false);
  EXPECT_THROW(vt::load_fashion_mnist(
                   vt::Split::Train, vt::FashionMnistOptions().with_root(dir.path()).with_limit(0)),
               vigil::OptionError);
}

// ---- split ----

TEST(Split, SeededDisjointAndComplete) {
  vt::Dataset d{torch::arange(100, torch::kFloat).reshape({100, 1}), torch::arange(100)};
  auto a = vt::train_validation_split(d, 0.1, 42);
  auto b = vt::train_validation_split(d, 0.1, 42);
  auto c = vt::train_validation_split(d, 0.1, 43);
  EXPECT_EQ(a.validation.size(), 10);
  EXPECT_EQ(a.train.size(), 90);
  EXPECT_TRUE(torch::equal(a.validation.targets, b.validation.targets));
  EXPECT_FALSE(torch::equal(a.validation.targets, c.validation.targets));
  std::set<std::int64_t> all;
  for (auto* part : {&a.train, &a.validation})
    for (std::int64_t i = 0; i < part->size(); ++i) {
      all.insert(part->targets[i].item<std::int64_t>());
      EXPECT_EQ(part->features[i][0].item<float>(), part->targets[i].item<float>());
    }
  EXPECT_EQ(all.size(), 100u);
  EXPECT_THROW(vt::train_validation_split(d, 1.0, 1), vigil::OptionError);
  EXPECT_THROW(vt::train_validation_split(d, -0.1, 1), vigil::OptionError);
  EXPECT_EQ(vt::train_validation_split(d, 0.0, 1).validation.size(), 0);
  EXPECT_EQ(vt::train_validation_split(d, 0.001, 1).validation.size(), 1);
  // The held-out part is named as the caller calls it.
  const auto three = d.head(3);
  EXPECT_CONTAINS(error_of([&] { vt::train_validation_split(three, 0.9, 1); }),
                  "a validation fraction of 0.9 leaves no training examples out of 3");
  EXPECT_CONTAINS(error_of([&] { vt::train_validation_split(three, 0.9, 1, "test"); }),
                  "a test fraction of 0.9 leaves no training examples out of 3");
}

// ---- CSV ----

TEST(Csv, RegressionTableWithQuotesAndDroppedColumn) {
  TempDir dir;
  write_file(dir / "houses.csv",
             "id,rooms,\"area, m2\",price\r\n"
             "1,3,70.5,210000\r\n"
             "2,\"4\",95,305000.5\r\n"
             "\r\n"
             "3,2, 48 ,150000\r\n");
  auto t =
      vt::load_csv(dir / "houses.csv", vt::CsvOptions().with_target("price").with_drop({"id"}));
  EXPECT_EQ(t.task, vt::Task::Regression);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"rooms", "area, m2"}));
  EXPECT_TRUE(torch::equal(t.data.features,
                           torch::tensor({3.0f, 70.5f, 4.0f, 95.0f, 2.0f, 48.0f}).reshape({3, 2})));
  EXPECT_TRUE(torch::equal(t.data.targets,
                           torch::tensor({210000.0f, 305000.5f, 150000.0f}).reshape({3, 1})));
  auto limited =
      vt::load_csv(dir / "houses.csv", vt::CsvOptions().with_target("price").with_limit(2));
  EXPECT_EQ(limited.data.size(), 2);
}

TEST(Csv, ClassificationFromIntegerAndTextLabels) {
  TempDir dir;
  write_file(dir / "a.csv", "x,y,label\n0.1,1,2\n0.2,2,0\n0.3,3,1\n");
  auto a = vt::load_csv(dir / "a.csv", vt::CsvOptions().with_target("label"));
  EXPECT_EQ(a.task, vt::Task::Classification);  // auto: small non-negative integers
  EXPECT_EQ(a.num_classes, 3);
  EXPECT_TRUE(torch::equal(a.data.targets, torch::tensor({2, 0, 1}, torch::kLong)));
  auto r = vt::load_csv(dir / "a.csv",
                        vt::CsvOptions().with_target("label").with_task(vt::Task::Regression));
  EXPECT_EQ(r.task, vt::Task::Regression);
  EXPECT_EQ(r.data.targets.scalar_type(), torch::kFloat);

  write_file(dir / "b.csv", "f,species\n1,versicolor\n2,setosa\n3,versicolor\n");
  auto b = vt::load_csv(dir / "b.csv", vt::CsvOptions().with_target("species"));
  EXPECT_EQ(b.class_names, (std::vector<std::string>{"setosa", "versicolor"}));
  EXPECT_TRUE(torch::equal(b.data.targets, torch::tensor({1, 0, 1}, torch::kLong)));

  write_file(dir / "c.csv", "f,t\n1,0.5\n2,3\n");
  auto msg = error_of([&] {
    vt::load_csv(dir / "c.csv",
                 vt::CsvOptions().with_target("t").with_task(vt::Task::Classification));
  });
  EXPECT_CONTAINS(msg, "c.csv:2");
  EXPECT_CONTAINS(msg, "'0.5'");
  EXPECT_EQ(vt::load_csv(dir / "c.csv", vt::CsvOptions().with_target("t")).task,
            vt::Task::Regression);
}

TEST(Csv, ErrorsNameFileLineAndColumn) {
  TempDir dir;
  write_file(dir / "t.csv", "a,b,target\n1,2,3\n4,oops,6\n");
  EXPECT_CONTAINS(
      error_of([&] { vt::load_csv(dir / "missing.csv", vt::CsvOptions().with_target("t")); }),
      "missing.csv' does not exist");
  auto col = error_of([&] { vt::load_csv(dir / "t.csv", vt::CsvOptions().with_target("price")); });
  EXPECT_CONTAINS(col, "no column 'price'");
  EXPECT_CONTAINS(col, "columns: a, b, target");
  auto cell =
      error_of([&] { vt::load_csv(dir / "t.csv", vt::CsvOptions().with_target("target")); });
  EXPECT_CONTAINS(cell, "t.csv:3");
  EXPECT_CONTAINS(cell, "column 'b' holds 'oops'");
  struct Malformed {
    const char* name;
    const char* text;
    const char* target;
    const char* message;  // a part of the error's message
  };
  for (const Malformed& m : std::vector<Malformed>{
           {"u.csv", "a,b\n1,2\n3\n", "b", "u.csv:3: 1 fields, the header has 2"},
           {"v.csv", "a,b\n1,\n", "a", "v.csv:2: column 'b' is empty"},
           {"w.csv", "a,b\n", "a", "no data rows"},
           {"x.csv", "", "a", "empty file"},
           {"y.csv", "a,b\n\"1,2\n", "a", "y.csv:2: unterminated"},
           {"z.csv", "a,b\n1,inf\n", "a", "not a finite number"}}) {
    write_file(dir / m.name, m.text);
    EXPECT_CONTAINS(
        error_of([&] { vt::load_csv(dir / m.name, vt::CsvOptions().with_target(m.target)); }),
        m.message)
        << m.name;
  }
  EXPECT_THROW(vt::parse_task("ranking"), vigil::OptionError);
}

TEST(Csv, HostileInputIsRefusedByNameNotReadWithoutEnd) {
  TempDir dir;
  // One non-finite target among numbers is an error, not 400 classes of their own.
  std::string rows = "x,y\n";
  for (int i = 0; i < 400; ++i) rows += std::to_string(i) + "," + std::to_string(i * 0.37) + "\n";
  rows += "1,nan\n";
  write_file(dir / "n.csv", rows);
  EXPECT_CONTAINS(error_of([&] { vt::load_csv(dir / "n.csv", vt::CsvOptions().with_target("y")); }),
                  "n.csv:402: target 'y' is 'nan', not a finite number");
  // Two columns of one name: which one is "x"?
  write_file(dir / "d.csv", "x,y,x\n1,2,3\n");
  EXPECT_CONTAINS(error_of([&] { vt::load_csv(dir / "d.csv", vt::CsvOptions().with_target("y")); }),
                  "d.csv:1: column 'x' appears twice in the header (columns 1 and 3)");
  // A device never ends; a folder is not an empty file.
  EXPECT_CONTAINS(error_of([&] { vt::load_csv("/dev/zero", vt::CsvOptions().with_target("y")); }),
                  "CSV file '/dev/zero' is a device");
  EXPECT_CONTAINS(error_of([&] { vt::load_csv(dir.path(), vt::CsvOptions().with_target("y")); }),
                  "is a folder");
  // A loop of symbolic links is named as one.
  fs::create_symlink(dir / "loop2", dir / "loop1");
  fs::create_symlink(dir / "loop1", dir / "loop2");
  EXPECT_CONTAINS(error_of([&] { vt::load_csv(dir / "loop1", vt::CsvOptions().with_target("y")); }),
                  "is a symbolic link that leads nowhere (or in a loop)");
  // Thousands of columns are not all listed in a one-line message.
  std::string wide;
  for (int i = 0; i < 5000; ++i) wide += fmt::format("c{},", i);
  wide += "y\n1\n";
  write_file(dir / "wide.csv", wide);
  auto listed =
      error_of([&] { vt::load_csv(dir / "wide.csv", vt::CsvOptions().with_target("nope")); });
  EXPECT_CONTAINS(listed, "no column 'nope' (columns: c0, c1,");
  EXPECT_CONTAINS(listed, "... (5001 in all)");
  EXPECT_LT(listed.size(), 400U) << listed;
  // A line without end (here 17 MiB) is refused before it is read whole.
  write_file(dir / "long.csv", "x,y\n" + std::string(std::size_t{17} << 20, '1'));
  EXPECT_CONTAINS(
      error_of([&] { vt::load_csv(dir / "long.csv", vt::CsvOptions().with_target("y")); }),
      "long.csv:2: a line is longer than 16 MiB");
}

TEST(Standardizer, FitsAppliesAndRoundTripsThroughJson) {
  auto x = torch::tensor({1.0f, 10.0f, 5.0f, 3.0f, 20.0f, 5.0f}).reshape({2, 3});
  auto s = vt::Standardizer::fit(x);
  EXPECT_EQ(s.mean, (std::vector<double>{2.0, 15.0, 5.0}));
  EXPECT_EQ(s.std, (std::vector<double>{1.0, 5.0, 1.0}));  // constant column -> 1
  auto y = s.apply(x);
  EXPECT_TRUE(
      torch::allclose(y, torch::tensor({-1.0f, -1.0f, 0.0f, 1.0f, 1.0f, 0.0f}).reshape({2, 3})));
  auto back = vt::Standardizer::from_json(nlohmann::json::parse(s.to_json().dump()));
  EXPECT_EQ(back.mean, s.mean);
  EXPECT_EQ(back.std, s.std);
  // Evaluation applies the training statistics, not its own.
  auto test = torch::tensor({4.0f, 25.0f, 5.0f}).reshape({1, 3});
  EXPECT_TRUE(torch::allclose(back.apply(test), torch::tensor({2.0f, 2.0f, 0.0f}).reshape({1, 3})));
  EXPECT_THROW(back.apply(torch::zeros({1, 2})), vigil::InputError);
  EXPECT_THROW(vt::Standardizer::from_json({{"mean", {1.0}}, {"std", {0.0}}}), vigil::InputError);
}

// ---- batches ----

TEST(Batches, CoverTheOrderAndResumeMidEpoch) {
  vt::Dataset d{torch::arange(10, torch::kFloat).reshape({10, 1}) * 10, torch::arange(10)};
  auto order = vt::epoch_order(10, 5, 0);
  vt::BatchIterator full(d, order, 3);
  EXPECT_EQ(full.num_batches(), 4);
  std::vector<std::int64_t> seen;
  std::vector<vt::Batch> batches;
  while (!full.done()) {
    batches.push_back(full.next());
    for (std::int64_t i = 0; i < batches.back().targets.size(0); ++i)
      seen.push_back(batches.back().targets[i].item<std::int64_t>());
  }
  EXPECT_EQ(seen, order);
  EXPECT_EQ(batches.back().targets.size(0), 1);
  EXPECT_EQ(batches[2].index, 2);
  EXPECT_EQ(batches[2].begin, 6);
  EXPECT_TRUE(
      torch::equal(batches[1].features.squeeze(1), batches[1].targets.to(torch::kFloat) * 10));
  EXPECT_THROW(full.next(), vigil::Error);

  vt::BatchIterator resumed(d, order, 3, /*start=*/6);
  EXPECT_EQ(resumed.next_index(), 2);
  for (std::size_t k = 2; k < batches.size(); ++k) {
    auto b = resumed.next();
    EXPECT_EQ(b.index, batches[k].index);
    EXPECT_TRUE(torch::equal(b.targets, batches[k].targets));
  }
  EXPECT_TRUE(resumed.done());
  EXPECT_EQ(resumed.position(), 10);

  vt::BatchIterator drop(d, order, 3, 0, /*drop_last=*/true);
  EXPECT_EQ(drop.num_batches(), 3);
  int n = 0;
  while (!drop.done()) drop.next(), ++n;
  EXPECT_EQ(n, 3);

  EXPECT_THROW(vt::BatchIterator(d, order, 0), vigil::OptionError);
  EXPECT_THROW(vt::BatchIterator(d, order, 3, 11), vigil::OptionError);
  EXPECT_THROW(vt::BatchIterator(d, {0, 10}, 3), vigil::OptionError);
}

TEST(Dataset, SubsetAndHead) {
  vt::Dataset d{torch::arange(5, torch::kFloat).reshape({5, 1}), torch::arange(5)};
  EXPECT_TRUE(torch::equal(d.subset({4, 0}).targets, torch::tensor({4, 0}, torch::kLong)));
  EXPECT_EQ(d.head(3).size(), 3);
  EXPECT_EQ(d.head(30).size(), 5);
  EXPECT_THROW(d.subset({5}), vigil::OptionError);
}
