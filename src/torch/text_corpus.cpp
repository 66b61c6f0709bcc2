// Text corpora: the folder walk, the UTF-8 screening, the token file hashed as it is written,
// the per-file split, corpus.json and the unigram baseline.
#include "vigil/torch/text_corpus.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <span>

#include <fmt/format.h>

#include "detail/posix.hpp"
#include "detail/text.hpp"
#include "safetensors/format.hpp"
#include "vigil/io.hpp"
#include "xxh_state.hpp"

namespace vigil::torch {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTokensName = "tokens.u8";
constexpr const char* kLayoutName = "corpus.json";
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

// The held-out splits are computed in integers, so that no rounding of n * 0.05 in floating
// point can move a boundary by one byte between machines or compilers.
constexpr std::int64_t kHeldOutDivisor = 20;
static_assert(kTextValidationFraction == 1.0 / kHeldOutDivisor &&
              kTextTestFraction == 1.0 / kHeldOutDivisor);

// ---- reading ----

// Calls `chunk` with successive blocks (at most 1 MiB) of the file at `path` until it returns
// false or the file ends; returns the bytes read. Throws InputError naming the file.
std::int64_t read_chunks(const fs::path& path, std::vector<char>& buffer,
                         const std::function<bool(std::span<const char>)>& chunk) {
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    throw InputError(fmt::format("{}: cannot open: {}", path.string(), detail::errno_text(err)));
  }
  buffer.resize(kChunkBytes);
  std::int64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw InputError(fmt::format("{}: cannot read: {}", path.string(), detail::errno_text(err)));
    }
    if (n == 0) break;
    total += n;
    if (!chunk(std::span<const char>(buffer.data(), static_cast<std::size_t>(n)))) break;
  }
  return total;
}

// The size of the file if it is UTF-8 text (see build_text_corpus), else nothing. Validates
// block by block; a sequence cut by a block's end (at most 3 bytes) is carried into the next.
std::optional<std::int64_t> text_file_size(const fs::path& path, std::vector<char>& buffer) {
  std::string pending;
  bool text = true;
  const auto size = read_chunks(path, buffer, [&](std::span<const char> block) {
    if (std::memchr(block.data(), 0, block.size()) != nullptr) {
      text = false;
      return false;
    }
    pending.append(block.data(), block.size());
    const auto valid = detail::utf8_valid_prefix(
        reinterpret_cast<const unsigned char*>(pending.data()), pending.size());
    // Four bytes past the valid prefix would have completed any sequence: a real error.
    if (pending.size() - valid >= 4) {
      text = false;
      return false;
    }
    pending.erase(0, valid);
    return true;
  });
  if (!text || !pending.empty()) return std::nullopt;
  return size;
}

// ---- the source ----

struct Listing {
  std::vector<fs::path> files;  // regular files, sorted
  std::int64_t links = 0;
};

// The token file and layout of an earlier build into `out_dir`, and leftovers of interrupted
// writes of them: never read back as text.
bool is_own_output(const fs::path& file, const fs::path& out_dir) {
  const auto name = file.filename().string();
  if (name != kTokensName && name != kLayoutName && !is_temporary_name(name)) return false;
  std::error_code ec;
  return fs::equivalent(file.parent_path(), out_dir, ec);
}

Listing list_folder(const fs::path& source, const fs::path& out_dir) {
  Listing listing;
  try {
    // Default options: directory links are not followed, so a link cycle cannot loop.
    for (fs::recursive_directory_iterator it(source), end; it != end; ++it) {
      if (it->is_symlink()) {
        ++listing.links;
      } else if (it->is_regular_file() && !is_own_output(it->path(), out_dir)) {
        listing.files.push_back(it->path());
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw InputError(fmt::format("{}: cannot read the folder: {}",
                                 (e.path1().empty() ? source : e.path1()).string(),
                                 e.code().message()));
  }
  // Byte-wise, as std::string compares: the same order on every machine and locale.
  std::sort(listing.files.begin(), listing.files.end(),
            [](const fs::path& a, const fs::path& b) { return a.native() < b.native(); });
  return listing;
}

Listing list_source(const fs::path& source, const fs::path& out_dir) {
  std::error_code ec;
  const auto status = fs::status(source, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
    throw InputError(fmt::format("{}: cannot read: {}", source.string(), ec.message()));
  if (!fs::exists(status))
    throw InputError(fmt::format("{}: no such file or folder", source.string()));
  if (fs::is_directory(status)) return list_folder(source, out_dir);
  if (!fs::is_regular_file(status))
    throw InputError(fmt::format("{}: not a regular file or folder", source.string()));
  return Listing{{source}, 0};
}

// ---- the layout ----

TextFile make_text_file(std::string path, std::int64_t begin, std::int64_t bytes) {
  const auto held_out = bytes / kHeldOutDivisor;
  const auto end = begin + bytes;
  TextFile f{std::move(path), begin, bytes, {}, {}, {}};
  f.train = {begin, end - 2 * held_out};
  f.validation = {end - 2 * held_out, end - held_out};
  f.test = {end - held_out, end};
  return f;
}

// The smallest file whose `split` holds `min_tokens` bytes, for the error message.
std::int64_t smallest_file_for(std::string_view split, std::int64_t min_tokens) {
  if (split != "training") return min_tokens * kHeldOutDivisor;
  auto n = min_tokens;
  while (n - 2 * (n / kHeldOutDivisor) < min_tokens) ++n;
  return n;
}

void check_window_room(const TextCorpus& corpus, const fs::path& source, std::int64_t min_tokens) {
  const std::array<std::pair<std::string_view, std::vector<TokenSegment>>, 3> splits{{
      {"training", corpus.train_segments()},
      {"validation", corpus.validation_segments()},
      {"test", corpus.test_segments()},
  }};
  for (const auto& [name, segments] : splits) {
    std::int64_t longest = 0;
    std::int64_t total = 0;
    for (const auto& s : segments) {
      longest = std::max(longest, s.end - s.begin);
      total += s.end - s.begin;
    }
    if (longest >= min_tokens) continue;
    throw InputError(fmt::format(
        "{}: the corpus is too small: a window needs at least {} bytes of one file's {} split, "
        "but the longest has {} ({} in all over {}); a file of {} bytes or more would do, or "
        "use a shorter context",
        source.string(), min_tokens, name, detail::plural(longest, "byte"),
        detail::plural(total, "byte"), detail::plural(static_cast<long>(segments.size()), "file"),
        smallest_file_for(name, min_tokens)));
  }
}

// Copies the text files of `listing` to `out`, hashing them; fills corpus.files and the counts.
void copy_text_files(const Listing& listing, DurableFile& out, TextCorpus& corpus) {
  std::vector<char> buffer;
  auto hash = detail::new_xxh_state();
  for (const auto& path : listing.files) {
    const auto checked = text_file_size(path, buffer);
    if (!checked) {
      ++corpus.skipped_binary;
      continue;
    }
    const auto bytes = read_chunks(path, buffer, [&](std::span<const char> block) {
      out.write_all(std::as_bytes(block));
      XXH3_64bits_update(hash.get(), block.data(), block.size());
      return true;
    });
    // What was copied must be what was checked.
    if (bytes != *checked)
      throw InputError(
          fmt::format("{}: changed while being read ({} bytes, then {}); build the "
                      "corpus again when nothing writes to it",
                      path.string(), *checked, bytes));
    if (bytes == 0) continue;
    corpus.files.push_back(make_text_file(path.string(), corpus.bytes, bytes));
    corpus.bytes += bytes;
  }
  corpus.xxh3 = fmt::format("{:016x}", XXH3_64bits_digest(hash.get()));
}

}  // namespace

// ---- building and opening ----

TextCorpus build_text_corpus(const fs::path& source, const fs::path& out_dir,
                             std::int64_t min_tokens) {
  if (min_tokens < 0)
    throw OptionError(fmt::format("text corpus: min_tokens {} must be >= 0", min_tokens));
  const auto listing = list_source(source, out_dir);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw IoError(fmt::format("cannot create {}: {}", out_dir.string(), ec.message()), ec.value());
  TextCorpus corpus;
  corpus.tokens = out_dir / kTokensName;
  corpus.skipped_links = listing.links;
  // Checked before the rename: a refused corpus leaves an earlier build's files untouched.
  atomic_write_file_with(corpus.tokens, [&](DurableFile& out) {
    copy_text_files(listing, out, corpus);
    if (corpus.files.empty())
      throw InputError(
          fmt::format("{}: no UTF-8 text file to read (skipped {} that {} not UTF-8 text and {})",
                      source.string(), detail::plural(corpus.skipped_binary, "file"),
                      corpus.skipped_binary == 1 ? "is" : "are",
                      detail::plural(corpus.skipped_links, "symbolic link")));
    if (min_tokens > 0) check_window_room(corpus, source, min_tokens);
  });
  atomic_write_file(out_dir / kLayoutName, corpus.to_json().dump(2) + "\n");
  return corpus;
}

TextCorpus open_text_corpus(const fs::path& dir) {
  const auto layout = dir / kLayoutName;
  std::error_code ec;
  if (!fs::exists(layout, ec))
    throw InputError(fmt::format("{}: no such file; build the corpus first", layout.string()));
  std::ifstream in(layout, std::ios::binary);
  if (!in)
    throw InputError(
        fmt::format("{}: cannot read: {}", layout.string(), detail::errno_text(errno)));
  auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    throw InputError(fmt::format("{}: not valid JSON; build the corpus again", layout.string()));
  auto corpus = TextCorpus::from_json(json, dir);

  const auto status = fs::status(corpus.tokens, ec);
  if (!fs::is_regular_file(status))
    throw InputError(
        fmt::format("{}: {} (listed in {}); build the corpus again", corpus.tokens.string(),
                    fs::exists(status) ? "not a regular file" : "no such file", layout.string()));
  const auto size = static_cast<std::int64_t>(fs::file_size(corpus.tokens, ec));
  if (ec || size != corpus.bytes)
    throw InputError(fmt::format(
        "{}: has {} bytes but {} records {}: the token file changed since the corpus was built; "
        "build it again",
        corpus.tokens.string(), size, layout.string(), corpus.bytes));
  std::vector<char> buffer;
  auto hash = detail::new_xxh_state();
  read_chunks(corpus.tokens, buffer, [&](std::span<const char> block) {
    XXH3_64bits_update(hash.get(), block.data(), block.size());
    return true;
  });
  const auto actual = fmt::format("{:016x}", XXH3_64bits_digest(hash.get()));
  if (actual != corpus.xxh3)
    throw InputError(fmt::format(
        "{}: its XXH3-64 is {} but {} records {}: the token file changed since the corpus was "
        "built; build it again",
        corpus.tokens.string(), actual, layout.string(), corpus.xxh3));
  return corpus;
}

// ---- TextCorpus ----

namespace {

std::vector<TokenSegment> segments_of(const std::vector<TextFile>& files,
                                      TokenSegment TextFile::*split) {
  std::vector<TokenSegment> segments;
  segments.reserve(files.size());
  for (const auto& f : files) segments.push_back(f.*split);
  return segments;
}

// Adds the byte values of `segments` of the file at `path` to `counts`; returns how many.
std::int64_t count_bytes(const fs::path& path, const std::vector<TokenSegment>& segments,
                         std::array<std::int64_t, 256>& counts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot read the token file", path.string()));
  std::vector<char> buffer(kChunkBytes);
  std::int64_t total = 0;
  for (const auto& s : segments) {
    in.seekg(s.begin);
    for (auto left = s.end - s.begin; left > 0;) {
      const auto n = std::min<std::int64_t>(left, static_cast<std::int64_t>(buffer.size()));
      if (!in.read(buffer.data(), n))
        throw InputError(fmt::format(
            "{}: ends before byte {} of the layout; build the corpus again", path.string(), s.end));
      for (std::int64_t i = 0; i < n; ++i) ++counts[static_cast<unsigned char>(buffer[i])];
      left -= n;
      total += n;
    }
  }
  return total;
}

}  // namespace

std::vector<TokenSegment> TextCorpus::train_segments() const {
  return segments_of(files, &TextFile::train);
}
std::vector<TokenSegment> TextCorpus::validation_segments() const {
  return segments_of(files, &TextFile::validation);
}
std::vector<TokenSegment> TextCorpus::test_segments() const {
  return segments_of(files, &TextFile::test);
}

double TextCorpus::unigram_test_loss() const {
  std::array<std::int64_t, 256> train{};
  std::array<std::int64_t, 256> test{};
  const auto train_bytes = count_bytes(tokens, train_segments(), train);
  const auto test_bytes = count_bytes(tokens, test_segments(), test);
  if (test_bytes == 0)
    throw InputError(fmt::format(
        "{}: the test split is empty (every file is under {} bytes): no baseline to compute",
        tokens.string(), kHeldOutDivisor));
  const double log_total = std::log(static_cast<double>(train_bytes + 256));
  double sum = 0;
  for (std::size_t v = 0; v < 256; ++v) {
    if (test[v] == 0) continue;
    sum += static_cast<double>(test[v]) * (log_total - std::log(static_cast<double>(train[v] + 1)));
  }
  return sum / static_cast<double>(test_bytes);
}

namespace {

std::string format_size(std::int64_t bytes) {
  const auto b = static_cast<double>(bytes);
  if (bytes < 1000) return detail::plural(static_cast<long>(bytes), "byte");
  if (bytes < 1'000'000) return fmt::format("{:.1f} kB", b / 1e3);
  if (bytes < 1'000'000'000) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.1f} GB", b / 1e9);
}

}  // namespace

std::string TextCorpus::description(const std::string& source) const {
  auto line = fmt::format("{} in {} of {}", format_size(bytes),
                          detail::plural(static_cast<long>(files.size()), "file"), source);
  std::vector<std::string> skipped;
  if (skipped_binary > 0)
    skipped.push_back(fmt::format("{} that {} not UTF-8 text",
                                  detail::plural(skipped_binary, "file"),
                                  skipped_binary == 1 ? "is" : "are"));
  if (skipped_links > 0) skipped.push_back(detail::plural(skipped_links, "symbolic link"));
  if (!skipped.empty()) line += fmt::format(" (skipped {})", fmt::join(skipped, " and "));
  return line;
}

// ---- corpus.json ----

namespace {

nlohmann::json segment_json(const TokenSegment& s) {
  return nlohmann::json::array({s.begin, s.end});
}

// Reads corpus.json's members; every complaint names the file and the member ("files[3].test").
class LayoutReader {
 public:
  explicit LayoutReader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(fmt::format("{}: {}; build the corpus again", file_.string(), what));
  }
  const nlohmann::json& member(const nlohmann::json& j, const std::string& prefix,
                               const char* key) const {
    if (!j.contains(key)) fail(fmt::format("\"{}{}\" is missing", prefix, key));
    return j.at(key);
  }
  std::int64_t count(const nlohmann::json& j, const std::string& prefix, const char* key) const {
    const auto& v = member(j, prefix, key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
      fail(fmt::format("\"{}{}\" must be a whole number >= 0, not {}", prefix, key, v.dump()));
    return v.get<std::int64_t>();
  }
  std::string text(const nlohmann::json& j, const std::string& prefix, const char* key) const {
    const auto& v = member(j, prefix, key);
    if (!v.is_string())
      fail(fmt::format("\"{}{}\" must be a string, not {}", prefix, key, v.dump()));
    return v.get<std::string>();
  }
  TokenSegment segment(const nlohmann::json& j, const std::string& prefix, const char* key) const {
    const auto& v = member(j, prefix, key);
    if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer())
      fail(fmt::format("\"{}{}\" must be [begin, end], not {}", prefix, key, v.dump()));
    return {v[0].get<std::int64_t>(), v[1].get<std::int64_t>()};
  }
  TextFile file(const nlohmann::json& j, std::size_t i, std::int64_t expected_begin) const;

 private:
  fs::path file_;
};

// One entry of "files": its splits must lie back to back over [begin, begin + bytes), and it
// must start where the previous file ended.
TextFile LayoutReader::file(const nlohmann::json& j, std::size_t i,
                            std::int64_t expected_begin) const {
  const auto prefix = fmt::format("files[{}].", i);
  if (!j.is_object()) fail(fmt::format("\"files[{}]\" must be an object", i));
  TextFile f;
  f.path = text(j, prefix, "path");
  f.begin = count(j, prefix, "begin");
  f.bytes = count(j, prefix, "bytes");
  f.train = segment(j, prefix, "train");
  f.validation = segment(j, prefix, "validation");
  f.test = segment(j, prefix, "test");
  if (f.begin != expected_begin || f.bytes < 1)
    fail(
        fmt::format("\"files[{}]\" begins at byte {} with {} bytes; expected byte {} and at "
                    "least 1 byte",
                    i, f.begin, f.bytes, expected_begin));
  const bool tiled = f.train.begin == f.begin && f.train.end >= f.train.begin &&
                     f.validation.begin == f.train.end && f.validation.end >= f.validation.begin &&
                     f.test.begin == f.validation.end && f.test.end >= f.test.begin &&
                     f.test.end == f.begin + f.bytes;
  if (!tiled)
    fail(
        fmt::format("the splits of \"files[{}]\" (train [{}, {}), validation [{}, {}), test "
                    "[{}, {})) do not cover its bytes [{}, {}) back to back",
                    i, f.train.begin, f.train.end, f.validation.begin, f.validation.end,
                    f.test.begin, f.test.end, f.begin, f.begin + f.bytes));
  return f;
}

}  // namespace

nlohmann::json TextCorpus::to_json() const {
  auto list = nlohmann::json::array();
  for (const auto& f : files) {
    list.push_back({{"path", f.path},
                    {"begin", f.begin},
                    {"bytes", f.bytes},
                    {"train", segment_json(f.train)},
                    {"validation", segment_json(f.validation)},
                    {"test", segment_json(f.test)}});
  }
  return {{"tokens", tokens.filename().string()},
          {"bytes", bytes},
          {"xxh3", xxh3},
          {"skipped_binary", skipped_binary},
          {"skipped_links", skipped_links},
          {"files", std::move(list)}};
}

TextCorpus TextCorpus::from_json(const nlohmann::json& json, const fs::path& dir) {
  const LayoutReader reader(dir / kLayoutName);
  if (!json.is_object()) reader.fail("not a JSON object");
  TextCorpus corpus;
  const auto name = reader.text(json, "", "tokens");
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    reader.fail(fmt::format("\"tokens\" must name a file in the folder, not \"{}\"", name));
  corpus.tokens = dir / name;
  corpus.bytes = reader.count(json, "", "bytes");
  corpus.xxh3 = reader.text(json, "", "xxh3");
  const bool hex =
      corpus.xxh3.size() == 16 && std::all_of(corpus.xxh3.begin(), corpus.xxh3.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
  if (!hex)
    reader.fail(fmt::format("\"xxh3\" must be 16 lowercase hex digits, not \"{}\"", corpus.xxh3));
  corpus.skipped_binary = reader.count(json, "", "skipped_binary");
  corpus.skipped_links = reader.count(json, "", "skipped_links");
  const auto& files = reader.member(json, "", "files");
  if (!files.is_array()) reader.fail("\"files\" must be an array");
  std::int64_t next = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    corpus.files.push_back(reader.file(files[i], i, next));
    next += corpus.files.back().bytes;
  }
  if (next != corpus.bytes)
    reader.fail(fmt::format("the files hold {} bytes but \"bytes\" is {}", next, corpus.bytes));
  return corpus;
}

}  // namespace vigil::torch
