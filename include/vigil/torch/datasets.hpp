// In-memory data sets for training: Fashion-MNIST from IDX files (.gz or raw), CSV tables with
// saved standardisation, a seeded train/validation split, and a resumable mini-batch iterator.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// Examples in memory: features [N, ...] float32; targets int64 [N] (class indices) or
/// float32 [N, 1] (regression).
struct Dataset {
  ::torch::Tensor features;
  ::torch::Tensor targets;

  std::int64_t size() const { return features.defined() ? features.size(0) : 0; }
  /// The examples at `indices` (copies, in that order).
  Dataset subset(const std::vector<std::int64_t>& indices) const;
  /// The first min(n, size()) examples (shares memory).
  Dataset head(std::int64_t n) const;
};

// ---- Fashion-MNIST ----

/// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
/// Mean and standard deviation of the training pixels in [0, 1] (the usual Normalize values).
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

/// Which file pair: train-{images-idx3,labels-idx1}-ubyte or t10k-... (each .gz or raw).
enum class Split { Train, Test };

/// Options of load_fashion_mnist.
struct FashionMnistOptions {
  /// Folder holding the four IDX files, gzipped or not (default kFashionMnistDir).
  std::filesystem::path root{kFashionMnistDir};
  /// Use only the first `limit` examples (default: all).
  std::optional<std::int64_t> limit;
  /// After scaling pixels to [0, 1], subtract kFashionMnistMean and divide by kFashionMnistStd,
  /// as transforms.Normalize((0.2860,), (0.3530,)) does (default true).
  bool normalize = true;

  VIGIL_SETTER(root)
  VIGIL_SETTER(limit)
  VIGIL_SETTER(normalize)
};

/// Loads a split: features float32 [N, 1, 28, 28], targets int64 [N] in 0..9.
/// Errors (InputError) name the file and the problem: missing folder (and the Debian package
/// that provides it), missing file, bad gzip, wrong magic number, wrong dimensions, size not
/// matching the file length, image/label counts differing, a label outside 0..9.
Dataset load_fashion_mnist(Split split, const FashionMnistOptions& options = {});

/// The ten class names, in label order ("T-shirt/top", "Trouser", ...).
const std::vector<std::string>& fashion_mnist_classes();

/// One IDX array (unsigned bytes only, magic 0x0000080N): its dimensions and data.
struct IdxArray {
  std::vector<std::int64_t> dims;  ///< dims[0] is the number of items read (after a limit)
  std::vector<std::uint8_t> data;
  std::int64_t total = 0;  ///< items the file holds (dims[0] before a limit)
};
/// Reads an IDX file (gunzipping if it starts with the gzip magic) and checks the magic number,
/// the number of dimensions (`expected_rank`), and that the data fills the file exactly.
/// `limit` reads only the first N items of dimension 0. Throws InputError naming the file.
IdxArray read_idx(const std::filesystem::path& path, int expected_rank,
                  std::optional<std::int64_t> limit = std::nullopt);

// ---- splitting ----

/// A data set split in two.
struct TrainValidation {
  Dataset train;
  Dataset validation;
};
/// Holds out round(fraction * N) examples (at least 1 when fraction > 0) as validation, chosen
/// by a permutation from ShuffleRng(seed): the same seed gives the same split everywhere.
/// Throws OptionError unless 0 <= fraction < 1. `held_out` names the held-out part in messages
/// (default "validation"; "test" when the same split holds out a test set).
TrainValidation train_validation_split(const Dataset& data, double validation_fraction,
                                       std::uint64_t seed,
                                       std::string_view held_out = "validation");

// ---- CSV tables ----

/// What the target column means.
enum class Task {
  Auto,            ///< Classification if every target is an integer in [0, kMaxAutoClasses)
                   ///< (labels) or any target is text; regression otherwise.
  Classification,  ///< Targets are class labels: non-negative integers, or text (classes are then
                   ///< the sorted distinct strings).
  Regression,      ///< Targets are numbers.
};
inline constexpr std::int64_t kMaxAutoClasses = 100;

/// "auto", "classification", "regression"; parse_task throws OptionError for anything else.
std::string_view task_name(Task task);
Task parse_task(std::string_view name);

/// Per-feature mean and standard deviation, fitted on training data and saved with the run so
/// that evaluation applies the training statistics.
struct Standardizer {
  std::vector<double> mean;
  std::vector<double> std;  ///< a constant column gets 1 (no division by zero)

  /// Fits on features [N, F] (population standard deviation, as sklearn's StandardScaler).
  static Standardizer fit(const ::torch::Tensor& features);
  /// (x - mean) / std, column-wise; throws InputError if the column count differs.
  ::torch::Tensor apply(const ::torch::Tensor& features) const;
  bool empty() const { return mean.empty(); }

  /// {"mean": [...], "std": [...]}.
  nlohmann::json to_json() const;
  static Standardizer from_json(const nlohmann::json& json);
};

/// Options of load_csv.
struct CsvOptions {
  /// The column to predict (required).
  std::string target;
  /// How to read the target column (default Auto).
  Task task = Task::Auto;
  /// Field separator (default ',').
  char delimiter = ',';
  /// Columns to leave out of the features, e.g. an id (default none).
  std::vector<std::string> drop;
  /// Use only the first `limit` data rows (default: all).
  std::optional<std::int64_t> limit;

  VIGIL_SETTER(target)
  VIGIL_SETTER(task)
  VIGIL_SETTER(delimiter)
  VIGIL_SETTER(drop)
  VIGIL_SETTER(limit)
};

/// A CSV table read as a data set (features not standardised yet).
struct CsvDataset {
  Dataset data;                            ///< features float32 [N, F]
  std::vector<std::string> feature_names;  ///< the F feature columns, in file order
  std::string target;
  Task task = Task::Regression;          ///< Classification or Regression (never Auto)
  std::int64_t num_classes = 0;          ///< classification: max label + 1 or distinct strings
  std::vector<std::string> class_names;  ///< classification from text labels, else empty
};

/// Reads a CSV file with a header row; fields may be double-quoted. Every feature cell must be a
/// number. Errors (InputError) give the file and line: missing file, empty file, missing target
/// column (listing the columns that exist), wrong number of fields, empty or non-numeric cells,
/// non-integer or negative class labels.
CsvDataset load_csv(const std::filesystem::path& path, const CsvOptions& options);

// ---- mini-batches ----

/// One mini-batch.
struct Batch {
  ::torch::Tensor features;
  ::torch::Tensor targets;
  std::int64_t index = 0;  ///< batch number within the epoch, 0-based
  std::int64_t begin = 0;  ///< position of its first example in the epoch order
};

/// Walks a data set in a given order (e.g. epoch_order()) in mini-batches, starting at any
/// position, so that a run resumed in the middle of an epoch sees exactly the remaining batches.
class BatchIterator {
 public:
  /// `order` must be a permutation of a subset of 0..N-1; `start` is a position in `order`
  /// (a multiple of batch_size when resuming). drop_last skips a final short batch (default
  /// false). Throws OptionError for batch_size < 1, start outside [0, order.size()], or an
  /// index out of range.
  BatchIterator(const Dataset& data, std::vector<std::int64_t> order, std::int64_t batch_size,
                std::int64_t start = 0, bool drop_last = false);

  /// True when no batch is left.
  bool done() const;
  /// The next batch (throws Error when done()).
  Batch next();
  /// Position in the order of the next example to be served (= examples consumed so far).
  std::int64_t position() const { return position_; }
  /// Batches in a whole epoch, and the index of the next batch.
  std::int64_t num_batches() const;
  std::int64_t next_index() const;

 private:
  Dataset data_;  // tensors are reference-counted: holding a copy is cheap and safe
  std::vector<std::int64_t> order_;
  std::int64_t batch_size_;
  std::int64_t position_;
  bool drop_last_;
};

}  // namespace vigil::torch
