// Text corpora: the folder walk and its order, binary files and links skipped, the per-file
// split, corpus.json, the checks of open_text_corpus, the unigram baseline and the windows a
// TokenWindowSource cuts from the token file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>

#include <fmt/format.h>

#include "test_support.hpp"
#include "vigil/io.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/torch/text_corpus.hpp"

namespace vt = vigil::torch;
namespace fs = std::filesystem;
using vigil::test::error_of;
using vigil::test::read_file;
using vigil::test::TempDir;
using vigil::test::write_file;

namespace {

// `n` bytes of printable ASCII that depend on `seed`, so that files differ.
std::string text_of(std::size_t n, char seed = 'a') {
  std::string s(n, ' ');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (seed + i * 7) % 26);
  return s;
}

std::int64_t length(const std::vector<vt::TokenSegment>& segments) {
  std::int64_t n = 0;
  for (const auto& s : segments) n += s.end - s.begin;
  return n;
}

}  // namespace

// ---- building ----

TEST(TextCorpus, SingleFileIsSplitNinetyFiveFive) {
  TempDir dir;
  const auto text = text_of(1000);
  write_file(dir / "book.txt", text);
  const auto corpus = vt::build_text_corpus(dir / "book.txt", dir / "out", 0);
  ASSERT_EQ(corpus.files.size(), 1u);
  const auto& f = corpus.files[0];
  EXPECT_EQ(f.path, (dir / "book.txt").string());
  EXPECT_EQ(f.begin, 0);
  EXPECT_EQ(f.bytes, 1000);
  EXPECT_EQ(f.train, (vt::TokenSegment{0, 900}));
  EXPECT_EQ(f.validation, (vt::TokenSegment{900, 950}));
  EXPECT_EQ(f.test, (vt::TokenSegment{950, 1000}));
  EXPECT_EQ(corpus.bytes, 1000);
  EXPECT_EQ(corpus.tokens, dir / "out" / "tokens.u8");
  EXPECT_EQ(read_file(corpus.tokens), text);
  EXPECT_EQ(corpus.xxh3, fmt::format("{:016x}", vigil::xxh3_64(std::as_bytes(std::span(text)))));
  EXPECT_TRUE(fs::is_regular_file(dir / "out" / "corpus.json"));
  EXPECT_EQ(corpus.skipped_binary, 0);
  EXPECT_EQ(corpus.skipped_links, 0);
}

TEST(TextCorpus, HeldOutSplitsAreTheFileSizeDividedByTwentyRoundedDown) {
  TempDir dir;
  // name -> size; sorted by name, so the files come in this order.
  const std::vector<std::pair<std::string, std::int64_t>> sizes{
      {"a", 1}, {"b", 19}, {"c", 20}, {"d", 39}, {"e", 40}, {"f", 1000}, {"g", 1019}};
  for (const auto& [name, n] : sizes) write_file(dir / "src" / name, text_of(n));
  const auto corpus = vt::build_text_corpus(dir / "src", dir / "out", 0);
  ASSERT_EQ(corpus.files.size(), sizes.size());
  std::int64_t begin = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto& f = corpus.files[i];
    const auto n = sizes[i].second;
    const auto held_out = n / 20;
    SCOPED_TRACE(sizes[i].first);
    EXPECT_EQ(f.begin, begin);
    EXPECT_EQ(f.train.end - f.train.begin, n - 2 * held_out);
    EXPECT_EQ(f.validation.end - f.validation.begin, held_out);
    EXPECT_EQ(f.test.end - f.test.begin, held_out);
    EXPECT_EQ(f.test.end, begin + n);
    begin += n;
  }
  // The exact numbers for two sizes, not just the formula again.
  EXPECT_EQ(corpus.files[1].test.end - corpus.files[1].test.begin, 0);               // 19 bytes
  EXPECT_EQ(corpus.files[6].validation.end - corpus.files[6].validation.begin, 50);  // 1019
  EXPECT_EQ(corpus.bytes, begin);
}

TEST(TextCorpus, FolderIsReadRecursivelyInByteOrderOfThePaths) {
  TempDir dir;
  const auto src = dir / "src";
  // Byte order: 'A' < 'a', and '-' < '.' < '/', so "a.txt" comes before the folder "a/".
  const std::vector<std::string> expected{"A.txt",     "a-b.txt", "a.txt",
                                          "a/b/c.txt", "a/z.txt", "b.txt"};
  const std::vector<std::string> creation{"b.txt",     "a/z.txt", "a.txt",
                                          "a/b/c.txt", "A.txt",   "a-b.txt"};
  for (std::size_t i = 0; i < creation.size(); ++i)
    write_file(src / creation[i], text_of(30 + 10 * i, static_cast<char>('a' + i)));
  const auto corpus = vt::build_text_corpus(src, dir / "out", 0);
  ASSERT_EQ(corpus.files.size(), expected.size());
  std::string concatenated;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& f = corpus.files[i];
    EXPECT_EQ(f.path, (src / expected[i]).string());
    EXPECT_EQ(f.begin, static_cast<std::int64_t>(concatenated.size()));
    const auto content = read_file(src / expected[i]);
    EXPECT_EQ(f.bytes, static_cast<std::int64_t>(content.size()));
    concatenated += content;
  }
  EXPECT_EQ(read_file(corpus.tokens), concatenated);
}

TEST(TextCorpus, BinaryFilesAndLinksAreSkippedAndCountedEmptyFilesIgnored) {
  TempDir dir;
  const auto src = dir / "src";
  write_file(src / "good.txt", text_of(100));
  write_file(src / "unicode.txt", "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E z\n");
  write_file(src / "sub" / "inner.txt", text_of(50, 'q'));
  write_file(src / "empty.txt", "");
  // Not text: a fortune-like .dat index (NUL bytes), NUL in ASCII, Latin-1, an overlong '/',
  // a surrogate, a code point above U+10FFFF, a sequence cut at the end, a lone continuation.
  write_file(src / "good.dat", std::string("\0\0\0\x02\0\0\0\x2a", 8));
  write_file(src / "nul.txt", std::string("abc\0def", 7));
  write_file(src / "latin1.txt", "caf\xE9");
  write_file(src / "overlong.txt", "a\xC0\xAF");
  write_file(src / "surrogate.txt", "a\xED\xA0\x80");
  write_file(src / "too_high.txt", "a\xF4\x90\x80\x80");
  write_file(src / "cut.txt", "abc\xE2\x82");
  write_file(src / "continuation.txt", "abc\x80 def");
  fs::create_symlink("good.txt", src / "good.u8");
  fs::create_symlink("sub", src / "sublink");  // a folder link: its files are not read twice
  fs::create_symlink("missing", src / "dangling");
  const auto corpus = vt::build_text_corpus(src, dir / "out", 0);
  ASSERT_EQ(corpus.files.size(), 3u);
  EXPECT_EQ(corpus.files[0].path, (src / "good.txt").string());
  EXPECT_EQ(corpus.files[1].path, (src / "sub" / "inner.txt").string());
  EXPECT_EQ(corpus.files[2].path, (src / "unicode.txt").string());
  EXPECT_EQ(corpus.skipped_binary, 8);
  EXPECT_EQ(corpus.skipped_links, 3);
  EXPECT_EQ(corpus.bytes,
            100 + 50 + static_cast<std::int64_t>(read_file(src / "unicode.txt").size()));
  EXPECT_EQ(corpus.description(src.string()),
            fmt::format("{} bytes in 3 files of {} (skipped 8 files that are not UTF-8 text and 3 "
                        "symbolic links)",
                        corpus.bytes, src.string()));
}

TEST(TextCorpus, Utf8IsCheckedAcrossReadBlocks) {
  TempDir dir;
  const auto src = dir / "src";
  const std::size_t block = std::size_t{1} << 20;
  // A 3-byte euro sign across the first 1 MiB boundary: text.
  auto straddling = text_of(block - 1) + "\xE2\x82\xAC" + text_of(100);
  write_file(src / "a_straddling.txt", straddling);
  // A bad byte in the second block only: not text.
  write_file(src / "b_late_error.txt", text_of(block + 10) + "\xFF" + text_of(10));
  // A NUL in the second block only: not text.
  write_file(src / "c_late_nul.txt", text_of(block + 10) + std::string(1, '\0'));
  const auto corpus = vt::build_text_corpus(src, dir / "out", 0);
  ASSERT_EQ(corpus.files.size(), 1u);
  EXPECT_EQ(corpus.files[0].bytes, static_cast<std::int64_t>(straddling.size()));
  EXPECT_EQ(corpus.skipped_binary, 2);
  EXPECT_EQ(read_file(corpus.tokens), straddling);
}

TEST(TextCorpus, AnEarlierBuildInsideTheSourceIsNotReadBack) {
  TempDir dir;
  const auto src = dir / "src";
  write_file(src / "a.txt", text_of(500));
  const auto first = vt::build_text_corpus(src, src / "corpus", 0);
  const auto second = vt::build_text_corpus(src, src / "corpus", 0);
  EXPECT_EQ(second.files.size(), 1u);
  EXPECT_EQ(second.bytes, 500);
  EXPECT_EQ(second.to_json(), first.to_json());
}

// ---- refusals ----

TEST(TextCorpus, SourceWithoutTextIsRefusedSayingWhatWasSkipped) {
  TempDir dir;
  EXPECT_NE(error_of<vigil::InputError>([&] {
              vt::build_text_corpus(dir / "nowhere", dir / "out", 0);
            }).find((dir / "nowhere").string() + ": no such file or folder"),
            std::string::npos);

  fs::create_directories(dir / "empty");
  EXPECT_NE(error_of<vigil::InputError>([&] {
              vt::build_text_corpus(dir / "empty", dir / "out", 0);
            }).find("no UTF-8 text file"),
            std::string::npos);

  const auto src = dir / "src";
  write_file(src / "x.dat", std::string("\0\x01", 2));
  write_file(src / "blank", "");
  fs::create_symlink("x.dat", src / "x.u8");
  const auto message =
      error_of<vigil::InputError>([&] { vt::build_text_corpus(src, dir / "out", 0); });
  EXPECT_NE(message.find(src.string() + ": no UTF-8 text file"), std::string::npos) << message;
  EXPECT_NE(message.find("skipped 1 file that is not UTF-8 text and 1 symbolic link"),
            std::string::npos)
      << message;
  EXPECT_FALSE(fs::exists(dir / "out" / "tokens.u8"));
  EXPECT_THROW(vt::build_text_corpus(src, dir / "out", -1), vigil::OptionError);
}

TEST(TextCorpus, CorpusTooSmallForTheContextIsRefusedAndTheEarlierBuildKept) {
  TempDir dir;
  write_file(dir / "one" / "book.txt", text_of(1000));
  // Validation and test have 50 bytes each: a window of 50 fits, one of 51 does not.
  const auto fits = vt::build_text_corpus(dir / "one", dir / "out", 50);
  const auto message =
      error_of<vigil::InputError>([&] { vt::build_text_corpus(dir / "one", dir / "out", 51); });
  EXPECT_NE(message.find((dir / "one").string() + ": the corpus is too small"), std::string::npos)
      << message;
  EXPECT_NE(message.find("needs at least 51 bytes of one file's validation split, but the "
                         "longest has 50 bytes"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("a file of 1020 bytes or more would do"), std::string::npos) << message;
  // The refused build left the earlier one as it was, and no temporary file.
  EXPECT_EQ(vt::open_text_corpus(dir / "out").to_json(), fits.to_json());
  for (const auto& entry : fs::directory_iterator(dir / "out"))
    EXPECT_FALSE(vigil::is_temporary_name(entry.path().filename().string())) << entry.path();

  // Ten files hold 50 test bytes in all, but a window is cut from one file's split only.
  for (int i = 0; i < 10; ++i) write_file(dir / "many" / fmt::format("{}.txt", i), text_of(100));
  const auto many =
      error_of<vigil::InputError>([&] { vt::build_text_corpus(dir / "many", dir / "out2", 10); });
  EXPECT_NE(many.find("the longest has 5 bytes (50 bytes in all over 10 files)"), std::string::npos)
      << many;

  // Training is checked too: a 16-byte file is all training, too short for a window of 17.
  write_file(dir / "tiny" / "t.txt", text_of(16));
  const auto tiny =
      error_of<vigil::InputError>([&] { vt::build_text_corpus(dir / "tiny", dir / "out3", 17); });
  EXPECT_NE(tiny.find("training split, but the longest has 16 bytes"), std::string::npos) << tiny;
}

// ---- corpus.json and open_text_corpus ----

TEST(TextCorpus, CorpusJsonRoundTripsAndOpens) {
  TempDir dir;
  write_file(dir / "src" / "a.txt", text_of(300));
  write_file(dir / "src" / "b" / "c.txt", text_of(700, 'k'));
  write_file(dir / "src" / "d.dat", std::string("\0", 1));
  fs::create_symlink("a.txt", dir / "src" / "a.u8");
  const auto built = vt::build_text_corpus(dir / "src", dir / "out", 0);
  const auto json = nlohmann::json::parse(read_file(dir / "out" / "corpus.json"));
  EXPECT_EQ(json, built.to_json());
  EXPECT_EQ(json["tokens"], "tokens.u8");
  EXPECT_EQ(json["files"][1]["test"], nlohmann::json::array({300 + 700 - 35, 1000}));

  const auto back = vt::TextCorpus::from_json(json, dir / "out");
  EXPECT_EQ(back.tokens, built.tokens);
  EXPECT_EQ(back.bytes, 1000);
  EXPECT_EQ(back.xxh3, built.xxh3);
  EXPECT_EQ(back.skipped_binary, 1);
  EXPECT_EQ(back.skipped_links, 1);
  EXPECT_EQ(back.test_segments(), built.test_segments());
  EXPECT_EQ(back.to_json(), json);
  EXPECT_EQ(vt::open_text_corpus(dir / "out").to_json(), json);
}

TEST(TextCorpus, FromJsonRefusesAWrongShape) {
  TempDir dir;
  write_file(dir / "src" / "a.txt", text_of(300));
  write_file(dir / "src" / "b.txt", text_of(200));
  const auto good = vt::build_text_corpus(dir / "src", dir / "out", 0).to_json();
  const auto refused = [&](const std::function<void(nlohmann::json&)>& change) {
    auto json = good;
    change(json);
    return error_of<vigil::InputError>([&] { vt::TextCorpus::from_json(json, dir / "out"); });
  };
  EXPECT_NE(refused([](auto& j) { j.erase("files"); }).find("\"files\" is missing"),
            std::string::npos);
  EXPECT_NE(refused([](auto& j) { j["bytes"] = "500"; }).find("\"bytes\" must be a whole number"),
            std::string::npos);
  EXPECT_NE(refused([](auto& j) { j["tokens"] = "../elsewhere.u8"; }).find("must name a file"),
            std::string::npos);
  EXPECT_NE(refused([](auto& j) { j["xxh3"] = "ABC"; }).find("16 lowercase hex"),
            std::string::npos);
  EXPECT_NE(refused([](auto& j) {
              j["files"][0]["test"] = nlohmann::json::array({1});
            }).find("\"files[0].test\" must be [begin, end]"),
            std::string::npos);
  EXPECT_NE(
      refused([](auto& j) { j["files"][1]["validation"][1] = 400; }).find("do not cover its bytes"),
      std::string::npos);
  EXPECT_NE(refused([](auto& j) { j["files"][1]["begin"] = 301; }).find("expected byte 300"),
            std::string::npos);
  EXPECT_NE(refused([](auto& j) { j["bytes"] = 501; }).find("the files hold 500 bytes"),
            std::string::npos);
  const auto message = refused([](auto& j) { j["files"][0].erase("path"); });
  EXPECT_NE(message.find((dir / "out" / "corpus.json").string() + ": \"files[0].path\" is missing"),
            std::string::npos)
      << message;
}

TEST(TextCorpus, OpenDetectsAChangedOrMissingTokenFile) {
  TempDir dir;
  const auto text = text_of(1000);
  write_file(dir / "a.txt", text);
  const auto out = dir / "out";
  vt::build_text_corpus(dir / "a.txt", out, 0);
  const auto tokens = (out / "tokens.u8").string();

  auto flipped = text;
  flipped[500] = static_cast<char>(flipped[500] ^ 1);
  write_file(out / "tokens.u8", flipped);
  auto message = error_of<vigil::InputError>([&] { vt::open_text_corpus(out); });
  EXPECT_NE(message.find(tokens + ": its XXH3-64 is"), std::string::npos) << message;
  EXPECT_NE(message.find("changed since the corpus was built"), std::string::npos) << message;

  write_file(out / "tokens.u8", text.substr(0, 999));
  message = error_of<vigil::InputError>([&] { vt::open_text_corpus(out); });
  EXPECT_NE(message.find(tokens + ": has 999 bytes but"), std::string::npos) << message;
  EXPECT_NE(message.find("records 1000"), std::string::npos) << message;

  fs::remove(out / "tokens.u8");
  message = error_of<vigil::InputError>([&] { vt::open_text_corpus(out); });
  EXPECT_NE(message.find(tokens + ": no such file"), std::string::npos) << message;

  write_file(out / "tokens.u8", text);
  EXPECT_NO_THROW(vt::open_text_corpus(out));  // the original bytes pass again

  write_file(out / "corpus.json", "{\"tokens\":");
  EXPECT_NE(error_of<vigil::InputError>([&] { vt::open_text_corpus(out); }).find("not valid JSON"),
            std::string::npos);
  fs::remove(out / "corpus.json");
  EXPECT_NE(error_of<vigil::InputError>([&] {
              vt::open_text_corpus(out);
            }).find("build the corpus first"),
            std::string::npos);
}

// ---- the baseline and the windows ----

TEST(TextCorpus, UnigramTestLossMatchesAHandComputation) {
  TempDir dir;
  // a.txt, 40 bytes: trains on 27 'a' and 9 'b', validates on "cc", tests on "ab".
  write_file(dir / "src" / "a.txt", std::string(27, 'a') + std::string(9, 'b') + "cc" + "ab");
  // b.txt, 20 bytes: trains on 18 'b', validates on "c", tests on "z" (never seen in training).
  write_file(dir / "src" / "b.txt", std::string(18, 'b') + "c" + "z");
  const auto corpus = vt::build_text_corpus(dir / "src", dir / "out", 0);
  // Training: 27 'a', 27 'b' of 54 bytes; add-one over 256 values: p(a) = p(b) = 28 / 310,
  // p(z) = 1 / 310. Test bytes: 'a', 'b', 'z'.
  const double expected = (2 * -std::log(28.0 / 310.0) - std::log(1.0 / 310.0)) / 3.0;
  EXPECT_NEAR(corpus.unigram_test_loss(), expected, 1e-12);

  write_file(dir / "short" / "s.txt", "too short");
  const auto short_corpus = vt::build_text_corpus(dir / "short", dir / "out2", 0);
  EXPECT_NE(error_of<vigil::InputError>([&] {
              (void)short_corpus.unigram_test_loss();
            }).find("test split is empty"),
            std::string::npos);
}

TEST(TextCorpus, TokenFileFeedsTokenWindowsThatNeverCrossASplit) {
  TempDir dir;
  // Each file one letter, so a window reaching into another file would show another letter.
  const std::vector<std::int64_t> sizes{400, 1000, 2000, 30};
  for (std::size_t i = 0; i < sizes.size(); ++i)
    write_file(dir / "src" / fmt::format("{}.txt", i),
               std::string(static_cast<std::size_t>(sizes[i]), static_cast<char>('a' + i)));
  const auto corpus = vt::build_text_corpus(dir / "src", dir / "out", 9);
  const std::int64_t context = 8;
  for (auto mode : {vt::WindowMode::Sequential, vt::WindowMode::Random}) {
    vt::TokenWindowSource source(vt::TokenWindowOptions{}
                                     .with_path(corpus.tokens)
                                     .with_dtype(vt::TokenDType::U8)
                                     .with_context(context)
                                     .with_batch_size(4)
                                     .with_segments(corpus.test_segments())
                                     .with_mode(mode)
                                     .with_batches_per_epoch(20));
    ASSERT_GT(source.num_windows(), 0);
    const auto test = corpus.test_segments();
    for (std::int64_t i = 0; i < source.num_windows(); ++i) {
      const auto start = source.window_start(i);
      const bool inside = std::any_of(test.begin(), test.end(), [&](const vt::TokenSegment& s) {
        return s.begin <= start && start + context + 1 <= s.end;
      });
      EXPECT_TRUE(inside) << "window at " << start;
    }
    source.set_epoch(0);
    int batches = 0;
    while (auto batch = source.next()) {
      ++batches;
      for (std::int64_t b = 0; b < batch->x.size(0); ++b) {
        const auto letter = batch->x[b][0].item<std::int64_t>();
        EXPECT_TRUE(batch->x[b].eq(letter).all().item<bool>());
        EXPECT_TRUE(batch->y[b].eq(letter).all().item<bool>());
      }
    }
    EXPECT_GT(batches, 0);
  }
  // The 30-byte file has a 1-byte test split: too short for a window, so it is skipped.
  EXPECT_EQ(corpus.files[3].test.end - corpus.files[3].test.begin, 1);
}

TEST(TextCorpus, DescriptionUsesDecimalUnitsWithOneDecimal) {
  vt::TextCorpus corpus;
  corpus.files.resize(1);
  corpus.bytes = 999;
  EXPECT_EQ(corpus.description("x"), "999 bytes in 1 file of x");
  corpus.bytes = 1000;
  corpus.skipped_links = 1;
  EXPECT_EQ(corpus.description("x"), "1.0 kB in 1 file of x (skipped 1 symbolic link)");
  corpus.bytes = 2'643'146;
  corpus.files.resize(43);
  corpus.skipped_binary = 1;
  corpus.skipped_links = 0;
  EXPECT_EQ(corpus.description("f"),
            "2.6 MB in 43 files of f (skipped 1 file that is not UTF-8 text)");
  corpus.bytes = 12'345'678'901;
  EXPECT_EQ(corpus.description("f").substr(0, 7), "12.3 GB");
}

// ---- the real thing ----

TEST(TextCorpus, DebianFortunesBuildWithLinksAndIndexesSkipped) {
  const fs::path fortunes = "/usr/share/games/fortunes";
  if (!fs::is_directory(fortunes)) GTEST_SKIP() << fortunes << " is not installed";
  TempDir dir;
  const auto corpus = vt::build_text_corpus(fortunes, dir / "out", 257);
  EXPECT_GT(corpus.files.size(), 0u);
  EXPECT_GT(corpus.skipped_binary, 0);  // the .dat indexes
  EXPECT_GT(corpus.skipped_links, 0);   // the .u8 links
  for (const auto& f : corpus.files) {
    EXPECT_FALSE(f.path.ends_with(".dat")) << f.path;
    EXPECT_FALSE(f.path.ends_with(".u8")) << f.path;
  }
  EXPECT_GT(length(corpus.train_segments()), 0);
  EXPECT_GT(length(corpus.validation_segments()), 0);
  EXPECT_GT(length(corpus.test_segments()), 0);
  const auto loss = corpus.unigram_test_loss();
  EXPECT_GT(loss, 0.0);
  EXPECT_LT(loss, std::log(256.0));  // better than uniform bytes: English text is far from it
  EXPECT_EQ(vt::open_text_corpus(dir / "out").xxh3, corpus.xxh3);
  std::cout << corpus.description(fortunes.string()) << "; unigram test loss " << loss
            << " nats/byte\n";
}
