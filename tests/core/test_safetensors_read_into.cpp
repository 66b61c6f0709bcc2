// SafetensorsFile::read_into: one pass from the file into the caller's memory, every checksum
// checked on the way; a flipped byte anywhere is found, with and without the reading thread.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::error_of;
using vigil::test::flip_byte;
using vigil::test::TempDir;

namespace {

// Tensors across the reader's 4 MiB blocks: one of 10 MiB (three blocks), small ones, an empty
// one, each filled with its own pattern.
struct Sample {
  std::vector<std::string> names = {"big", "small", "empty", "tail"};
  std::vector<std::vector<std::byte>> data;
  std::vector<TensorView> views;

  Sample() {
    const std::vector<std::size_t> sizes = {std::size_t{10} << 20, 4096, 0, 12};
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      std::vector<std::byte> d(sizes[i]);
      for (std::size_t k = 0; k < d.size(); ++k)
        d[k] = static_cast<std::byte>((k * 131 + i * 17 + k / 4099) & 0xff);
      data.push_back(std::move(d));
    }
    for (std::size_t i = 0; i < sizes.size(); ++i)
      views.push_back({names[i], DType::U8, {sizes[i]}, data[i]});
  }
};

// Byte offset in the file of tensor `t`'s middle byte.
std::uint64_t middle_of(const SafetensorsFile& file, const TensorInfo& t) {
  const auto data_start = file.file_size() - file.tensors().back().end;
  return data_start + t.begin + t.size() / 2;
}

struct Destinations {
  std::vector<std::vector<std::byte>> memory;
  std::vector<TensorDestination> list;

  explicit Destinations(const SafetensorsFile& file, const std::vector<std::string>& names) {
    memory.reserve(names.size());
    for (const auto& n : names) memory.emplace_back(file.find(n)->size(), std::byte{0xEE});
    for (std::size_t i = 0; i < names.size(); ++i)
      list.push_back({file.find(names[i])->name, memory[i]});
  }
};

const auto kUnchecked = SafetensorsReadOptions{}.with_verify_checksums(false);

class ReadInto : public ::testing::TestWithParam<bool> {
 protected:
  ReadIntoOptions options() const { return ReadIntoOptions{}.with_parallel(GetParam()); }
};

}  // namespace

TEST_P(ReadInto, CopiesEveryTensorExactly) {
  TempDir dir;
  Sample s;
  save_safetensors(dir / "t.safetensors", s.views);
  auto file = SafetensorsFile::open(dir / "t.safetensors", kUnchecked);
  EXPECT_FALSE(file.checksums_verified());
  Destinations d(file, s.names);
  file.read_into(d.list, options());
  for (std::size_t i = 0; i < s.names.size(); ++i) EXPECT_EQ(d.memory[i], s.data[i]) << s.names[i];
  EXPECT_TRUE(file.checksums_verified());
}

TEST_P(ReadInto, FindsAFlippedByteInEveryTensor) {
  Sample s;
  for (const auto& name : {"big", "small", "tail"}) {
    TempDir dir;
    const auto path = dir / "t.safetensors";
    save_safetensors(path, s.views);
    {
      auto file = SafetensorsFile::open(path, kUnchecked);
      flip_byte(path, middle_of(file, *file.find(name)));
    }
    auto file = SafetensorsFile::open(path, kUnchecked);
    // Only one destination: the tensors without one are checked all the same.
    Destinations d(file, {"small"});
    try {
      file.read_into(d.list, options());
      ADD_FAILURE() << "no error for a flipped byte in " << name;
    } catch (const FormatError& e) {
      EXPECT_EQ(e.kind(), FormatErrorKind::ChecksumMismatch);
      EXPECT_NE(std::string(e.what()).find(std::string("tensor \"") + name + "\" is corrupt"),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(file.checksums_verified());
  }
}

TEST_P(ReadInto, TheWholeFileHashCoversTheHeaderToo) {
  TempDir dir;
  Sample s;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, s.views, {{"note", "written by the test"}});
  const auto image = vigil::test::read_file(path);
  const auto good = xxh3_64(std::as_bytes(std::span(image)));
  {
    auto file = SafetensorsFile::open(path, kUnchecked);
    Destinations d(file, s.names);
    file.read_into(d.list, options().with_file_xxh3(good));
    EXPECT_EQ(d.memory[0], s.data[0]);
  }
  // A letter of the metadata: no tensor checksum covers it, the file's hash does.
  flip_byte(path, image.find("written by"));
  auto file = SafetensorsFile::open(path, kUnchecked);
  Destinations d(file, s.names);
  file.read_into(d.list, options());  // per-tensor checksums: all intact
  const auto msg =
      error_of<FormatError>([&] { file.read_into(d.list, options().with_file_xxh3(good)); });
  EXPECT_NE(msg.find("the file is corrupt"), std::string::npos) << msg;
  // And a data byte, with the file's hash.
  TempDir dir2;
  const auto path2 = dir2 / "t.safetensors";
  save_safetensors(path2, s.views);
  const auto image2 = vigil::test::read_file(path2);
  const auto good2 = xxh3_64(std::as_bytes(std::span(image2)));
  {
    auto f = SafetensorsFile::open(path2, kUnchecked);
    flip_byte(path2, middle_of(f, *f.find("big")));
  }
  auto f2 = SafetensorsFile::open(path2, kUnchecked);
  Destinations d2(f2, {"big"});
  EXPECT_NE(error_of<FormatError>([&] {
              f2.read_into(d2.list, options().with_file_xxh3(good2));
            }).find("the file is corrupt"),
            std::string::npos);
}

TEST_P(ReadInto, ReadsFilesWithoutChecksumsAndImages) {
  TempDir dir;
  Sample s;
  const auto path = dir / "plain.safetensors";
  save_safetensors(path, s.views, {}, SafetensorsWriteOptions{}.with_checksums(false));
  auto file = SafetensorsFile::open(path);
  Destinations d(file, {"big", "tail"});
  file.read_into(d.list, options());
  EXPECT_EQ(d.memory[0], s.data[0]);
  EXPECT_EQ(d.memory[1], s.data[3]);

  const auto image = vigil::test::read_file(path);
  auto mem = SafetensorsFile::from_bytes(std::as_bytes(std::span(image)));
  Destinations m(mem, s.names);
  mem.read_into(m.list, options());
  EXPECT_EQ(m.memory[0], s.data[0]);
}

TEST_P(ReadInto, RefusesBadDestinationsBeforeReading) {
  TempDir dir;
  Sample s;
  save_safetensors(dir / "t.safetensors", s.views);
  auto file = SafetensorsFile::open(dir / "t.safetensors", kUnchecked);
  std::vector<std::byte> small(4096, std::byte{0xEE});
  std::vector<std::byte> wrong(10, std::byte{0xEE});
  std::vector<TensorDestination> unknown = {{"small", small}, {"nope", wrong}};
  EXPECT_NE(error_of([&] { file.read_into(unknown, options()); }).find("no tensor named \"nope\""),
            std::string::npos);
  std::vector<TensorDestination> twice = {{"small", small}, {"small", small}};
  EXPECT_NE(
      error_of<OptionError>([&] { file.read_into(twice, options()); }).find("two destinations"),
      std::string::npos);
  std::vector<TensorDestination> sized = {{"small", small}, {"tail", wrong}};
  EXPECT_NE(error_of<OptionError>([&] {
              file.read_into(sized, options());
            }).find("has 12 bytes but its destination holds 10"),
            std::string::npos);
  EXPECT_EQ(small, std::vector<std::byte>(4096, std::byte{0xEE}));
}

TEST_P(ReadInto, AFileCutShortAfterOpeningIsAnIoError) {
  TempDir dir;
  Sample s;
  const auto path = dir / "t.safetensors";
  save_safetensors(path, s.views);
  auto file = SafetensorsFile::open(path, kUnchecked);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(file.file_size() / 2)), 0);
  Destinations d(file, {"big"});
  EXPECT_NE(error_of<IoError>([&] { file.read_into(d.list, options()); }).find("got shorter"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Threads, ReadInto, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "Parallel" : "Serial"; });
