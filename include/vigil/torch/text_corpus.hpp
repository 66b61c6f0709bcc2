// A text corpus read as bytes into one token file, split by position inside each file into
// training, validation and test parts, for TokenWindowSource.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/torch/token_windows.hpp"

namespace vigil::torch {

/// The fraction of each file held out, at its end: validation is the 5% before the last 5%,
/// test the last 5%. Fixed, so that every run of a corpus splits it the same way.
inline constexpr double kTextValidationFraction = 0.05;
inline constexpr double kTextTestFraction = 0.05;

/// One file of the corpus and where its bytes went in the token file.
struct TextFile {
  std::string path;          ///< as found (absolute when the corpus path was)
  std::int64_t begin = 0;    ///< its first byte's position in the token file
  std::int64_t bytes = 0;    ///< its size
  TokenSegment train;        ///< [begin, begin + 90%)
  TokenSegment validation;   ///< the next 5%
  TokenSegment test;         ///< the last 5%
};

/// What build_text_corpus() made.
struct TextCorpus {
  std::filesystem::path tokens;  ///< the token file (u8, the files back to back)
  std::vector<TextFile> files;   ///< in the order read (sorted by path)
  std::int64_t bytes = 0;        ///< size of the token file
  std::int64_t skipped_binary = 0;   ///< regular files that are not valid UTF-8, not read
  std::int64_t skipped_links = 0;    ///< symbolic links, not followed
  std::string xxh3;              ///< XXH3-64 of the token file, 16 hex digits

  /// Every file's training, validation or test segment (in file order).
  std::vector<TokenSegment> train_segments() const;
  std::vector<TokenSegment> validation_segments() const;
  std::vector<TokenSegment> test_segments() const;

  /// The baseline a language model must beat: the cross-entropy, in nats per byte, of the test
  /// split's bytes under the training split's byte frequencies (add-one smoothed, so an unseen
  /// byte costs a finite amount). Reads the token file.
  double unigram_test_loss() const;

  /// "1.4 MB in 63 files of /usr/share/games/fortunes (skipped 63 files that are not UTF-8 text
  /// and 63 symbolic links)".
  std::string description(const std::string& source) const;

  /// {"tokens": file name, "bytes", "xxh3", "skipped_binary", "skipped_links", "files": [{"path",
  /// "begin", "bytes", "train": [b, e], "validation": [b, e], "test": [b, e]}]}: corpus.json.
  nlohmann::json to_json() const;
  /// Reads to_json()'s shape back; `dir` is where the token file is. Throws InputError for a
  /// wrong shape.
  static TextCorpus from_json(const nlohmann::json& json, const std::filesystem::path& dir);
};

/// Reads `source` (a file, or every regular file under a folder, recursively, sorted by path)
/// as bytes and writes them back to back to `out_dir`/tokens.u8 and the layout to
/// `out_dir`/corpus.json, both atomically. Files that are not valid UTF-8 (e.g. fortune's .dat
/// indexes) and symbolic links (Debian's fortunes has *.u8 links to its files) are skipped and
/// counted; empty files are skipped silently. Each file is split by position: its first 90%
/// trains, the next 5% validates, the last 5% tests.
///
/// Throws InputError naming the path for a source that does not exist or cannot be read, a
/// corpus with no text file, or one where some split has fewer than `min_tokens` bytes in all
/// (pass context + 1: no window could be cut from it).
TextCorpus build_text_corpus(const std::filesystem::path& source,
                             const std::filesystem::path& out_dir, std::int64_t min_tokens);

/// Opens what build_text_corpus() wrote to `dir` (corpus.json) and checks the token file's size
/// and XXH3 against it. Throws InputError naming the file when something is missing or changed.
TextCorpus open_text_corpus(const std::filesystem::path& dir);

}  // namespace vigil::torch
