// Checkpoint folders. The whole-file XXH3 of every tensor file is computed while the bytes go
// out (write_safetensors hashes each block as it fills it), so committing never reads data back,
// and verifying a folder is one sequential pass over each file.
#include "vigil/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/core.h>
#include <fmt/format.h>

#include "detail/posix.hpp"
#include "detail/save_point.hpp"
#include "shared_files.hpp"
#include "vigil/sharded_files.hpp"
#include "xxh_state.hpp"

namespace vigil {

namespace {

constexpr std::string_view kFormat = "vigil-checkpoint/1";
// state.json is small (metrics, RNG, data order); anything bigger is hostile or broken.
constexpr std::uintmax_t kMaxStateBytes = std::uintmax_t{256} << 20;

using detail::errno_text;
using detail::new_xxh_state;

std::string hex64(std::uint64_t v) {
  return fmt::format("{:016x}", v);
}

std::optional<std::uint64_t> parse_hex64(const std::string& s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d = 0;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

bool is_plain_name(std::string_view s) {
  if (s.empty() || s.size() > 128 || s.front() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// Removing a half-written folder must not mask the error that caused it.
void remove_quietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
}

std::uint64_t hash_file(const std::filesystem::path& path, std::uint64_t expected_size) {
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    throw CheckpointError(fmt::format("cannot read {}: {}", path.string(), errno_text(err)));
  }
  auto state = new_xxh_state();
  std::vector<char> buf(std::size_t{1} << 20);
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      throw CheckpointError(fmt::format("cannot read {}: {}", path.string(), errno_text(err)));
    }
    if (n == 0) break;
    total += static_cast<std::uint64_t>(n);
    // Never hash past what state.json promised: a file growing under us is not the recorded one.
    if (total > expected_size) break;
    XXH3_64bits_update(state.get(), buf.data(), static_cast<size_t>(n));
  }
  if (total != expected_size) {
    throw CheckpointError(fmt::format("{} changed size while being read ({} bytes, expected {})",
                                      path.string(), total, expected_size));
  }
  return XXH3_64bits_digest(state.get());
}

// The checksum of state.json covers its canonical serialization without the "checksum" member;
// nlohmann's dump is deterministic (sorted keys, shortest round-trip numbers).
std::uint64_t state_checksum(nlohmann::json j) {
  j.erase("checksum");
  auto text = j.dump();
  return XXH3_64bits(text.data(), text.size());
}

void write_small_file(const std::filesystem::path& path, const std::string& text,
                      const std::shared_ptr<FileOps>& ops) {
  auto f = DurableFile::create(path, ops);
  f.write_all(std::as_bytes(std::span<const char>(text.data(), text.size())));
  f.sync();
  f.close();
}

struct Loaded {
  CheckpointInfo info;
  nlohmann::json state;
};

template <class T>
T get_field(const nlohmann::json& j, const char* key, const std::filesystem::path& file) {
  auto it = j.find(key);
  if (it == j.end())
    throw CheckpointError(fmt::format("{}: missing field \"{}\"", file.string(), key));
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    throw CheckpointError(fmt::format("{}: field \"{}\" has the wrong type", file.string(), key));
  }
}

Loaded load_checkpoint_unchecked(const std::filesystem::path& dir,
                                 const CheckpointVerifyOptions& options) {
  auto file = dir / kStateFileName;
  std::error_code ec;
  auto st = std::filesystem::status(dir, ec);
  if (ec || !std::filesystem::is_directory(st)) {
    throw CheckpointError(
        fmt::format("{} is not a checkpoint folder (no such folder)", dir.string()));
  }
  auto fst = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::is_regular_file(fst)) {
    throw CheckpointError(fmt::format("{}: {} is missing", dir.string(), kStateFileName));
  }
  auto size = std::filesystem::file_size(file, ec);
  if (ec || size > kMaxStateBytes) {
    throw CheckpointError(fmt::format("{}: {} bytes is too large for a state file (limit {})",
                                      file.string(), size, kMaxStateBytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) throw CheckpointError(fmt::format("cannot read {}", file.string()));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(
        fmt::format("{} is not valid JSON (truncated or corrupt): {}", file.string(), e.what()));
  }
  if (!j.is_object()) throw CheckpointError(fmt::format("{} is not a JSON object", file.string()));
  if (j.value("format", std::string()) != kFormat) {
    throw CheckpointError(
        fmt::format("{}: unknown format (expected \"{}\")", file.string(), kFormat));
  }
  auto stored = parse_hex64(get_field<std::string>(j, "checksum", file));
  if (!stored) throw CheckpointError(fmt::format("{}: malformed checksum", file.string()));
  if (auto got = state_checksum(j); got != *stored) {
    throw CheckpointError(
        fmt::format("{} is corrupt: stored checksum {} but its content hashes to {}", file.string(),
                    hex64(*stored), hex64(got)));
  }

  Loaded out;
  auto& info = out.info;
  info.name = dir.filename().string();
  info.path = dir;
  info.epoch = get_field<std::int64_t>(j, "epoch", file);
  info.step = get_field<std::int64_t>(j, "step", file);
  info.sequence = get_field<std::uint64_t>(j, "sequence", file);
  info.at = get_field<std::string>(j, "at", file) == "step" ? SavePoint::Step : SavePoint::EpochEnd;
  const auto& metrics = j.at("metrics");
  if (!metrics.is_object())
    throw CheckpointError(fmt::format("{}: metrics is not an object", file.string()));
  for (const auto& [k, v] : metrics.items()) {
    try {
      info.metrics[k] = number_from_json(v);
    } catch (const Error&) {
      throw CheckpointError(fmt::format("{}: metric \"{}\" is not a number", file.string(), k));
    }
  }
  auto files_it = j.find("files");
  if (files_it == j.end() || !files_it->is_object()) {
    throw CheckpointError(fmt::format("{}: \"files\" is missing or not an object", file.string()));
  }
  for (const auto& [name, entry] : files_it->items()) {
    if (!is_plain_name(name) || !name.ends_with(kTensorFileSuffix)) {
      throw CheckpointError(fmt::format("{}: bad file name \"{}\"", file.string(), name));
    }
    CheckpointFileInfo fi;
    fi.file = name;
    try {
      fi.bytes = entry.at("bytes").get<std::uint64_t>();
      auto h = parse_hex64(entry.at("xxh3").get<std::string>());
      if (!h) throw CheckpointError("");
      fi.xxh3 = *h;
    } catch (const std::exception&) {
      throw CheckpointError(fmt::format("{}: entry of {} is malformed", file.string(), name));
    }
    info.files.push_back(fi);
  }
  out.state = j.contains("state") ? j["state"] : nlohmann::json::object();
  if (j.contains("run_id")) info.run_id = get_field<std::string>(j, "run_id", file);

  for (const auto& fi : info.files) {
    auto path = dir / fi.file;
    auto s = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::is_regular_file(s)) {
      throw CheckpointError(fmt::format("{}: {} is missing", dir.string(), fi.file));
    }
    auto actual = std::filesystem::file_size(path, ec);
    if (ec || actual != fi.bytes) {
      throw CheckpointError(fmt::format("{}: {} has {} bytes but {} recorded {} (truncated?)",
                                        dir.string(), fi.file, actual, kStateFileName, fi.bytes));
    }
    try {
      (void)SafetensorsFile::open(path, SafetensorsReadOptions{}.with_verify_checksums(false));
    } catch (const Error& e) {
      throw CheckpointError(fmt::format("{}: {}: {}", dir.string(), fi.file, e.what()));
    }
    if (options.checksums) {
      auto h = hash_file(path, fi.bytes);
      if (h != fi.xxh3) {
        throw CheckpointError(
            fmt::format("{}: {} is corrupt: recorded XXH3-64 {} but the file hashes to {}",
                        dir.string(), fi.file, hex64(fi.xxh3), hex64(h)));
      }
    }
  }
  return out;
}

// A state.json of the right format but with surprising shapes must still end as one clear error.
Loaded load_checkpoint(const std::filesystem::path& dir, const CheckpointVerifyOptions& options) {
  try {
    return load_checkpoint_unchecked(dir, options);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(
        fmt::format("{}: {} is malformed: {}", dir.string(), kStateFileName, e.what()));
  } catch (const std::filesystem::filesystem_error& e) {
    throw CheckpointError(fmt::format("{}: {}", dir.string(), e.what()));
  }
}

CheckpointFileInfo write_planned(const std::filesystem::path& dir, const std::string& name,
                                 std::span<const TensorView> tensors, const SafetensorsPlan& plan,
                                 const CheckpointWriteOptions& options) {
  auto ops = options.ops ? options.ops : FileOps::real();
  auto f = DurableFile::create(dir / name, ops);
  const auto digest = write_planned_safetensors(f, tensors, plan,
                                                SafetensorsWriteOptions{}
                                                    .with_block_bytes(options.block_bytes)
                                                    .with_ops(ops)
                                                    .with_file_hash(true));
  f.sync();
  f.close();
  return CheckpointFileInfo{name, f.size(), *digest};
}

}  // namespace

std::uint64_t CheckpointInfo::total_bytes() const {
  std::uint64_t n = 0;
  for (const auto& f : files) n += f.bytes;
  return n;
}

bool CheckpointInfo::has_file(std::string_view stem) const {
  return std::any_of(files.begin(), files.end(), [&](const CheckpointFileInfo& f) {
    return f.file.size() == stem.size() + kTensorFileSuffix.size() && f.file.starts_with(stem) &&
           f.file.ends_with(kTensorFileSuffix);
  });
}

std::vector<ShareableFile> shareable_files(const CheckpointInfo& info) {
  std::vector<ShareableFile> out;
  out.reserve(info.files.size());
  for (const auto& f : info.files) out.push_back({info.path / f.file, f.bytes, f.xxh3});
  return out;
}

std::uint64_t xxh3_file(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw CheckpointError(fmt::format("cannot read {}: {}", path.string(), ec.message()));
  return hash_file(path, size);
}

std::string_view save_point_name(SavePoint at) {
  return at == SavePoint::Step ? "step" : "epoch_end";
}

CheckpointFileInfo write_checkpoint_file(const std::filesystem::path& dir, const std::string& name,
                                         std::span<const TensorView> tensors,
                                         const CheckpointWriteOptions& options,
                                         const Metadata& metadata) {
  return write_planned(dir, name, tensors, plan_safetensors(tensors, metadata), options);
}

CheckpointInfo write_checkpoint(const std::filesystem::path& dir, const CheckpointContent& content,
                                const CheckpointWriteOptions& options) {
  const auto& ops = options.ops ? options.ops : FileOps::real();
  if (!is_plain_name(dir.filename().string())) {
    throw OptionError(
        fmt::format("checkpoint folder name \"{}\" must be a plain name "
                    "([A-Za-z0-9_.-], not starting with '.')",
                    dir.filename().string()));
  }
  for (const auto& [stem, tensors] : content.files) {
    if (!is_plain_name(stem)) {
      throw OptionError(fmt::format(
          "tensor file stem \"{}\" must be a plain name ([A-Za-z0-9_.-], not starting with '.')",
          stem));
    }
  }
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(dir, ec))) {
    throw OptionError(fmt::format("cannot write checkpoint {}: it already exists", dir.string()));
  }

  nlohmann::json j = nlohmann::json::object();
  j["format"] = kFormat;
  j["epoch"] = content.epoch;
  j["step"] = content.step;
  j["at"] = save_point_name(content.at);
  j["sequence"] = content.sequence;
  j["metrics"] = nlohmann::json::object();
  for (const auto& [k, v] : content.metrics) j["metrics"][k] = number_to_json(v);
  j["state"] = content.state;
  if (!content.run_id.empty()) j["run_id"] = content.run_id;
  j["files"] = nlohmann::json::object();

  auto tmp = temporary_path_for(dir);
  if (ops->mkdir(tmp.c_str(), 0755) != 0) {
    int err = errno;
    throw IoError(
        fmt::format("cannot create checkpoint folder {}: {}", tmp.string(), errno_text(err)), err);
  }
  CheckpointInfo info;
  info.name = dir.filename().string();
  info.path = dir;
  detail::copy_save_point(info, content);
  info.sequence = content.sequence;
  info.run_id = content.run_id;
  // This checkpoint's own files are shared first: a file twice in one save is written once.
  std::vector<ShareableFile> written;
  try {
    for (const auto& [stem, tensors] : content.files) {
      const auto meta = content.metadata.find(stem);
      const auto name = stem + std::string(kTensorFileSuffix);
      const auto plan =
          plan_safetensors(tensors, meta == content.metadata.end() ? Metadata{} : meta->second);
      auto shared = detail::share_file(tmp, name, plan, written, *ops);
      if (!shared) shared = detail::share_file(tmp, name, plan, content.shareable, *ops);
      auto file = shared ? std::move(*shared)
                         : write_planned(tmp, name, tensors, plan,
                                         CheckpointWriteOptions(options).with_ops(ops));
      j["files"][file.file] = {{"bytes", file.bytes}, {"xxh3", hex64(file.xxh3)}};
      written.push_back({tmp / file.file, file.bytes, file.xxh3});
      info.files.push_back(std::move(file));
    }
    if (content.extra_files) {
      for (auto& f : content.extra_files(tmp)) {
        if (!is_plain_name(f.file) || j["files"].contains(f.file))
          throw OptionError(
              fmt::format("extra checkpoint file \"{}\" is not a plain name or is "
                          "listed twice",
                          f.file));
        j["files"][f.file] = {{"bytes", f.bytes}, {"xxh3", hex64(f.xxh3)}};
        info.files.push_back(std::move(f));
      }
      std::sort(info.files.begin(), info.files.end(),
                [](const auto& a, const auto& b) { return a.file < b.file; });
    }
    for (const auto& [stem, index] : content.indexes) {
      if (!is_plain_name(stem))
        throw OptionError(fmt::format("shard index stem \"{}\" is not a plain name", stem));
      write_small_file(tmp / shard_index_file_name(stem), index.dump(2) + "\n", ops);
    }
    j["checksum"] = hex64(state_checksum(j));
    std::string text;
    try {
      text = j.dump(1);
    } catch (const nlohmann::json::exception& e) {
      throw OptionError(fmt::format("checkpoint state cannot be written as JSON: {}", e.what()));
    }
    text.push_back('\n');
    write_small_file(tmp / kStateFileName, text, ops);
    fsync_dir(tmp, ops);
    rename_path(tmp, dir, ops);
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  try {
    fsync_dir(dir.parent_path(), ops);
  } catch (...) {
    // The rename may not survive a crash; take the folder back out of the committed names so no
    // one trusts it, then report.
    auto doomed = temporary_path_for(dir);
    if (::rename(dir.c_str(), doomed.c_str()) == 0) remove_quietly(doomed);
    throw;
  }
  return info;
}

CheckpointInfo verify_checkpoint(const std::filesystem::path& dir,
                                 const CheckpointVerifyOptions& options) {
  return load_checkpoint(dir, options).info;
}

Checkpoint::Checkpoint(CheckpointInfo info, nlohmann::json state, bool verified)
    : info_(std::move(info)), state_(std::move(state)), verified_(verified) {}

Checkpoint Checkpoint::open(const std::filesystem::path& dir,
                            const CheckpointVerifyOptions& options) {
  auto loaded = load_checkpoint(dir, options);
  return Checkpoint(std::move(loaded.info), std::move(loaded.state), options.checksums);
}

std::filesystem::path Checkpoint::file_path(std::string_view stem) const {
  if (!has_file(stem)) {
    std::string names;
    for (const auto& f : info_.files) names += (names.empty() ? "" : ", ") + f.file;
    throw CheckpointError(fmt::format("{}: no {}{} (it has {})", info_.path.string(), stem,
                                      kTensorFileSuffix,
                                      names.empty() ? "no tensor files" : names));
  }
  return info_.path / (std::string(stem) + std::string(kTensorFileSuffix));
}

SafetensorsFile Checkpoint::open_file(std::string_view stem) const {
  return SafetensorsFile::open(file_path(stem),
                               SafetensorsReadOptions{}.with_verify_checksums(!verified_));
}

SafetensorsFile Checkpoint::open_file_unchecked(std::string_view stem) const {
  return SafetensorsFile::open(file_path(stem),
                               SafetensorsReadOptions{}.with_verify_checksums(false));
}

std::uint64_t Checkpoint::file_xxh3(std::string_view stem) const {
  const auto name = file_path(stem).filename().string();
  for (const auto& f : info_.files)
    if (f.file == name) return f.xxh3;
  throw CheckpointError(fmt::format("{}: no {} in {}", info_.path.string(), name,
                                    kStateFileName));  // unreachable: file_path() checked it
}

}  // namespace vigil
