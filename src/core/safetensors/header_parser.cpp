// The header parser: a SAX handler that builds the tensor table from parser events, then the
// layout checks (contiguous offsets, sizes matching shapes, data ending at the end of the file).
#include "safetensors/header_parser.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "safetensors/format.hpp"

namespace vigil::detail {

namespace {

struct RawEntry {
  std::string name;
  std::optional<DType> dtype;
  std::optional<std::vector<std::uint64_t>> shape;
  std::optional<std::vector<std::uint64_t>> offsets;
};

// Builds the tensor table straight from parser events: no JSON tree, nesting refused beyond the
// three levels the format has, duplicate keys caught (a DOM parser would keep only the last).
class HeaderSax {
 public:
  using json = nlohmann::json;

  explicit HeaderSax(const std::string& source) : source_(source) {}

  std::optional<Metadata> metadata;
  std::vector<TensorInfo> entries;

  bool null() { return scalar("null", /*is_null=*/true); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (state_ == State::InArray) {
      fail(FormatErrorKind::InvalidTensorEntry,
           fmt::format("tensor {}: {} holds the negative number {}", printable(current_.name),
                       field_name(), v));
    }
    return scalar("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == State::InArray) {
      array_.push_back(v);
      return true;
    }
    return scalar("a number");
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    if (state_ == State::InArray) {
      fail(FormatErrorKind::InvalidTensorEntry,
           fmt::format("tensor {}: {} holds {}, not an integer in [0, 2^64)",
                       printable(current_.name), field_name(), text.substr(0, 40)));
    }
    return scalar("a number");
  }
  bool string(json::string_t& s) {
    switch (state_) {
      case State::MetadataValue:
        metadata->emplace(std::move(key_), std::move(s));
        state_ = State::InMetadata;
        return true;
      case State::FieldValue:
        if (field_ == Field::DType) {
          current_.dtype = parse_dtype(s);
          if (!current_.dtype) {
            if (is_later_reference_dtype(s)) {
              fail(FormatErrorKind::UnsupportedDType,
                   fmt::format("tensor {} has dtype {}, which vigil does not support (it reads "
                               "BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, "
                               "F32, I64, U64, F64)",
                               printable(current_.name), s));
            }
            fail(FormatErrorKind::UnknownDType,
                 fmt::format("tensor {} has unknown dtype {}", printable(current_.name),
                             printable(s)));
          }
          state_ = State::InEntry;
          return true;
        }
        break;
      default:
        break;
    }
    return scalar("a string");
  }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case State::Start:
        state_ = State::InRoot;
        return true;
      case State::RootValue:
        if (key_ == "__metadata__") {
          metadata.emplace();
          state_ = State::InMetadata;
        } else {
          current_ = RawEntry{std::move(key_), {}, {}, {}};
          state_ = State::InEntry;
        }
        return true;
      default:
        return scalar("an object");
    }
  }
  bool key(json::string_t& k) {
    switch (state_) {
      case State::InRoot:
        if (!root_keys_.insert(k).second) {
          if (k == "__metadata__") {
            fail(FormatErrorKind::InvalidMetadata, "the header holds __metadata__ twice");
          }
          fail(FormatErrorKind::DuplicateName,
               fmt::format("tensor name {} appears twice in the header", printable(k)));
        }
        key_ = std::move(k);
        state_ = State::RootValue;
        return true;
      case State::InMetadata:
        if (metadata->contains(k)) {
          fail(FormatErrorKind::InvalidMetadata,
               fmt::format("__metadata__ holds the key {} twice", printable(k)));
        }
        key_ = std::move(k);
        state_ = State::MetadataValue;
        return true;
      case State::InEntry: {
        Field f;
        bool seen;
        if (k == "dtype") {
          f = Field::DType;
          seen = current_.dtype.has_value() || dtype_seen_;
          dtype_seen_ = true;
        } else if (k == "shape") {
          f = Field::Shape;
          seen = current_.shape.has_value();
        } else if (k == "data_offsets") {
          f = Field::Offsets;
          seen = current_.offsets.has_value();
        } else {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has the unexpected field {} (only dtype, shape and "
                           "data_offsets are allowed)",
                           printable(current_.name), printable(k)));
        }
        if (seen) {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has the field {} twice", printable(current_.name), k));
        }
        field_ = f;
        state_ = State::FieldValue;
        return true;
      }
      default:
        return scalar("a key");  // unreachable: keys only occur inside objects
    }
  }
  bool end_object() {
    switch (state_) {
      case State::InRoot:
        state_ = State::Done;
        return true;
      case State::InMetadata:
        state_ = State::InRoot;
        return true;
      case State::InEntry: {
        const char* missing = !dtype_seen_        ? "dtype"
                              : !current_.shape   ? "shape"
                              : !current_.offsets ? "data_offsets"
                                                  : nullptr;
        if (missing) {
          fail(FormatErrorKind::InvalidTensorEntry,
               fmt::format("tensor {} has no {} field", printable(current_.name), missing));
        }
        entries.push_back(TensorInfo{std::move(current_.name), *current_.dtype,
                                     std::move(*current_.shape), (*current_.offsets)[0],
                                     (*current_.offsets)[1]});
        current_ = RawEntry{};
        dtype_seen_ = false;
        state_ = State::InRoot;
        return true;
      }
      default:
        return scalar("the end of an object");  // unreachable for well-formed event streams
    }
  }
  bool start_array(std::size_t) {
    if (state_ == State::FieldValue && field_ != Field::DType) {
      array_.clear();
      state_ = State::InArray;
      return true;
    }
    return scalar("an array");
  }
  bool end_array() {
    if (state_ != State::InArray) return scalar("the end of an array");
    if (field_ == Field::Shape) {
      current_.shape = std::move(array_);
    } else {
      if (array_.size() != 2) {
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: data_offsets has {} numbers instead of 2 [begin, end]",
                         printable(current_.name), array_.size()));
      }
      current_.offsets = std::move(array_);
    }
    array_ = {};
    state_ = State::InEntry;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // nlohmann's message already names the byte position; keep just its explanation.
    std::string what = e.what();
    auto colon = what.find("parse error");
    if (colon != std::string::npos) what = what.substr(colon);
    fail(FormatErrorKind::InvalidJson,
         fmt::format("{}: the header is not valid JSON near byte {}: {}", source_, position, what));
  }

 private:
  enum class State {
    Start,          // before the root value
    InRoot,         // expecting a key of the root object or its end
    RootValue,      // after a root key
    InMetadata,     // inside __metadata__
    MetadataValue,  // after a metadata key
    InEntry,        // inside a tensor entry
    FieldValue,     // after dtype/shape/data_offsets
    InArray,        // inside shape or data_offsets
    Done,
  };
  enum class Field { DType, Shape, Offsets };

  const char* field_name() const { return field_ == Field::Shape ? "shape" : "data_offsets"; }

  [[noreturn]] void fail(FormatErrorKind kind, const std::string& msg) {
    if (msg.starts_with(source_ + ":")) throw FormatError(kind, msg);
    throw FormatError(kind, source_ + ": " + msg);
  }

  // Any value that the current position does not allow.
  bool scalar(const char* what, bool is_null = false) {
    switch (state_) {
      case State::Start:
        fail(FormatErrorKind::NotAnObject,
             fmt::format("the header is {}, not a JSON object", what));
      case State::RootValue:
        if (key_ == "__metadata__") {
          if (is_null) {  // the reference reads `"__metadata__": null` as "no metadata"
            state_ = State::InRoot;
            return true;
          }
          fail(FormatErrorKind::InvalidMetadata,
               fmt::format("__metadata__ is {}, not an object of strings", what));
        }
        fail(FormatErrorKind::NotAnObject,
             fmt::format("tensor {} is {}, not an object", printable(key_), what));
      case State::MetadataValue:
        fail(FormatErrorKind::InvalidMetadata,
             fmt::format("__metadata__ value of {} is {}, not a string", printable(key_), what));
      case State::FieldValue:
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: {} is {}", printable(current_.name),
                         field_ == Field::DType ? "dtype" : field_name(),
                         field_ == Field::DType ? std::string(what) + ", not a string"
                                                : std::string(what) + ", not an array"));
      case State::InArray:
        fail(FormatErrorKind::InvalidTensorEntry,
             fmt::format("tensor {}: {} holds {}, not an integer", printable(current_.name),
                         field_name(), what));
      default:
        fail(FormatErrorKind::InvalidJson, fmt::format("unexpected {} in the header", what));
    }
  }

  std::string source_;
  State state_ = State::Start;
  Field field_ = Field::DType;
  std::string key_;
  RawEntry current_;
  bool dtype_seen_ = false;
  std::vector<std::uint64_t> array_;
  std::unordered_set<std::string> root_keys_;
};

[[noreturn]] void fail(const std::string& source, FormatErrorKind kind, const std::string& msg) {
  throw FormatError(kind, source + ": " + msg);
}

// The header's length from the first 8 bytes (little-endian), checked against the limit and
// the file's size.
std::uint64_t header_length(std::span<const std::byte> file, const std::string& source) {
  const std::uint64_t file_len = file.size();
  if (file_len < 8) {
    fail(source, FormatErrorKind::FileTooSmall,
         fmt::format("the file has {} bytes, fewer than the 8-byte header length", file_len));
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(file[i]);
  if (n > kMaxHeaderSize) {
    fail(source, FormatErrorKind::HeaderTooLarge,
         fmt::format("the header length is {} bytes, above the limit of {}", n, kMaxHeaderSize));
  }
  // n <= 1e8, so 8 + n cannot overflow; the check against the file size is what matters.
  if (8 + n > file_len) {
    fail(source, FormatErrorKind::HeaderOutOfBounds,
         fmt::format("the header length is {} bytes but only {} bytes follow it", n, file_len - 8));
  }
  return n;
}

// Runs the SAX parser over the header text (already known to be UTF-8).
void parse_json(std::string_view header, HeaderSax& sax, const std::string& source) {
  // nlohmann's lexer skips a leading byte-order mark and ends its input at a NUL byte, so that
  // whatever follows a NUL (another object, tensors included) would go unread: the whole range
  // is checked here. Neither can appear in JSON text (a NUL inside a string must be escaped).
  if (header.substr(0, 3) == "\xEF\xBB\xBF")
    fail(source, FormatErrorKind::InvalidJson,
         "the header is not valid JSON: it begins with a UTF-8 byte-order mark");
  if (const auto nul = header.find('\0'); nul != std::string_view::npos)
    fail(source, FormatErrorKind::InvalidJson,
         fmt::format("the header is not valid JSON: a NUL byte at header offset {}", nul));
  try {
    nlohmann::json::sax_parse(header.data(), header.data() + header.size(), &sax);
  } catch (const FormatError&) {
    throw;
  } catch (const std::exception& e) {
    fail(source, FormatErrorKind::InvalidJson,
         fmt::format("the header is not valid JSON: {}", e.what()));
  }
}

void check_entry(const TensorInfo& e, std::uint64_t start, const std::string& source) {
  const std::uint64_t b = e.begin, end = e.end;
  if (b != start) {
    fail(source, FormatErrorKind::InvalidOffsets,
         fmt::format("tensor {} has data_offsets [{}, {}] but should begin at {} (tensors "
                     "must be contiguous, without gaps or overlaps, starting at 0)",
                     printable(e.name), b, end, start));
  }
  if (end < b) {
    fail(source, FormatErrorKind::InvalidOffsets,
         fmt::format("tensor {} has data_offsets [{}, {}] that end before they begin",
                     printable(e.name), b, end));
  }
  auto nbytes = checked_nbytes(e.shape, dtype_size(e.dtype));
  if (!nbytes) {
    fail(source, FormatErrorKind::ElementCountOverflow,
         fmt::format("tensor {}: shape {} of {} overflows 64 bits", printable(e.name),
                     shape_text(e.shape), dtype_name(e.dtype)));
  }
  if (*nbytes != end - b) {
    fail(source, FormatErrorKind::SizeMismatch,
         fmt::format("tensor {}: shape {} of {} needs {} bytes but data_offsets [{}, {}] span "
                     "{} bytes",
                     printable(e.name), shape_text(e.shape), dtype_name(e.dtype), *nbytes, b, end,
                     end - b));
  }
}

// Puts the entries in file order and checks that they tile the data section exactly.
void check_layout(std::vector<TensorInfo>& entries, std::uint64_t data_len,
                  const std::string& source) {
  // The reference sorts by data_offsets before validating, so any JSON order is allowed.
  std::sort(entries.begin(), entries.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  std::uint64_t start = 0;
  for (const auto& e : entries) {
    check_entry(e, start, source);
    start = e.end;
  }
  if (start != data_len) {
    fail(source, FormatErrorKind::TrailingBytes,
         start < data_len
             ? fmt::format("the tensors end at data byte {} but the file has {} data bytes ({} "
                           "trailing bytes)",
                           start, data_len, data_len - start)
             : fmt::format("the tensors need {} data bytes but the file has only {} (truncated)",
                           start, data_len));
  }
}

}  // namespace

ParsedHeader parse_header(std::span<const std::byte> file, const std::string& source) {
  const std::uint64_t n = header_length(file, source);
  const auto* header = reinterpret_cast<const char*>(file.data()) + 8;
  std::size_t valid =
      utf8_valid_prefix(reinterpret_cast<const unsigned char*>(header), static_cast<size_t>(n));
  if (valid != n) {
    fail(source, FormatErrorKind::InvalidUtf8,
         fmt::format("the header is not valid UTF-8 (bad byte at header offset {})", valid));
  }
  HeaderSax sax(source);
  parse_json({header, static_cast<std::size_t>(n)}, sax, source);

  ParsedHeader out;
  out.data_start = 8 + n;
  check_layout(sax.entries, file.size() - out.data_start, source);
  out.tensors = std::move(sax.entries);
  if (sax.metadata) out.metadata = std::move(*sax.metadata);
  return out;
}

}  // namespace vigil::detail
