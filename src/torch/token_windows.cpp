// TokenWindowSource: the file mapping, window placement, batches and their resumable state.
#include "vigil/torch/token_windows.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "detail/enum_names.hpp"
#include "detail/posix.hpp"
#include "vigil/torch/rng_state.hpp"

namespace vigil::torch {

namespace fs = std::filesystem;

// ---- dtypes ----

namespace {

constexpr vigil::detail::EnumName<TokenDType> kTokenDTypeNames[] = {
    {TokenDType::U8, "u8"}, {TokenDType::U16, "u16"}, {TokenDType::U32, "u32"}};

}  // namespace

std::string_view token_dtype_name(TokenDType dtype) {
  return vigil::detail::name_of(kTokenDTypeNames, dtype);
}

TokenDType parse_token_dtype(std::string_view name) {
  if (name == "u8" || name == "uint8") return TokenDType::U8;
  if (name == "u16" || name == "uint16") return TokenDType::U16;
  if (name == "u32" || name == "uint32") return TokenDType::U32;
  throw OptionError(fmt::format("unknown token dtype \"{}\" (expected u8, u16 or u32)", name));
}

std::int64_t token_size(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::U8:
      return 1;
    case TokenDType::U16:
      return 2;
    case TokenDType::U32:
      return 4;
  }
  return 1;
}

namespace {
std::string_view mode_name(WindowMode mode) {
  return mode == WindowMode::Random ? "random" : "sequential";
}
}  // namespace

void TokenWindowOptions::validate() const {
  if (path.empty()) throw OptionError("token windows: path is required (the token file)");
  if (context < 1)
    throw OptionError(fmt::format("token windows: context {} must be >= 1", context));
  if (batch_size < 1)
    throw OptionError(fmt::format("token windows: batch_size {} must be >= 1", batch_size));
  if (batches_per_epoch && *batches_per_epoch < 1)
    throw OptionError(fmt::format("token windows: batches_per_epoch {} must be >= 1 (or unset)",
                                  *batches_per_epoch));
  if (vocab_size && *vocab_size < 1)
    throw OptionError(
        fmt::format("token windows: vocab_size {} must be >= 1 (or unset)", *vocab_size));
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    if (s.begin < 0 || s.end < s.begin)
      throw OptionError(fmt::format(
          "token windows: segment {} is [{}, {}); it needs 0 <= begin <= end", i, s.begin, s.end));
  }
}

// ---- the mapped file ----

struct TokenWindowSource::File {
  std::string name;  // the path as given, for messages
  const std::uint8_t* bytes = nullptr;
  std::size_t length = 0;
  std::int64_t tokens = 0;

  File(const fs::path& path, TokenDType dtype, WindowMode mode);
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() {
    if (bytes) ::munmap(const_cast<std::uint8_t*>(bytes), length);
  }
};

TokenWindowSource::File::File(const fs::path& path, TokenDType dtype, WindowMode mode)
    : name(path.string()) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(fmt::format("token file {}: no such file", name));
  // O_NONBLOCK so that a FIFO given by mistake cannot hang the open.
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    throw IoError(fmt::format("token file {}: cannot open: {}", name, detail::errno_text(err)),
                  err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw InputError(fmt::format("token file {}: not a regular file", name));
  length = static_cast<std::size_t>(st.st_size);
  const auto width = static_cast<std::size_t>(token_size(dtype));
  if (length % width != 0)
    throw InputError(fmt::format(
        "token file {}: its {} bytes are not a whole number of {}-byte tokens (dtype {}); is the "
        "dtype right, or is the file truncated?",
        name, length, width, token_dtype_name(dtype)));
  tokens = static_cast<std::int64_t>(length / width);
  if (length == 0) return;
  void* addr = ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) {
    const int err = errno;
    throw IoError(fmt::format("token file {}: cannot memory-map {} bytes: {}", name, length,
                              detail::errno_text(err)),
                  err);
  }
  bytes = static_cast<const std::uint8_t*>(addr);
  // Random windows are small reads all over the file: readahead would fetch pages never used.
  (void)::madvise(addr, length, mode == WindowMode::Random ? MADV_RANDOM : MADV_SEQUENTIAL);
}

// ---- the source ----

namespace {

// splitmix64's finalizer: neighbouring inputs give unrelated outputs.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The generator of batch `index` of pass `epoch`: depends on nothing else, so resuming needs no
// generator state and any batch can be recomputed.
ShuffleRng batch_rng(std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
  const auto a = mix(seed);
  const auto b = mix(a ^ static_cast<std::uint64_t>(epoch));
  return ShuffleRng(mix(b ^ static_cast<std::uint64_t>(index)));
}

}  // namespace

TokenWindowSource::TokenWindowSource(TokenWindowOptions options) : options_(std::move(options)) {
  options_.validate();
  file_ = std::make_shared<const File>(options_.path, options_.dtype, options_.mode);
  const auto tokens = file_->tokens;
  std::vector<TokenSegment> given = options_.segments;
  if (given.empty()) given.push_back({0, tokens});
  std::int64_t longest = 0;
  for (std::size_t i = 0; i < given.size(); ++i) {
    const auto& s = given[i];
    if (s.end > tokens)
      throw InputError(fmt::format(
          "token file {}: segment {} is [{}, {}) but the file holds only {} tokens (dtype {})",
          file_->name, i, s.begin, s.end, tokens, token_dtype_name(options_.dtype)));
    longest = std::max(longest, s.end - s.begin);
    if (windows_in(s) == 0) continue;  // too short for one window: nothing to draw from it
    segments_.push_back(s);
    first_window_.push_back(total_windows_);
    total_windows_ += windows_in(s);
  }
  if (total_windows_ == 0)
    throw InputError(fmt::format(
        "token file {}: no segment holds context + 1 = {} tokens (the longest has {}); use a "
        "shorter context or longer segments",
        file_->name, options_.context + 1, longest));
}

std::int64_t TokenWindowSource::windows_in(const TokenSegment& segment) const {
  const auto length = segment.end - segment.begin;
  if (length < options_.context + 1) return 0;
  // Random: every start s with s + T + 1 <= end. Sequential: starts begin, begin + T, ... (each
  // window's last target is the next window's first input).
  if (options_.mode == WindowMode::Random) return length - options_.context;
  return (length - 1) / options_.context;
}

std::int64_t TokenWindowSource::num_tokens() const {
  return file_->tokens;
}

std::int64_t TokenWindowSource::window_start(std::int64_t i) const {
  if (i < 0 || i >= total_windows_)
    throw OptionError(fmt::format("window {} is outside 0..{}", i, total_windows_ - 1));
  const auto it = std::upper_bound(first_window_.begin(), first_window_.end(), i);
  const auto k = static_cast<std::size_t>(it - first_window_.begin() - 1);
  const auto offset = i - first_window_[k];
  const auto stride = options_.mode == WindowMode::Random ? 1 : options_.context;
  return segments_[k].begin + offset * stride;
}

std::optional<std::int64_t> TokenWindowSource::batches_per_epoch() const {
  if (options_.mode == WindowMode::Random) return options_.batches_per_epoch;
  const auto all = (total_windows_ + options_.batch_size - 1) / options_.batch_size;
  return options_.batches_per_epoch ? std::min(all, *options_.batches_per_epoch) : all;
}

void TokenWindowSource::set_epoch(std::int64_t epoch) {
  if (epoch < 0) throw OptionError(fmt::format("epoch {} must be >= 0", epoch));
  epoch_ = epoch;
  position_ = 0;
}

std::optional<TokenBatch> TokenWindowSource::next() {
  if (const auto n = batches_per_epoch(); n && position_ >= *n) return std::nullopt;
  const auto batch = options_.batch_size;
  std::vector<std::int64_t> starts;
  starts.reserve(static_cast<std::size_t>(batch));
  if (options_.mode == WindowMode::Random) {
    auto rng = batch_rng(options_.seed, epoch_, position_);
    for (std::int64_t i = 0; i < batch; ++i)
      starts.push_back(window_start(
          static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(total_windows_)))));
  } else {
    const auto first = position_ * batch;
    const auto last = std::min(first + batch, total_windows_);
    for (auto i = first; i < last; ++i) starts.push_back(window_start(i));
  }
  ++position_;
  return make_batch(starts);
}

namespace {

template <class Token>
std::int64_t read_le(const std::uint8_t* p) {
  // Assembled byte by byte so that the file means the same on a big-endian host.
  std::uint64_t v = 0;
  for (std::size_t b = 0; b < sizeof(Token); ++b) v |= std::uint64_t{p[b]} << (8 * b);
  return static_cast<std::int64_t>(v);
}

struct WindowCopy {
  const std::uint8_t* bytes;
  std::int64_t context;
  std::int64_t vocab;  // 0 = unchecked
  const std::string& name;
};

// Copies the T + 1 tokens at `start` into one row of x and y.
template <class Token>
void copy_window(const WindowCopy& c, std::int64_t start, std::int64_t* x, std::int64_t* y) {
  const std::uint8_t* p = c.bytes + start * static_cast<std::int64_t>(sizeof(Token));
  for (std::int64_t t = 0; t <= c.context; ++t, p += sizeof(Token)) {
    const auto v = read_le<Token>(p);
    if (c.vocab > 0 && v >= c.vocab)
      throw InputError(fmt::format(
          "token file {}: token {} at position {} is not below vocab_size {} (wrong dtype, or "
          "tokenized with a larger vocabulary?)",
          c.name, v, start + t, c.vocab));
    if (t < c.context) x[t] = v;
    if (t > 0) y[t - 1] = v;
  }
}

}  // namespace

TokenBatch TokenWindowSource::make_batch(const std::vector<std::int64_t>& starts) const {
  const auto rows = static_cast<std::int64_t>(starts.size());
  const auto T = options_.context;
  TokenBatch out{::torch::empty({rows, T}, ::torch::kLong),
                 ::torch::empty({rows, T}, ::torch::kLong)};
  auto* x = out.x.data_ptr<std::int64_t>();
  auto* y = out.y.data_ptr<std::int64_t>();
  const WindowCopy c{file_->bytes, T, options_.vocab_size.value_or(0), file_->name};
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto s = starts[static_cast<std::size_t>(r)];
    switch (options_.dtype) {
      case TokenDType::U8:
        copy_window<std::uint8_t>(c, s, x + r * T, y + r * T);
        break;
      case TokenDType::U16:
        copy_window<std::uint16_t>(c, s, x + r * T, y + r * T);
        break;
      case TokenDType::U32:
        copy_window<std::uint32_t>(c, s, x + r * T, y + r * T);
        break;
    }
  }
  return out;
}

// ---- state ----

std::uint64_t TokenWindowSource::segments_digest() const {
  // FNV-1a over the segments actually used: a list of thousands of segments (one per text
  // file) stays one short string in state.json.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto add = [&h](std::int64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= (static_cast<std::uint64_t>(v) >> (8 * b)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  for (const auto& s : segments_) {
    add(s.begin);
    add(s.end);
  }
  return h;
}

namespace {
nlohmann::json optional_json(const std::optional<std::int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json TokenWindowSource::state() const {
  const auto served = position_ * options_.batch_size;
  return {
      {"kind", "token_windows"},
      {"epoch", epoch_},
      {"position", position_},
      {"windows", options_.mode == WindowMode::Random ? served : std::min(served, total_windows_)},
      {"file", fs::path(file_->name).filename().string()},
      {"tokens", file_->tokens},
      {"dtype", token_dtype_name(options_.dtype)},
      {"mode", mode_name(options_.mode)},
      {"context", options_.context},
      {"batch_size", options_.batch_size},
      // Sequential windows do not depend on the seed: a validation source may change it.
      {"seed", options_.mode == WindowMode::Random
                   ? nlohmann::json(fmt::format("{:016x}", options_.seed))
                   : nlohmann::json(nullptr)},
      {"batches_per_epoch", optional_json(options_.batches_per_epoch)},
      {"segments", segments_.size()},
      {"segments_digest", fmt::format("{:016x}", segments_digest())},
  };
}

void TokenWindowSource::load_state(const nlohmann::json& state) {
  if (!state.is_object() || state.value("kind", std::string()) != "token_windows")
    throw InputError(
        fmt::format("token file {}: the saved data state is not a token-window state: {}",
                    file_->name, state.dump().substr(0, 200)));
  // The file is compared by name and size, not by folder, so that a moved data folder resumes.
  const auto mine = this->state();
  for (const char* key : {"file", "tokens", "dtype", "mode", "context", "batch_size", "seed",
                          "batches_per_epoch", "segments", "segments_digest"}) {
    if (!state.contains(key) || state[key] != mine[key])
      throw InputError(fmt::format(
          "token file {}: the saved data state has {} = {} but this source has {}; resume with "
          "the same token file and options",
          file_->name, key, state.contains(key) ? state[key].dump() : "nothing", mine[key].dump()));
  }
  const auto& e = state.contains("epoch") ? state["epoch"] : nlohmann::json();
  const auto& p = state.contains("position") ? state["position"] : nlohmann::json();
  if (!e.is_number_integer() || !p.is_number_integer() || e.get<std::int64_t>() < 0 ||
      p.get<std::int64_t>() < 0)
    throw InputError(fmt::format(
        "token file {}: the saved data state needs integers epoch >= 0 and position >= 0",
        file_->name));
  const auto position = p.get<std::int64_t>();
  if (const auto n = batches_per_epoch(); n && position > *n)
    throw InputError(
        fmt::format("token file {}: the saved position {} is past the {} batches of a pass",
                    file_->name, position, *n));
  epoch_ = e.get<std::int64_t>();
  position_ = position;
}

}  // namespace vigil::torch
