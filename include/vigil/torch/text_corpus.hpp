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
/// test the last 5%. Fixed, so that every run of a corpus splits it the same way. A file of n
/// bytes holds out floor(n * 0.05) = n / 20 bytes (integer division) for each, so a file under
/// 20 bytes is all training.
inline constexpr double kTextValidationFraction = 0.05;
inline constexpr double kTextTestFraction = 0.05;

/// One file of the corpus and where its bytes went in the token file.
struct TextFile {
  std::string path;         ///< as found (absolute when the corpus path was)
  std::int64_t begin = 0;   ///< its first byte's position in the token file
  std::int64_t bytes = 0;   ///< its size (> 0: empty files are left out)
  TokenSegment train;       ///< [begin, begin + bytes - 2 * (bytes / 20))
  TokenSegment validation;  ///< the next bytes / 20
  TokenSegment test;        ///< the last bytes / 20
};

/// What build_text_corpus() made.
struct TextCorpus {
  std::filesystem::path tokens;     ///< the token file (u8, the files back to back)
  std::vector<TextFile> files;      ///< in the order read (sorted by path)
  std::int64_t bytes = 0;           ///< size of the token file
  std::int64_t skipped_binary = 0;  ///< regular files that are not UTF-8 text, not kept
  std::int64_t skipped_links = 0;   ///< symbolic links, not followed
  std::string xxh3;                 ///< XXH3-64 of the token file, 16 lowercase hex digits

  /// Every file's training, validation or test segment (in file order; a file under 20 bytes
  /// gives empty validation and test segments, which TokenWindowSource skips).
  std::vector<TokenSegment> train_segments() const;
  std::vector<TokenSegment> validation_segments() const;
  std::vector<TokenSegment> test_segments() const;

  /// The baseline a language model must beat: the cross-entropy, in nats per byte, of the test
  /// split's bytes under the training split's byte frequencies (add-one smoothed over the 256
  /// byte values, so an unseen byte costs a finite amount): the mean over test bytes b of
  /// -log((count_train(b) + 1) / (train bytes + 256)). Reads the training and test splits of
  /// the token file once. Throws InputError if the test split is empty or the file cannot be
  /// read.
  double unigram_test_loss() const;

  /// "2.6 MB in 43 files of /usr/share/games/fortunes (skipped 43 files that are not UTF-8 text
  /// and 43 symbolic links)": decimal units (bytes, kB, MB, GB) with one decimal.
  std::string description(const std::string& source) const;

  /// {"tokens": file name, "bytes", "xxh3", "skipped_binary", "skipped_links", "files": [{"path",
  /// "begin", "bytes", "train": [b, e], "validation": [b, e], "test": [b, e]}]}: corpus.json.
  nlohmann::json to_json() const;
  /// Reads to_json()'s shape back; `dir` is where the token file is ("tokens" must be a plain
  /// file name in it). Throws InputError naming `dir`/corpus.json for a wrong shape: a missing
  /// or mistyped member, or files and segments that do not tile the token file in order.
  static TextCorpus from_json(const nlohmann::json& json, const std::filesystem::path& dir);
};

/// Reads `source` (a file, or every regular file under a folder, recursively, sorted by path
/// as bytes so that every machine reads them in the same order) as bytes and writes them back
/// to back to `out_dir`/tokens.u8 and the layout to `out_dir`/corpus.json, both atomically
/// (`out_dir` is created if needed). A file is text if it is valid UTF-8 (no overlong forms,
/// surrogates or code points above U+10FFFF) and holds no NUL byte, which valid UTF-8 allows
/// but text never has; other files (e.g. fortune's .dat indexes) are skipped and counted, as
/// are symbolic links under the folder (Debian's fortunes has *.u8 links to its files; links
/// to folders are not followed either). `source` itself may be a link. Empty files are skipped
/// silently, as are fifos, sockets and devices, and the tokens.u8 and corpus.json of an earlier
/// build when `out_dir` is under `source`. Each file is split by position: its first 90%
/// trains, the next 5% validates, the last 5% tests (see kTextTestFraction for the rounding).
///
/// Each file is read twice, once to check that it is text and once to copy and hash it, so
/// memory stays at 1 MiB whatever the size of the files; a file whose size differs between
/// the two reads is refused (InputError) rather than copied half checked.
///
/// Throws InputError naming the path for a source that does not exist or cannot be read (a
/// file or folder under it included), a corpus with no text file (saying how many binary files
/// and links were skipped), or one where no file's training, validation or test split has
/// `min_tokens` bytes: windows are cut inside one file's split, so pass context + 1 (0 checks
/// nothing). OptionError for min_tokens < 0; IoError if the output cannot be written.
TextCorpus build_text_corpus(const std::filesystem::path& source,
                             const std::filesystem::path& out_dir, std::int64_t min_tokens);

/// Opens what build_text_corpus() wrote to `dir` (corpus.json) and checks the token file's size
/// and XXH3 against it, which costs one sequential read of the token file (XXH3 itself hashes
/// faster than the page cache delivers). Throws InputError naming the file when something is
/// missing or changed.
TextCorpus open_text_corpus(const std::filesystem::path& dir);

}  // namespace vigil::torch
