// TokenWindowSource: language-model batches (x, y = x shifted by one token) cut from a
// memory-mapped file of raw tokens (nanoGPT's train.bin, or a text file read as bytes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// How tokens are stored: unsigned little-endian integers of 1, 2 or 4 bytes, back to back.
enum class TokenDType { U8, U16, U32 };
/// "u8", "u16", "u32"; parse_token_dtype also takes "uint8"/"uint16"/"uint32" and throws
/// OptionError for anything else.
std::string_view token_dtype_name(TokenDType dtype);
TokenDType parse_token_dtype(std::string_view name);
/// Bytes per token (1, 2 or 4).
std::int64_t token_size(TokenDType dtype);

/// How windows are chosen.
enum class WindowMode {
  Random,      ///< uniformly over every valid start position of every segment (for training)
  Sequential,  ///< in file order, each full window once per pass (for validation and test)
};

/// Token positions [begin, end) in the file (in tokens, not bytes).
struct TokenSegment {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  bool operator==(const TokenSegment&) const = default;
};

/// One batch: x and y are int64 [B, T]; y[b][t] is the token after x[b][t].
struct TokenBatch {
  ::torch::Tensor x;
  ::torch::Tensor y;
};

/// Options of TokenWindowSource.
struct TokenWindowOptions {
  /// The token file (required).
  std::filesystem::path path;
  /// Token width (default U16, as nanoGPT's train.bin; use U8 to read a text file as bytes).
  TokenDType dtype = TokenDType::U16;
  /// T, tokens per window in x; each window reads T + 1 tokens (default 256).
  std::int64_t context = 256;
  /// B, windows per batch (default 64).
  std::int64_t batch_size = 64;
  /// Seeds the Random windows; Sequential ignores it (default 0).
  std::uint64_t seed = 0;
  /// The parts of the file to use; a window never crosses from one into the next, and segments
  /// shorter than T + 1 tokens are skipped; any order, and overlapping segments simply give
  /// their shared windows more weight (default: the whole file as one segment).
  std::vector<TokenSegment> segments;
  /// Random or Sequential (default Random).
  WindowMode mode = WindowMode::Random;
  /// Random: batches per pass (default: endless, next() never ends a pass). Sequential: serve at
  /// most this many batches per pass, e.g. to evaluate on a fixed prefix (default: all).
  std::optional<std::int64_t> batches_per_epoch;
  /// If given, a token >= vocab_size in a window being served throws InputError (default none).
  std::optional<std::int64_t> vocab_size;

  VIGIL_SETTER(path)
  VIGIL_SETTER(dtype)
  VIGIL_SETTER(context)
  VIGIL_SETTER(batch_size)
  VIGIL_SETTER(seed)
  VIGIL_SETTER(segments)
  VIGIL_SETTER(mode)
  VIGIL_SETTER(batches_per_epoch)
  VIGIL_SETTER(vocab_size)

  /// Throws OptionError for an empty path, context/batch_size/batches_per_epoch/vocab_size < 1,
  /// or a segment with begin < 0 or end < begin (checks that need the file are in the source).
  void validate() const;
};

/// Batches of token windows from a memory-mapped file, resumable from state().
///
/// Random mode draws each window's start uniformly from all starts s with s + T + 1 <= end of
/// its segment (so longer segments get proportionally more windows), from a generator seeded by
/// (seed, epoch, batch index): the same options give the same batches on every machine, and a
/// state is just (epoch, position). Sequential mode walks every segment with stride T (windows
/// share one boundary token, so every token after a segment's first is a target exactly once)
/// and keeps the last short batch.
///
/// vocab_size is checked on the tokens of each window while they are copied into the batch,
/// which costs nothing extra; a scan of the whole file in the constructor would read it all
/// (tens of GB for large corpora) before the first step.
///
///     vigil::torch::TokenWindowSource train(vigil::torch::TokenWindowOptions{}
///                                               .with_path("data/train.bin")
///                                               .with_context(256)
///                                               .with_batch_size(64)
///                                               .with_seed(1337));
///     train.set_epoch(0);
///     auto batch = train.next();  // batch->x, batch->y: int64 [64, 256]
///     auto saved = train.state();  // in a fresh source, load_state(saved) continues here
///
/// Copies of a source share one read-only mapping; the file must not be truncated or rewritten
/// while it is mapped (reading a truncated mapping kills the process with SIGBUS).
///
/// Errors: OptionError for bad options (see validate()); InputError naming the file for a
/// missing file, a size that is not a whole number of tokens, a segment past the end of the
/// file, no segment with T + 1 tokens, a token >= vocab_size; IoError if it cannot be mapped.
class TokenWindowSource : public DataSource<TokenBatch> {
 public:
  explicit TokenWindowSource(TokenWindowOptions options);

  void set_epoch(std::int64_t epoch) override;
  std::optional<TokenBatch> next() override;
  std::optional<std::int64_t> batches_per_epoch() const override;

  /// {"kind": "token_windows", "epoch", "position" (batches served in this pass), "windows"
  /// (windows served in this pass), plus the file name, its token count and the options that
  /// decide the windows, which load_state() compares}.
  nlohmann::json state() const override;
  /// Throws InputError naming the difference if `state` came from another file or options.
  void load_state(const nlohmann::json& state) override;

  const TokenWindowOptions& options() const { return options_; }
  /// Tokens in the file.
  std::int64_t num_tokens() const;
  /// The segments windows come from (the whole file if none was given; short ones dropped).
  const std::vector<TokenSegment>& segments() const { return segments_; }
  /// Distinct windows: valid start positions (Random) or windows in one pass (Sequential).
  std::int64_t num_windows() const { return total_windows_; }
  /// The first token position of window `i` of 0..num_windows()-1 (Random: the i-th valid start).
  std::int64_t window_start(std::int64_t i) const;

 private:
  struct File;
  std::int64_t windows_in(const TokenSegment& segment) const;
  std::uint64_t segments_digest() const;
  TokenBatch make_batch(const std::vector<std::int64_t>& starts) const;

  TokenWindowOptions options_;
  std::shared_ptr<const File> file_;  // shared: copies of a source map the file once
  std::vector<TokenSegment> segments_;
  std::vector<std::int64_t> first_window_;  // prefix sums of windows_in(segments_[i])
  std::int64_t total_windows_ = 0;
  std::int64_t epoch_ = 0;
  std::int64_t position_ = 0;  // batches served in this pass
};

}  // namespace vigil::torch
