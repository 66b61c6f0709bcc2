// Every way a tensor file can be malformed, each with a crafted file and its own error kind;
// several files are the reference implementation's own test inputs (safetensors/src/tensor.rs).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::TempDir;

namespace {

std::span<const std::byte> as_span(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

// A file with this header (length computed) followed by `data_bytes` zero bytes.
std::string craft(const std::string& header, std::size_t data_bytes = 0) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// The error a file raises, or a failure if it opens.
FormatError error_of(const std::string& file, SafetensorsReadOptions options = {}) {
  try {
    (void)SafetensorsFile::from_bytes(as_span(file), options);
  } catch (const FormatError& e) {
    return e;
  }
  ADD_FAILURE() << "the file was accepted";
  return FormatError(FormatErrorKind::FileTooSmall, "");
}

#define EXPECT_KIND(file, kind_)                                     \
  do {                                                               \
    auto e_ = error_of(file);                                        \
    EXPECT_EQ(e_.kind(), FormatErrorKind::kind_) << e_.what();       \
    EXPECT_EQ(std::string(e_.what()).find('\n'), std::string::npos); \
  } while (0)

std::string message_of(const std::string& file) {
  return error_of(file).what();
}

const std::string kI32 = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";

// A valid file written by vigil (with checksums) holding two small tensors.
std::string written_file() {
  std::vector<std::byte> a(16), b(6);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::byte(i);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::byte(100 + i);
  std::vector<TensorView> tensors = {{"a", DType::F32, {4}, a}, {"b", DType::U8, {2, 3}, b}};
  TempDir dir;
  save_safetensors(dir / "w.safetensors", tensors);
  return vigil::test::read_file(dir / "w.safetensors");
}

}  // namespace

TEST(SafetensorsValidation, FileTooSmall) {
  EXPECT_KIND("", FileTooSmall);  // tensor.rs test_header_too_small
  EXPECT_KIND(std::string(7, '\0'), FileTooSmall);
  EXPECT_NE(message_of("abc").find("3 bytes"), std::string::npos);
}

TEST(SafetensorsValidation, HeaderTooLarge) {
  // tensor.rs test_header_too_large.
  EXPECT_KIND(std::string("<\0\0\0\0\xff\xff\xff", 8) + kI32 + std::string(16, '\0'),
              HeaderTooLarge);
  EXPECT_KIND(le64(100'000'001) + "{}", HeaderTooLarge);
  EXPECT_KIND(le64(~std::uint64_t{0}) + "{}", HeaderTooLarge);
  EXPECT_NE(message_of(le64(100'000'001)).find("100000001"), std::string::npos);
}

TEST(SafetensorsValidation, HeaderOutOfBounds) {
  EXPECT_KIND(std::string("<\0\0\0\0\0\0\0", 8), HeaderOutOfBounds);  // test_invalid_header_length
  EXPECT_KIND(le64(100'000'000) + "{}", HeaderOutOfBounds);
  auto msg = message_of(le64(10) + "{}");
  EXPECT_NE(msg.find("10 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("only 2"), std::string::npos) << msg;
}

TEST(SafetensorsValidation, InvalidUtf8) {
  EXPECT_KIND(std::string("\x01\0\0\0\0\0\0\0\xff", 9),
              InvalidUtf8);                                         // test_invalid_header_non_utf8
  EXPECT_KIND(craft("{\"\xC0\xAF\":1}"), InvalidUtf8);              // overlong '/'
  EXPECT_KIND(craft("{\"\xED\xA0\x80\":1}"), InvalidUtf8);          // encoded surrogate
  EXPECT_KIND(craft("{\"\xF4\x90\x80\x80\":1}"), InvalidUtf8);      // above U+10FFFF
  EXPECT_KIND(craft("{\"abcdefghijkl\xE2\x82\":1}"), InvalidUtf8);  // truncated sequence
  // Valid multi-byte names are fine.
  std::string ok = craft(R"({"größe€😀":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_NO_THROW((void)SafetensorsFile::from_bytes(as_span(ok)).view("größe€😀"));
}

TEST(SafetensorsValidation, InvalidJson) {
  EXPECT_KIND(std::string("\x01\0\0\0\0\0\0\0{", 9), InvalidJson);  // test_invalid_header_not_json
  EXPECT_KIND(craft("{\"a\":{\"dtype\":\"U8\",}}"), InvalidJson);
  EXPECT_KIND(craft("{} x"), InvalidJson);
  EXPECT_KIND(craft("{}{}"), InvalidJson);
  EXPECT_KIND(craft("{\"\\ud800\":1}"), InvalidJson);  // lone surrogate escape
  EXPECT_KIND(craft(""), InvalidJson);
  EXPECT_KIND(craft("        "), InvalidJson);
  // The whole header range counts: nothing hides behind a NUL, and no byte-order mark.
  EXPECT_KIND(craft(std::string("{}\0", 3)), InvalidJson);
  EXPECT_KIND(craft(std::string("{}   \0  ", 8)), InvalidJson);
  EXPECT_KIND(
      craft(std::string("{}\0{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 56),
            1),
      InvalidJson);
  EXPECT_KIND(craft(std::string("{\"a\0\":1}", 8)), InvalidJson);
  EXPECT_KIND(craft("\xEF\xBB\xBF{}"), InvalidJson);
  EXPECT_NO_THROW((void)SafetensorsFile::from_bytes(as_span(craft("{}    "))));  // trailing spaces
}

TEST(SafetensorsValidation, NotAnObject) {
  EXPECT_KIND(craft("[]"), NotAnObject);
  EXPECT_KIND(craft("\"x\""), NotAnObject);
  EXPECT_KIND(craft("null"), NotAnObject);
  EXPECT_KIND(craft("{\"t\":5}"), NotAnObject);
  EXPECT_KIND(craft("{\"t\":[0,1]}"), NotAnObject);
  EXPECT_NE(message_of(craft("{\"weight\":5}")).find("\"weight\""), std::string::npos);
}

TEST(SafetensorsValidation, InvalidMetadata) {
  EXPECT_KIND(craft(R"({"__metadata__":{"a":1}})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":{"a":{"b":"c"}}})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":[]})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":"x"})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":{"a":"1","a":"2"}})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":{},"__metadata__":{}})"), InvalidMetadata);
  EXPECT_KIND(craft(R"({"__metadata__":{"vigil.format":"2"}})"), InvalidMetadata);
  EXPECT_NO_THROW((void)SafetensorsFile::from_bytes(
      as_span(craft(R"({"__metadata__":{"vigil.format":"1"}})"))));
  // The reference reads a null __metadata__ as "none".
  auto f = SafetensorsFile::from_bytes(as_span(craft(R"({"__metadata__":null})")));
  EXPECT_TRUE(f.metadata().empty());
}

TEST(SafetensorsValidation, InvalidTensorEntry) {
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1]}})", 1), InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", 1), InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","data_offsets":[0,1]}})", 1), InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(
      craft(R"({"t":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}})", 1),
      InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 1),
              InvalidTensorEntry);
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1]}})", 1),
              InvalidTensorEntry);
  auto msg = message_of(craft(R"({"layer.w":{"dtype":"U8","shape":[1]}})", 1));
  EXPECT_NE(msg.find("\"layer.w\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("data_offsets"), std::string::npos) << msg;
}

TEST(SafetensorsValidation, UnknownAndUnsupportedDType) {
  EXPECT_KIND(craft(R"({"t":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4), UnknownDType);
  EXPECT_KIND(craft(R"({"t":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4), UnknownDType);
  EXPECT_KIND(craft(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1),
              UnsupportedDType);
  EXPECT_KIND(craft(R"({"t":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[0,1]}})", 1),
              UnsupportedDType);
  EXPECT_NE(message_of(craft(R"({"t":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}})", 3))
                .find("F6_E2M3"),
            std::string::npos);
}

TEST(SafetensorsValidation, DuplicateName) {
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                    R"("t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                    2),
              DuplicateName);
}

TEST(SafetensorsValidation, InvalidOffsets) {
  // tensor.rs test_json_attack: ten tensors all claiming [0, 16].
  std::string attack = "{";
  for (int i = 0; i < 10; ++i) {
    attack.append(i ? "," : "").append("\"weight_").append(std::to_string(i));
    attack.append(R"(":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})");
  }
  attack += "}";
  EXPECT_KIND(craft(attack, 16), InvalidOffsets);
  // Not starting at 0.
  EXPECT_KIND(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2), InvalidOffsets);
  // A gap between two tensors.
  EXPECT_KIND(craft(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                    R"("b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                    3),
              InvalidOffsets);
  // End before begin.
  EXPECT_KIND(craft(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
                    R"("b":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})"),
              SizeMismatch);
  EXPECT_KIND(craft(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                    R"("b":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})",
                    1),
              InvalidOffsets);
  auto msg = message_of(craft(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}})", 6));
  EXPECT_NE(msg.find("\"t\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5, 6]"), std::string::npos) << msg;
  // Any JSON order is fine as long as the offsets tile the data (the reference sorts them).
  auto f = SafetensorsFile::from_bytes(
      as_span(craft(R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
                    R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                    2)));
  EXPECT_EQ(f.tensors()[0].name, "a");
}

TEST(SafetensorsValidation, ElementCountOverflow) {
  // tensor.rs test_validation_overflow, both cases.
  EXPECT_KIND(
      craft(R"({"test":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}})",
            16),
      ElementCountOverflow);
  EXPECT_KIND(
      craft(R"({"test":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}})",
            16),
      ElementCountOverflow);
}

TEST(SafetensorsValidation, SizeMismatch) {
  // tensor.rs test_invalid_info.
  EXPECT_KIND(std::string("<\0\0\0\0\0\0\0", 8) +
                  R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0, 4]}})",
              SizeMismatch);
  auto msg = message_of(craft(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}})", 4));
  EXPECT_NE(msg.find("16 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4 bytes"), std::string::npos) << msg;
}

TEST(SafetensorsValidation, TrailingBytes) {
  // tensor.rs test_metadata_incomplete_buffer: extra bytes, then missing bytes.
  EXPECT_KIND(std::string("<\0\0\0\0\0\0\0", 8) + kI32 + std::string(16, '\0') +
                  "extra_bogus_data_for_polyglot_file",
              TrailingBytes);
  EXPECT_KIND(std::string("<\0\0\0\0\0\0\0", 8) + kI32 + std::string(14, '\0'), TrailingBytes);
  EXPECT_KIND(craft("{}", 1), TrailingBytes);
}

TEST(SafetensorsValidation, ChecksumMismatchOnEveryFlippedDataByte) {
  auto good = written_file();
  auto f = SafetensorsFile::from_bytes(as_span(good));
  ASSERT_TRUE(f.has_checksums());
  std::size_t data_start = good.size() - 22;
  for (std::size_t pos = data_start; pos < good.size(); ++pos) {
    auto bad = good;
    bad[pos] ^= 0x01;
    auto e = error_of(bad);
    ASSERT_EQ(e.kind(), FormatErrorKind::ChecksumMismatch) << e.what();
    std::string expect_name = pos < data_start + 16 ? "\"a\"" : "\"b\"";
    EXPECT_NE(std::string(e.what()).find(expect_name), std::string::npos) << e.what();
    // Opting out of the check opens the file; an explicit check then finds the damage.
    auto lazy = SafetensorsFile::from_bytes(as_span(bad),
                                            SafetensorsReadOptions{}.with_verify_checksums(false));
    EXPECT_THROW(lazy.verify_checksums(), FormatError);
  }
}

TEST(SafetensorsValidation, InvalidChecksum) {
  auto good = written_file();
  auto replace = [&](const std::string& from, const std::string& to) {
    auto s = good;
    auto at = s.find(from);
    EXPECT_NE(at, std::string::npos);
    s.replace(at, from.size(), to);  // same length keeps the header length right
    return s;
  };
  // A checksum naming no tensor.
  EXPECT_KIND(replace("\"vigil.xxh3:b\"", "\"vigil.xxh3:c\""), InvalidChecksum);
  // Malformed hex (uppercase, non-hex).
  auto meta = SafetensorsFile::from_bytes(as_span(good)).metadata();
  auto hex = meta.at("vigil.xxh3:a");
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  if (upper != hex) EXPECT_KIND(replace(hex, upper), InvalidChecksum);
  EXPECT_KIND(replace(hex, "zz" + hex.substr(2)), InvalidChecksum);
  // A tensor without a checksum while the others have one (the key renamed to a non-vigil one).
  auto s = replace("\"vigil.xxh3:b\"", "\"vigil.xxh4:b\"");
  EXPECT_KIND(s, InvalidChecksum);
}

TEST(SafetensorsValidation, OpenReportsUnreadablePathsAsIoError) {
  TempDir dir;
  EXPECT_THROW((void)SafetensorsFile::open(dir / "missing.safetensors"), IoError);
  try {
    (void)SafetensorsFile::open(dir.path());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos);
  }
  // A FIFO must not hang the reader.
  auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW((void)SafetensorsFile::open(fifo), IoError);
  // An empty and a truncated real file are format errors.
  vigil::test::write_file(dir / "empty", "");
  EXPECT_THROW((void)SafetensorsFile::open(dir / "empty"), FormatError);
  auto good = written_file();
  vigil::test::write_file(dir / "cut", good.substr(0, good.size() - 1));
  try {
    (void)SafetensorsFile::open(dir / "cut");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(e.kind(), FormatErrorKind::TrailingBytes);
    EXPECT_NE(std::string(e.what()).find((dir / "cut").string()), std::string::npos);
  }
}

TEST(SafetensorsValidation, MissingTensorLookupNamesWhatExists) {
  auto good = written_file();
  auto f = SafetensorsFile::from_bytes(as_span(good));
  EXPECT_EQ(f.find("zzz"), nullptr);
  try {
    (void)f.view("zzz");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("\"zzz\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"a\", \"b\""), std::string::npos) << msg;
  }
  std::vector<std::byte> small(3);
  EXPECT_THROW(f.copy_to("a", small), OptionError);
}

TEST(SafetensorsWriter, RejectsInvalidInputWithoutCreatingAFile) {
  TempDir dir;
  std::vector<std::byte> four(4);
  auto path = dir / "x.safetensors";
  std::vector<TensorView> dup = {{"w", DType::F32, {1}, four}, {"w", DType::F32, {1}, four}};
  EXPECT_THROW(save_safetensors(path, dup), OptionError);
  std::vector<TensorView> wrong = {{"w", DType::F32, {2}, four}};
  EXPECT_THROW(save_safetensors(path, wrong), OptionError);
  std::vector<TensorView> reserved = {{"__metadata__", DType::F32, {1}, four}};
  EXPECT_THROW(save_safetensors(path, reserved), OptionError);
  std::vector<TensorView> overflow = {{"w", DType::F32, {1ULL << 62, 8}, four}};
  EXPECT_THROW(save_safetensors(path, overflow), OptionError);
  std::vector<TensorView> bad_utf8 = {{"w\xff", DType::F32, {1}, four}};
  EXPECT_THROW(save_safetensors(path, bad_utf8), OptionError);
  std::vector<TensorView> ok = {{"w", DType::F32, {1}, four}};
  EXPECT_THROW(save_safetensors(path, ok, {}, SafetensorsWriteOptions{}.with_block_bytes(0)),
               OptionError);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SafetensorsWriter, EscapesNamesLikeTheReferenceAndReadsThemBack) {
  std::vector<std::byte> one(1, std::byte{9});
  std::string odd = std::string("q\"b\\s\n\t\x01/\x7f", 10) + "é";
  std::vector<TensorView> tensors = {{odd, DType::U8, {1}, one}};
  TempDir dir;
  save_safetensors(dir / "e.safetensors", tensors, {{"k\"", "v\n"}},
                   SafetensorsWriteOptions{}.with_checksums(false));
  auto bytes = vigil::test::read_file(dir / "e.safetensors");
  EXPECT_NE(bytes.find(R"("q\"b\\s\n\t\u0001/)"
                       "\x7f"
                       "é\":{"),
            std::string::npos);
  auto f = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_EQ(f.tensors().at(0).name, odd);
  EXPECT_EQ(f.metadata().at("k\""), "v\n");
}

TEST(SafetensorsWriter, ResavingReplacesStaleVigilKeys) {
  std::vector<std::byte> a(4, std::byte{1});
  std::vector<TensorView> tensors = {{"a", DType::F32, {1}, a}};
  TempDir dir;
  Metadata stale = {{"vigil.xxh3:a", "0000000000000000"},
                    {"vigil.xxh3:gone", "1111111111111111"},
                    {"user", "kept"}};
  save_safetensors(dir / "r.safetensors", tensors, stale);
  auto f = SafetensorsFile::open(dir / "r.safetensors");
  EXPECT_EQ(f.metadata().count("vigil.xxh3:gone"), 0u);
  EXPECT_EQ(f.metadata().at("user"), "kept");
  EXPECT_NE(f.metadata().at("vigil.xxh3:a"), "0000000000000000");
}
