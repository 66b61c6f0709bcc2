// The checkpoint policy. The disk is the source of truth: every checkpoint's state.json carries
// its metrics and sequence number, so the manager's state (what is kept, what is best, what is
// newest) is rebuilt from the folders on open, and the manifest is an index written after them.
#include "vigil/checkpoint_manager.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <set>
#include <system_error>

#include <fmt/core.h>

#include "detail/posix.hpp"
#include "detail/save_point.hpp"
#include "detail/text.hpp"
#include "shared_files.hpp"
#include "vigil/async_saver.hpp"
#include "vigil/retention.hpp"
#include "vigil/template.hpp"

namespace vigil {

namespace fs = std::filesystem;

namespace {

// A field that names no metric at an epoch's end is a typo ({epoc}, {val_los}), not a metric
// missing now and then: saves inside an epoch may lack metrics and render "none", but folders
// named "none" for a whole run help nobody.
void check_fields_at_epoch_end(const NameTemplate& tmpl, const SaveRequest& request) {
  if (request.at != SavePoint::EpochEnd) return;
  for (const auto& f : tmpl.fields()) {
    if (f == "epoch" || f == "step" || request.metrics.count(f) > 0) continue;
    std::string known;
    for (const auto& [name, value] : request.metrics) known += (known.empty() ? "" : ", ") + name;
    throw OptionError(fmt::format(
        "filename template field {{{}}} is neither epoch, step nor one of this epoch's metrics "
        "({}): check its spelling",
        f, known.empty() ? "none were logged" : known));
  }
}

using detail::errno_text;

std::string read_small(const fs::path& p, std::size_t limit) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::string s(limit, '\0');
  in.read(s.data(), static_cast<std::streamsize>(limit));
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

// Copies a committed file through the durable writer (so the fault seam sees every write).
// Keras' strict improvement of `v` on the best so far, or, before any best, on the threshold;
// NaN never improves.
bool improves_on(Mode mode, double v, const std::optional<double>& best,
                 const std::optional<double>& threshold) {
  if (best) return is_improvement(mode, v, *best, 0.0);
  if (threshold) return is_improvement(mode, v, *threshold, 0.0);
  return !std::isnan(v);
}

// Removes the leftovers of interrupted writes in `dirs` (temporary checkpoint folders, manifest,
// last, best copies) and lists them, relative to `run_dir`, in the report.
void remove_leftovers(const fs::path& run_dir, std::initializer_list<fs::path> dirs,
                      OpenReport& report) {
  std::error_code ec;
  for (const auto& dir : dirs) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      auto name = e.path().filename().string();
      if (!is_temporary_name(name)) continue;
      std::error_code rec;
      fs::remove_all(e.path(), rec);
      report.removed_leftovers.push_back(fs::relative(e.path(), run_dir, rec).string());
    }
  }
}

// The intact checkpoints in `cdir`, oldest first; damaged ones go to report.skipped.
std::vector<CheckpointInfo> list_intact(const fs::path& cdir, bool checksums, OpenReport& report) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cdir, ec)) {
    auto name = e.path().filename().string();
    if (!e.is_directory() || is_temporary_name(name)) continue;
    try {
      out.push_back(
          verify_checkpoint(e.path(), CheckpointVerifyOptions{}.with_checksums(checksums)));
    } catch (const CheckpointError& err) {
      report.skipped.emplace_back(name, err.what());
    }
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return std::tie(a.sequence, a.step, a.epoch, a.name) <
           std::tie(b.sequence, b.step, b.epoch, b.name);
  });
  return out;
}

// Points `last` at the newest intact checkpoint (or removes it when there is none) and reports
// what was wrong with it.
void repair_last(const fs::path& last_file, const std::vector<CheckpointInfo>& entries,
                 OpenReport& report, const std::shared_ptr<FileOps>& ops) {
  std::error_code ec;
  std::string pointed;
  if (fs::exists(fs::symlink_status(last_file, ec)))
    pointed = std::string(detail::trim(read_small(last_file, 4096)));
  const bool last_ok = !entries.empty() && pointed == entries.back().name;
  if (!pointed.empty() && !last_ok) {
    bool exists = std::any_of(entries.begin(), entries.end(),
                              [&](const CheckpointInfo& e) { return e.name == pointed; });
    if (!exists) {
      report.last_problem =
          fmt::format("last names \"{}\", which is not an intact checkpoint", pointed);
    }
  } else if (pointed.empty() && !entries.empty()) {
    report.last_problem = "last is missing";
  }
  if (!entries.empty() && !last_ok) {
    atomic_write_file(last_file, entries.back().name + "\n", ops);
  } else if (entries.empty() && !pointed.empty()) {
    fs::remove(last_file, ec);
  }
}

// Publishes the best checkpoint's file `stem` (the model, or its average) as `best_path` unless an
// identical copy is there (by size, and by hash when `verify`). Returns the record of the file
// best/ now holds, or nothing when the checkpoint has no such file.
// Opening a run whose folder holds a checkpoint of another run would resume someone else's
// training under this run's name.
void refuse_other_runs(const std::vector<CheckpointInfo>& entries, const std::string& run_id) {
  if (run_id.empty()) return;
  for (const auto& e : entries)
    if (!e.run_id.empty() && e.run_id != run_id)
      throw InputError(fmt::format(
          "checkpoint {} belongs to another run (run id {}, this run's is {}): it was copied in "
          "from elsewhere; move it out of {} to resume this run",
          e.path.string(), e.run_id, run_id, e.path.parent_path().string()));
}

nlohmann::json optional_int_json(const std::optional<int>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// The tensors of the shards that `request` gives for file `stem` (by its index), still in memory;
// empty when the file is not sharded or the index is not what the manager reads.
std::vector<TensorView> shard_views(const SaveRequest& request, const std::string& stem) {
  std::vector<TensorView> out;
  const auto index = request.indexes.find(stem);
  if (index == request.indexes.end() || !index->second.is_object() ||
      !index->second.contains("weight_map") || !index->second["weight_map"].is_object())
    return out;
  std::set<std::string> stems;
  for (const auto& file : index->second["weight_map"]) {
    if (!file.is_string()) return {};
    auto name = file.get<std::string>();
    if (!name.ends_with(kTensorFileSuffix)) return {};
    name.resize(name.size() - kTensorFileSuffix.size());
    stems.insert(std::move(name));
  }
  for (const auto& s : stems) {
    const auto it = request.files.find(s);
    if (it == request.files.end()) return {};
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

}  // namespace

fs::path CheckpointManager::checkpoints_dir(const fs::path& run_dir) {
  return run_dir / "checkpoints";
}
fs::path CheckpointManager::best_model_path(const fs::path& run_dir) {
  return run_dir / "best" / "model.safetensors";
}
fs::path CheckpointManager::last_path(const fs::path& run_dir) {
  return run_dir / "last";
}
fs::path CheckpointManager::manifest_path(const fs::path& run_dir) {
  return checkpoints_dir(run_dir) / "manifest.json";
}

CheckpointManager::CheckpointManager(fs::path run_dir, CheckpointManagerOptions options)
    : run_dir_(std::move(run_dir)), options_(std::move(options)) {
  options_.validate();
  if (!options_.ops) options_.ops = FileOps::real();
  if (!options_.monitor.empty()) mode_ = resolve_mode(options_.monitor, options_.mode);
  lock_ = RunLock::acquire(run_dir_);
  load();
  last_save_time_ = std::chrono::steady_clock::now();
}

CheckpointManager::CheckpointManager(fs::path run_dir, CheckpointManagerOptions options,
                                     RunLock lock)
    : run_dir_(std::move(run_dir)), options_(std::move(options)), lock_(std::move(lock)) {
  std::error_code ec;
  if (!lock_.held() || !fs::equivalent(lock_.path(), run_dir_ / kRunLockFileName, ec))
    throw OptionError(fmt::format("CheckpointManager was given a lock that is not held on {}",
                                  run_dir_.string()));
  options_.validate();
  if (!options_.ops) options_.ops = FileOps::real();
  if (!options_.monitor.empty()) mode_ = resolve_mode(options_.monitor, options_.mode);
  load();
  last_save_time_ = std::chrono::steady_clock::now();
}

CheckpointManager::~CheckpointManager() {
  // AsyncSaver's destructor waits for the flight and logs its error; it must finish before the
  // state it writes into goes away.
  saver_.reset();
}

std::optional<double> CheckpointManager::metric_of(const CheckpointInfo& info) const {
  if (options_.monitor.empty()) return std::nullopt;
  auto it = info.metrics.find(options_.monitor);
  if (it == info.metrics.end()) return std::nullopt;
  return it->second;
}

void CheckpointManager::load() {
  std::error_code ec;
  auto cdir = checkpoints_dir(run_dir_);
  fs::create_directories(cdir, ec);
  if (ec) {
    throw IoError(fmt::format("cannot create {}: {}", cdir.string(), ec.message()), ec.value());
  }
  remove_leftovers(run_dir_, {run_dir_, cdir, best_model_path(run_dir_).parent_path()}, report_);
  entries_ = list_intact(cdir, options_.verify_on_open, report_);
  refuse_other_runs(entries_, options_.run_id);
  for (const auto& e : entries_) next_sequence_ = std::max(next_sequence_, e.sequence + 1);
  // Replaying Keras' strict-improvement rule over the kept checkpoints gives the same best as the
  // uninterrupted run had: the best one is never deleted, and all others were not better.
  for (const auto& e : entries_) {
    auto v = metric_of(e);
    if (v && improves_on(mode_, *v, best_value_, options_.initial_value_threshold)) {
      best_name_ = e.name;
      best_value_ = *v;
    }
  }
  // Bring best/, last and the manifest in line with the disk after a crash between the steps of
  // a save (only this process writes here: it holds the lock).
  repair_last(last_path(run_dir_), entries_, report_, options_.ops);
  if (best_name_) {
    const auto& b = *std::find_if(entries_.begin(), entries_.end(),
                                  [&](const CheckpointInfo& e) { return e.name == *best_name_; });
    best_copy_ = detail::repair_best_copy(best_model_path(run_dir_), b, options_.best_stem,
                                          options_.verify_on_open, options_.ops);
    if (best_copy_) best_published_ = true;
  }
  write_manifest();
}

bool CheckpointManager::should_save(std::int64_t epoch, std::int64_t step,
                                    std::chrono::steady_clock::time_point now, SavePoint at) const {
  if (options_.save_every_seconds > 0 &&
      std::chrono::duration<double>(now - last_save_time_).count() >= options_.save_every_seconds) {
    return true;
  }
  if (at == SavePoint::EpochEnd) {
    auto n = options_.save_every_n_epochs;
    return n > 0 && (epoch + 1) % n == 0;
  }
  auto n = options_.save_every_n_steps;
  return n > 0 && step > 0 && step % n == 0;
}

void CheckpointManager::drain() {
  if (!saver_) return;
  auto done = saver_->wait();
  for (auto& r : done) finished_.push_back(std::move(r));
}

SaveResult CheckpointManager::save(const SaveRequest& request) {
  drain();
  last_save_time_ = std::chrono::steady_clock::now();
  return save_now(request);
}

AsyncSaver& CheckpointManager::async_saver() {
  if (!saver_) {
    saver_ =
        std::make_unique<AsyncSaver>([this](const SaveRequest& r) { return save_now(r); },
                                     AsyncSaverOptions{}.with_coalesce(options_.async_coalesce));
  }
  return *saver_;
}

void CheckpointManager::save_async(const SaveRequest& request) {
  if (request.extra_files)
    throw OptionError("save_async: a request with extra_files must be saved with save()");
  auto& saver = async_saver();
  last_save_time_ = std::chrono::steady_clock::now();
  saver.submit(request);
}

void CheckpointManager::reserve_async(const SaveRequest& request) {
  async_saver().prepare(request);
}

std::size_t CheckpointManager::async_buffer_bytes() const {
  return saver_ ? saver_->buffer_bytes() : 0;
}

std::size_t CheckpointManager::async_buffer_allocations() const {
  return saver_ ? saver_->buffer_allocations() : 0;
}

void CheckpointManager::submit(const SaveRequest& request) {
  if (options_.async)
    save_async(request);
  else
    (void)save(request);
}

std::vector<SaveResult> CheckpointManager::wait() {
  drain();
  return std::exchange(finished_, {});
}

SaveResult CheckpointManager::save_now(const SaveRequest& request) {
  SaveResult result;
  std::optional<double> value;
  if (!options_.monitor.empty()) {
    if (const double* v = find_metric(request.metrics, options_.monitor, false)) value = *v;
  }
  const bool improves =
      value && improves_on(mode_, *value, best_value_, options_.initial_value_threshold);
  if (options_.save_best_only && !improves) {
    result.reason =
        !value ? fmt::format("not saved: {} is not among the metrics and save_best_only is set",
                             options_.monitor)
        : best_value_
            ? fmt::format("not saved: {} = {} did not improve on the best {}", options_.monitor,
                          detail::human_number(*value), detail::human_number(*best_value_))
            : fmt::format("not saved: {} = {} did not beat initial_value_threshold {}",
                          options_.monitor, detail::human_number(*value),
                          detail::human_number(*options_.initial_value_threshold));
    return result;
  }

  auto cdir = checkpoints_dir(run_dir_);
  const auto tmpl = NameTemplate::parse(options_.filename);
  check_fields_at_epoch_end(tmpl, request);
  auto base = tmpl.render(request.epoch, request.step, request.metrics);
  std::string name = base;
  std::error_code ec;
  for (int v = 1; fs::exists(fs::symlink_status(cdir / name, ec)) || name == "manifest.json"; ++v) {
    name = fmt::format("{}-v{}", base, v);
  }
  CheckpointContent content;
  detail::copy_save_point(content, request);
  content.files = request.files;
  content.metadata = request.metadata;
  content.state = request.state;
  content.sequence = next_sequence_;
  content.run_id = options_.run_id;
  content.extra_files = request.extra_files;
  content.indexes = request.indexes;
  if (options_.share_unchanged_files)
    for (auto e = entries_.rbegin(); e != entries_.rend(); ++e) {  // newest first
      const auto files = shareable_files(*e);
      content.shareable.insert(content.shareable.end(), files.begin(), files.end());
    }
  auto info =
      write_checkpoint(cdir / name, content, CheckpointWriteOptions{}.with_ops(options_.ops));
  ++next_sequence_;
  entries_.push_back(info);
  result.saved = true;
  result.checkpoint = info;

  if (improves) {
    best_name_ = info.name;
    best_value_ = *value;
    best_published_ = false;
    result.is_best = true;
  }
  // A best/ copy that failed earlier is retried here, so best/ never stays stale for long.
  if (best_name_ && !best_published_) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const CheckpointInfo& e) { return e.name == *best_name_; });
    // The checkpoint just written is still in memory: a merged best/ copies from there.
    const auto memory = it != entries_.end() && it->name == info.name
                            ? shard_views(request, options_.best_stem)
                            : std::vector<TensorView>{};
    if (it != entries_.end())
      if (auto copy = detail::publish_best(*it, options_.best_stem, best_model_path(run_dir_),
                                           options_.ops, memory))
        best_copy_ = std::move(copy);
    best_published_ = true;
  }
  atomic_write_file(last_path(run_dir_), info.name + "\n", options_.ops);
  rotate(result);
  write_manifest();
  return result;
}

std::vector<CheckpointRecord> CheckpointManager::retention_records() const {
  std::vector<CheckpointRecord> records;
  records.reserve(entries_.size());
  for (const auto& e : entries_) {
    records.push_back({.name = e.name,
                       .sequence = e.sequence,
                       .epoch = e.epoch,
                       .step = e.step,
                       .epoch_end = e.at == SavePoint::EpochEnd,
                       .value = metric_of(e),
                       .is_best = best_name_ && e.name == *best_name_,
                       .is_newest = &e == &entries_.back()});
  }
  return records;
}

void CheckpointManager::rotate(SaveResult& result) {
  const auto plan = retention_plan(options_, retention_records());
  if (plan.remove.empty()) return;
  const std::set<std::string> doomed_names(plan.remove.begin(), plan.remove.end());
  auto cdir = checkpoints_dir(run_dir_);
  std::vector<CheckpointInfo> kept;
  std::exception_ptr first_error;
  for (auto& e : entries_) {
    if (!doomed_names.count(e.name)) {
      kept.push_back(std::move(e));
      continue;
    }
    // Renaming to a temporary name first: a crash half-way through the removal leaves a name
    // that the next open deletes, never a half-deleted "checkpoint".
    auto doomed = temporary_path_for(e.path);
    if (options_.ops->rename(e.path.c_str(), doomed.c_str()) != 0) {
      int err = errno;
      if (!first_error) {
        first_error =
            std::make_exception_ptr(IoError(fmt::format("cannot remove rotated checkpoint {}: {}",
                                                        e.path.string(), errno_text(err)),
                                            err));
      }
      kept.push_back(std::move(e));
      continue;
    }
    std::error_code ec;
    fs::remove_all(doomed, ec);
    result.removed.push_back(e.name);
  }
  entries_ = std::move(kept);
  if (!result.removed.empty()) fsync_dir(cdir, options_.ops);
  if (first_error) std::rethrow_exception(first_error);
}

nlohmann::json CheckpointManager::manifest_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["format"] = "vigil-manifest/1";
  j["monitor"] = options_.monitor;
  j["mode"] = options_.monitor.empty() ? nlohmann::json(nullptr) : nlohmann::json(mode_name(mode_));
  j["best"] = best_name_ ? nlohmann::json(*best_name_) : nlohmann::json(nullptr);
  j["best_value"] = best_value_ ? number_to_json(*best_value_) : nlohmann::json(nullptr);
  j["best_file"] = options_.best_stem + std::string(kTensorFileSuffix);
  // What best/ holds (null until it holds a copy): verify tells a stale or foreign best/ apart
  // from one a save was interrupted in updating.
  j["best_copy"] = best_copy_ ? nlohmann::json{{"bytes", best_copy_->bytes},
                                               {"xxh3", fmt::format("{:016x}", best_copy_->xxh3)}}
                              : nlohmann::json(nullptr);
  j["run_id"] = options_.run_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(options_.run_id);
  j["last"] = entries_.empty() ? nlohmann::json(nullptr) : nlohmann::json(entries_.back().name);
  j["next_sequence"] = next_sequence_;
  j["policy"] = {{"save_top_k", optional_int_json(options_.save_top_k)},
                 {"keep_last", optional_int_json(options_.keep_last)},
                 {"keep_every_n_epochs", options_.keep_every_n_epochs},
                 {"save_best_only", options_.save_best_only},
                 {"filename", options_.filename}};
  auto list = nlohmann::json::array();
  for (const auto& e : entries_) {
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [k, v] : e.metrics) m[k] = number_to_json(v);
    nlohmann::json files = nlohmann::json::object();
    for (const auto& f : e.files)
      files[f.file] = {{"bytes", f.bytes}, {"xxh3", fmt::format("{:016x}", f.xxh3)}};
    list.push_back({{"name", e.name},
                    {"epoch", e.epoch},
                    {"step", e.step},
                    {"at", save_point_name(e.at)},
                    {"sequence", e.sequence},
                    {"metrics", m},
                    {"files", files}});
  }
  j["checkpoints"] = list;
  return j;
}

void CheckpointManager::write_manifest() {
  atomic_write_file(manifest_path(run_dir_), manifest_json().dump(1) + "\n", options_.ops);
}

std::vector<CheckpointInfo> CheckpointManager::checkpoints() {
  drain();
  return entries_;
}

std::optional<CheckpointInfo> CheckpointManager::latest() {
  drain();
  if (entries_.empty()) return std::nullopt;
  return entries_.back();
}

std::optional<CheckpointInfo> CheckpointManager::best() {
  drain();
  if (!best_name_) return std::nullopt;
  for (const auto& e : entries_)
    if (e.name == *best_name_) return e;
  return std::nullopt;
}

std::optional<double> CheckpointManager::best_value() {
  drain();
  return best_value_;
}

Checkpoint CheckpointManager::open(std::string_view name) {
  drain();
  for (const auto& e : entries_) {
    if (e.name == name) {
      // Verified when listed or written; reopening re-reads state.json and the headers only.
      return Checkpoint::open(e.path, CheckpointVerifyOptions{}.with_checksums(false));
    }
  }
  std::string names;
  for (const auto& e : entries_) names += (names.empty() ? "" : ", ") + e.name;
  throw CheckpointError(fmt::format("no intact checkpoint named \"{}\" in {} (there are: {})", name,
                                    checkpoints_dir(run_dir_).string(),
                                    names.empty() ? "none" : names));
}

nlohmann::json CheckpointManager::manifest() {
  drain();
  return manifest_json();
}

}  // namespace vigil
