// Fashion-MNIST (IDX, gzipped or raw), CSV tables, splitting and mini-batches.
#include "vigil/torch/datasets.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/enum_names.hpp"
#include "detail/input_file.hpp"
#include "detail/text.hpp"
#include "vigil/torch/rng_state.hpp"

namespace vigil::torch {

namespace fs = std::filesystem;

// ---- Dataset ----

namespace {
::torch::Tensor index_tensor(const std::vector<std::int64_t>& indices) {
  if (indices.empty()) return ::torch::empty({0}, ::torch::kLong);
  return ::torch::from_blob(const_cast<std::int64_t*>(indices.data()),
                            {static_cast<std::int64_t>(indices.size())}, ::torch::kLong)
      .clone();
}
}  // namespace

Dataset Dataset::subset(const std::vector<std::int64_t>& indices) const {
  for (auto i : indices)
    if (i < 0 || i >= size())
      throw OptionError(
          fmt::format("example index {} is outside the data set (size {})", i, size()));
  auto idx = index_tensor(indices);
  return {features.index_select(0, idx), targets.index_select(0, idx)};
}

Dataset Dataset::head(std::int64_t n) const {
  const auto k = std::clamp<std::int64_t>(n, 0, size());
  return {features.narrow(0, 0, k), targets.narrow(0, 0, k)};
}

// ---- IDX ----

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly n bytes (or fewer at end of data); throws on a decompression error.
std::size_t gz_read(gzFile f, const fs::path& path, std::uint8_t* dst, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
    const int got = gzread(f, dst + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw InputError(fmt::format("{}: cannot decompress: {}", path.string(), msg ? msg : "?"));
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

// The length of the data gzread will deliver: the file size, or for gzip the ISIZE trailer
// (the uncompressed size modulo 2^32; the IDX files are far smaller than 4 GiB).
struct SourceInfo {
  bool gzip = false;
  std::uint64_t length = 0;
};

SourceInfo source_info(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open for reading", path.string()));
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  SourceInfo info;
  const auto size = static_cast<std::uint64_t>(fs::file_size(path));
  info.gzip = in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (!info.gzip) {
    info.length = size;
    return info;
  }
  if (size < 18) throw InputError(fmt::format("{}: truncated gzip file", path.string()));
  unsigned char trailer[4];
  in.seekg(static_cast<std::streamoff>(size - 4));
  in.read(reinterpret_cast<char*>(trailer), 4);
  info.length = std::uint64_t{trailer[0]} | std::uint64_t{trailer[1]} << 8 |
                std::uint64_t{trailer[2]} << 16 | std::uint64_t{trailer[3]} << 24;
  return info;
}

}  // namespace

IdxArray read_idx(const fs::path& path, int expected_rank, std::optional<std::int64_t> limit) {
  if (!fs::exists(path)) throw InputError(fmt::format("{}: no such file", path.string()));
  if (limit && *limit < 0) throw OptionError("limit must be >= 0");
  const auto info = source_info(path);
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) throw InputError(fmt::format("{}: cannot open for reading", path.string()));

  std::uint8_t head[4];
  if (gz_read(f.get(), path, head, 4) != 4)
    throw InputError(fmt::format("{}: too short to be an IDX file", path.string()));
  const std::uint32_t magic = std::uint32_t{head[0]} << 24 | std::uint32_t{head[1]} << 16 |
                              std::uint32_t{head[2]} << 8 | head[3];
  const std::uint32_t expected_magic = 0x800u | static_cast<std::uint32_t>(expected_rank);
  if (magic != expected_magic)
    throw InputError(fmt::format(
        "{}: bad magic number 0x{:08x} (expected 0x{:08x}: unsigned bytes in {} dimensions)",
        path.string(), magic, expected_magic, expected_rank));

  IdxArray out;
  std::uint64_t items = 1;
  for (int d = 0; d < expected_rank; ++d) {
    std::uint8_t b[4];
    if (gz_read(f.get(), path, b, 4) != 4)
      throw InputError(fmt::format("{}: header ends before dimension {}", path.string(), d));
    const std::uint32_t dim =
        std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
    if (dim == 0) throw InputError(fmt::format("{}: dimension {} is 0", path.string(), d));
    out.dims.push_back(dim);
    items *= dim;  // at most 3 dims of < 2^32 each: checked against the length below
    if (items > (std::uint64_t{1} << 40))
      throw InputError(fmt::format("{}: dimensions [{}...] are implausibly large", path.string(),
                                   fmt::join(out.dims, ", ")));
  }
  const std::uint64_t header = 4 + 4 * static_cast<std::uint64_t>(expected_rank);
  const std::uint64_t expected = header + items;
  // gzip's ISIZE is the length modulo 2^32.
  const std::uint64_t compare = info.gzip ? (expected & 0xffffffffu) : expected;
  // A truncated gzip file ends in arbitrary bytes where ISIZE belongs, so its size is only
  // reported as what the trailer reads, never as what the file holds.
  if (compare != info.length && info.gzip)
    throw InputError(fmt::format(
        "{}: header says [{}] = {} bytes of data after the {}-byte header, but the gzip "
        "trailer's size field reads {} bytes in all (the file is truncated or corrupt)",
        path.string(), fmt::join(out.dims, ", "), items, header, info.length));
  if (compare != info.length)
    throw InputError(fmt::format(
        "{}: header says [{}] = {} bytes of data, but the file holds {} bytes after the "
        "{}-byte header (truncated or corrupt)",
        path.string(), fmt::join(out.dims, ", "), items,
        info.length >= header ? info.length - header : 0, header));

  const std::uint64_t per_item = items / static_cast<std::uint64_t>(out.dims[0]);
  out.total = out.dims[0];
  if (limit && *limit < out.dims[0]) out.dims[0] = *limit;
  const std::uint64_t want = per_item * static_cast<std::uint64_t>(out.dims[0]);
  out.data.resize(want);
  const auto got = gz_read(f.get(), path, out.data.data(), want);
  if (got != want)
    throw InputError(fmt::format("{}: data ends after {} of {} bytes (truncated file)",
                                 path.string(), got, want));
  // Reading on to the end, also past a --limit, makes zlib check the gzip CRC (a flipped bit
  // inside the used prefix is caught) and catches data missing or trailing after the items.
  const std::uint64_t rest = per_item * static_cast<std::uint64_t>(out.total - out.dims[0]);
  std::vector<std::uint8_t> skip(std::size_t{1} << 16);
  std::uint64_t skipped = 0;
  for (;;) {
    const auto n = gz_read(f.get(), path, skip.data(), skip.size());
    if (n == 0) break;
    skipped += n;
    if (skipped > rest)
      throw InputError(fmt::format("{}: unexpected bytes after the data", path.string()));
  }
  if (skipped != rest)
    throw InputError(fmt::format("{}: data ends after {} of {} bytes (truncated file)",
                                 path.string(), want + skipped, want + rest));
  return out;
}

// ---- Fashion-MNIST ----

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
  return names;
}

namespace {
fs::path find_idx(const fs::path& root, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    if (fs::exists(root / name)) return root / name;
  }
  throw InputError(fmt::format("{}: neither {}.gz nor {} is there (incomplete Fashion-MNIST copy)",
                               root.string(), stem, stem));
}
}  // namespace

Dataset load_fashion_mnist(Split split, const FashionMnistOptions& options) {
  const auto& root = options.root;
  if (!fs::is_directory(root))
    throw InputError(fmt::format(
        "Fashion-MNIST folder {} does not exist; install Debian's dataset-fashion-mnist package "
        "(apt-get install dataset-fashion-mnist) or point to another copy of the IDX files",
        root.string()));
  if (options.limit && *options.limit < 1) throw OptionError("limit must be >= 1");
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const auto images_path = find_idx(root, prefix + "-images-idx3-ubyte");
  const auto labels_path = find_idx(root, prefix + "-labels-idx1-ubyte");

  auto images = read_idx(images_path, 3, options.limit);
  auto labels = read_idx(labels_path, 1, options.limit);
  if (images.dims[1] != 28 || images.dims[2] != 28)
    throw InputError(fmt::format("{}: images are {}x{}, Fashion-MNIST's are 28x28",
                                 images_path.string(), images.dims[1], images.dims[2]));
  // Whole-file counts, so a mismatch is reported even when a limit reads fewer.
  if (images.total != labels.total)
    throw InputError(fmt::format("{} holds {} images but {} holds {} labels", images_path.string(),
                                 images.total, labels_path.string(), labels.total));
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] > 9)
      throw InputError(fmt::format("{}: label {} of example {} is outside 0..9",
                                   labels_path.string(), labels.data[i], i));

  const std::int64_t n = images.dims[0];
  auto x = ::torch::from_blob(images.data.data(), {n, 1, 28, 28}, ::torch::kByte)
               .to(::torch::kFloat)
               .div_(255.0);
  if (options.normalize) x.sub_(kFashionMnistMean).div_(kFashionMnistStd);
  auto y = ::torch::from_blob(labels.data.data(), {n}, ::torch::kByte).to(::torch::kLong);
  return {x, y};
}

// ---- splitting ----

TrainValidation train_validation_split(const Dataset& data, double validation_fraction,
                                       std::uint64_t seed, std::string_view held_out) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw OptionError(
        fmt::format("{} fraction must be in [0, 1), got {}", held_out, validation_fraction));
  const std::int64_t n = data.size();
  auto n_val =
      static_cast<std::int64_t>(std::llround(validation_fraction * static_cast<double>(n)));
  if (validation_fraction > 0 && n_val == 0 && n > 0) n_val = 1;
  if (n_val >= n && n > 0)
    throw OptionError(fmt::format("a {} fraction of {} leaves no training examples out of {}",
                                  held_out, validation_fraction, n));
  ShuffleRng rng(seed);
  auto perm = rng.permutation(n);
  std::vector<std::int64_t> val(perm.begin(), perm.begin() + n_val);
  std::vector<std::int64_t> train(perm.begin() + n_val, perm.end());
  // Keep file order inside each part: the split is a choice of examples, not an ordering.
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {data.subset(train), data.subset(val)};
}

// ---- CSV ----

namespace {

constexpr vigil::detail::EnumName<Task> kTaskNames[] = {{Task::Auto, "auto"},
                                                        {Task::Classification, "classification"},
                                                        {Task::Regression, "regression"}};

}  // namespace

std::string_view task_name(Task task) {
  return vigil::detail::name_of(kTaskNames, task);
}

Task parse_task(std::string_view name) {
  if (const auto task = vigil::detail::value_named(kTaskNames, name)) return *task;
  throw OptionError(
      fmt::format("unknown task '{}' (expected auto, classification or regression)", name));
}

Standardizer Standardizer::fit(const ::torch::Tensor& features) {
  if (!features.defined() || features.dim() != 2 || features.size(0) == 0)
    throw InputError("standardisation needs a non-empty [N, F] feature matrix");
  auto x = features.to(::torch::kDouble);
  auto mean = x.mean(0);
  auto std = x.std(0, /*unbiased=*/false);
  Standardizer s;
  for (std::int64_t j = 0; j < x.size(1); ++j) {
    s.mean.push_back(mean[j].item<double>());
    const double sd = std[j].item<double>();
    s.std.push_back(sd > 0 && std::isfinite(sd) ? sd : 1.0);
  }
  return s;
}

::torch::Tensor Standardizer::apply(const ::torch::Tensor& features) const {
  if (!features.defined() || features.dim() != 2 ||
      features.size(1) != static_cast<std::int64_t>(mean.size()))
    throw InputError(
        fmt::format("standardisation was fitted on {} features, the data has {}", mean.size(),
                    features.defined() && features.dim() == 2 ? features.size(1) : -1));
  auto m = ::torch::tensor(mean, ::torch::kDouble);
  auto s = ::torch::tensor(std, ::torch::kDouble);
  return ((features.to(::torch::kDouble) - m) / s).to(features.scalar_type());
}

nlohmann::json Standardizer::to_json() const {
  return {{"mean", mean}, {"std", std}};
}

Standardizer Standardizer::from_json(const nlohmann::json& json) {
  auto numbers = [&](const char* key) {
    if (!json.is_object() || !json.contains(key) || !json[key].is_array())
      throw InputError(fmt::format("standardisation JSON lacks a \"{}\" list", key));
    std::vector<double> v;
    for (const auto& x : json[key]) {
      if (!x.is_number())
        throw InputError(fmt::format("standardisation \"{}\" holds a non-number", key));
      v.push_back(x.get<double>());
    }
    return v;
  };
  Standardizer s;
  s.mean = numbers("mean");
  s.std = numbers("std");
  if (s.mean.size() != s.std.size())
    throw InputError("standardisation \"mean\" and \"std\" differ in length");
  for (double sd : s.std)
    if (!(sd > 0)) throw InputError("standardisation \"std\" values must be > 0");
  return s;
}

namespace {

// Splits one CSV line; fields may be double-quoted ("" is a quote inside quotes).
std::vector<std::string> split_csv_line(std::string_view line, char delim, const fs::path& path,
                                        std::size_t line_no) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  bool was_quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"' && cur.empty() && !was_quoted) {
      quoted = was_quoted = true;
    } else if (c == delim) {
      fields.push_back(std::move(cur));
      cur.clear();
      was_quoted = false;
    } else {
      cur += c;
    }
  }
  if (quoted)
    throw InputError(fmt::format("{}:{}: unterminated quoted field", path.string(), line_no));
  fields.push_back(std::move(cur));
  return fields;
}

using vigil::detail::trim;

std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

CsvDataset load_csv(const fs::path& path, const CsvOptions& options) {
  if (options.target.empty()) throw OptionError("a CSV data set needs a target column name");
  if (options.limit && *options.limit < 1) throw OptionError("limit must be >= 1");
  detail::check_input_file(path, "CSV file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open for reading", path.string()));

  std::string line;
  std::size_t line_no = 0;
  // A CSV row of a few thousand columns is kilobytes: 16 MiB is no row of a data set.
  const auto getline = [&] {
    try {
      return detail::getline_bounded(in, line, std::size_t{16} << 20);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{}:{}: {}", path.string(), line_no + 1, e.what()));
    }
  };
  auto next_line = [&]() -> bool {
    while (getline()) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line_no == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // UTF-8 BOM
      if (!trim(line).empty()) return true;
    }
    return false;
  };
  if (!next_line())
    throw InputError(fmt::format("{}: empty file (a header row is needed)", path.string()));
  auto header = split_csv_line(line, options.delimiter, path, line_no);
  for (auto& h : header) h = std::string(trim(h));
  for (std::size_t i = 0; i < header.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (header[k] == header[i])
        throw InputError(
            fmt::format("{}:{}: column '{}' appears twice in the header (columns {} "
                        "and {}): name every column once",
                        path.string(), line_no, header[i], k + 1, i + 1));

  std::optional<std::size_t> target_col;
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == options.target) target_col = i;
  if (!target_col)
    throw InputError(fmt::format("{}: no column '{}' (columns: {})", path.string(), options.target,
                                 vigil::detail::name_list(header, 20)));
  std::set<std::string> drop(options.drop.begin(), options.drop.end());
  for (const auto& d : drop)
    if (std::find(header.begin(), header.end(), d) == header.end())
      throw OptionError(fmt::format("{}: cannot drop column '{}': no such column (columns: {})",
                                    path.string(), d, vigil::detail::name_list(header, 20)));
  std::vector<std::size_t> feature_cols;
  CsvDataset out;
  out.target = options.target;
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (i == *target_col || drop.count(header[i])) continue;
    feature_cols.push_back(i);
    out.feature_names.push_back(header[i]);
  }
  if (feature_cols.empty())
    throw InputError(fmt::format("{}: no feature columns besides the target '{}'", path.string(),
                                 options.target));

  std::vector<float> features;
  std::vector<std::string> raw_targets;
  std::vector<std::size_t> target_lines;
  std::int64_t rows = 0;
  while ((!options.limit || rows < *options.limit) && next_line()) {
    auto fields = split_csv_line(line, options.delimiter, path, line_no);
    if (fields.size() != header.size())
      throw InputError(fmt::format("{}:{}: {} fields, the header has {}", path.string(), line_no,
                                   fields.size(), header.size()));
    for (std::size_t k = 0; k < feature_cols.size(); ++k) {
      const auto& cell = fields[feature_cols[k]];
      if (trim(cell).empty())
        throw InputError(fmt::format("{}:{}: column '{}' is empty (fill or drop missing values)",
                                     path.string(), line_no, out.feature_names[k]));
      auto v = parse_number(cell);
      if (!v || !std::isfinite(*v))
        throw InputError(fmt::format("{}:{}: column '{}' holds '{}', not a finite number",
                                     path.string(), line_no, out.feature_names[k], cell));
      features.push_back(static_cast<float>(*v));
    }
    raw_targets.emplace_back(trim(fields[*target_col]));
    if (raw_targets.back().empty())
      throw InputError(fmt::format("{}:{}: target column '{}' is empty", path.string(), line_no,
                                   options.target));
    target_lines.push_back(line_no);
    ++rows;
  }
  if (rows == 0) throw InputError(fmt::format("{}: no data rows after the header", path.string()));

  // Decide the task from the target values.
  std::vector<std::optional<double>> numeric;
  bool all_numeric = true, all_labels = true;
  for (std::size_t i = 0; i < raw_targets.size(); ++i) {
    numeric.push_back(parse_number(raw_targets[i]));
    const auto& v = numeric.back();
    // One "nan" among numbers would otherwise make every distinct value a class of its own.
    if (v && !std::isfinite(*v) && options.task != Task::Classification)
      throw InputError(fmt::format("{}:{}: target '{}' is '{}', not a finite number", path.string(),
                                   target_lines[i], options.target, raw_targets[i]));
    all_numeric = all_numeric && v && std::isfinite(*v);
    all_labels = all_labels && v && *v >= 0 && *v == std::floor(*v) && *v < 1e9;
  }
  Task task = options.task;
  if (task == Task::Auto) {
    bool small = all_labels;
    for (const auto& v : numeric) small = small && *v < static_cast<double>(kMaxAutoClasses);
    task = (small || !all_numeric) ? Task::Classification : Task::Regression;
  }
  out.task = task;
  const auto F = static_cast<std::int64_t>(feature_cols.size());
  out.data.features = ::torch::from_blob(features.data(), {rows, F}, ::torch::kFloat).clone();

  if (task == Task::Regression) {
    std::vector<float> y;
    for (std::size_t i = 0; i < raw_targets.size(); ++i) {
      if (!numeric[i] || !std::isfinite(*numeric[i]))
        throw InputError(fmt::format("{}:{}: target '{}' is '{}', not a finite number (regression)",
                                     path.string(), target_lines[i], options.target,
                                     raw_targets[i]));
      y.push_back(static_cast<float>(*numeric[i]));
    }
    out.data.targets = ::torch::from_blob(y.data(), {rows, 1}, ::torch::kFloat).clone();
    return out;
  }

  std::vector<std::int64_t> y;
  if (all_numeric) {
    std::int64_t max_label = 0;
    for (std::size_t i = 0; i < raw_targets.size(); ++i) {
      const double v = *numeric[i];
      if (!(v >= 0 && v == std::floor(v) && v < 1e9))
        throw InputError(
            fmt::format("{}:{}: class label '{}' in '{}' is not a non-negative integer",
                        path.string(), target_lines[i], raw_targets[i], options.target));
      y.push_back(static_cast<std::int64_t>(v));
      max_label = std::max(max_label, y.back());
    }
    out.num_classes = max_label + 1;
  } else {
    std::set<std::string> distinct(raw_targets.begin(), raw_targets.end());
    out.class_names.assign(distinct.begin(), distinct.end());
    std::map<std::string, std::int64_t> index;
    for (std::size_t i = 0; i < out.class_names.size(); ++i)
      index[out.class_names[i]] = static_cast<std::int64_t>(i);
    for (const auto& t : raw_targets) y.push_back(index.at(t));
    out.num_classes = static_cast<std::int64_t>(out.class_names.size());
  }
  out.data.targets = ::torch::from_blob(y.data(), {rows}, ::torch::kLong).clone();
  return out;
}

// ---- mini-batches ----

BatchIterator::BatchIterator(const Dataset& data, std::vector<std::int64_t> order,
                             std::int64_t batch_size, std::int64_t start, bool drop_last)
    : data_(data),
      order_(std::move(order)),
      batch_size_(batch_size),
      position_(start),
      drop_last_(drop_last) {
  if (batch_size < 1) throw OptionError(fmt::format("batch size must be >= 1, got {}", batch_size));
  const auto n = static_cast<std::int64_t>(order_.size());
  if (start < 0 || start > n)
    throw OptionError(fmt::format("start position {} is outside the epoch (0..{})", start, n));
  for (auto i : order_)
    if (i < 0 || i >= data_.size())
      throw OptionError(
          fmt::format("example index {} is outside the data set (size {})", i, data_.size()));
}

bool BatchIterator::done() const {
  const auto n = static_cast<std::int64_t>(order_.size());
  const auto left = n - position_;
  return left <= 0 || (drop_last_ && left < batch_size_);
}

Batch BatchIterator::next() {
  if (done()) throw Error("BatchIterator::next() called after the last batch");
  const auto n = static_cast<std::int64_t>(order_.size());
  const auto end = std::min(n, position_ + batch_size_);
  std::vector<std::int64_t> idx(order_.begin() + position_, order_.begin() + end);
  auto t = index_tensor(idx);
  Batch b{data_.features.index_select(0, t), data_.targets.index_select(0, t),
          position_ / batch_size_, position_};
  position_ = end;
  return b;
}

std::int64_t BatchIterator::num_batches() const {
  const auto n = static_cast<std::int64_t>(order_.size());
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::int64_t BatchIterator::next_index() const {
  return position_ / batch_size_;
}

}  // namespace vigil::torch
