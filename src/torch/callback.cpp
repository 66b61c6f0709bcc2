// TrainContext snapshots and restores, and CallbackList's dispatch rules.
#include "vigil/torch/callback.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"

namespace vigil::torch {

namespace {

NamedTensors tensors_of(const SafetensorsFile& file) {
  NamedTensors out;
  for (const auto& info : file.tensors()) out.add(info.name, to_tensor(file.view(info.name)));
  return out;
}

NamedTensors tensors_of(const std::vector<SafetensorsFile>& shards) {
  NamedTensors out;
  for (const auto& f : shards) out.append(tensors_of(f), "");
  return out;
}

std::vector<TensorView> views_of(const SafetensorsFile& file) {
  std::vector<TensorView> out;
  out.reserve(file.tensors().size());
  for (const auto& info : file.tensors()) out.push_back(file.view(info.name));
  return out;
}

std::vector<TensorView> views_of(const std::vector<SafetensorsFile>& shards) {
  std::vector<TensorView> out;
  for (const auto& f : shards)
    for (const auto& info : f.tensors()) out.push_back(f.view(info.name));
  return out;
}

// A callback's own checkpoint file must not collide with the checkpoint's or another one's.
void check_state_file(const Callback& callback,
                      const std::vector<std::shared_ptr<Callback>>& others) {
  const auto stem = callback.state_file();
  if (stem.empty()) return;
  const bool plain = std::all_of(stem.begin(), stem.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
  if (!plain || stem == kModelStem || stem == RestorePoint::kOptimizerStem ||
      stem == RestorePoint::kCallbacksStem)
    throw OptionError(
        fmt::format("callback '{}' asks for the checkpoint file '{}': it must be a plain name "
                    "([A-Za-z0-9_-]) other than model, optimizer and callbacks",
                    callback.name(), stem));
  for (const auto& c : others)
    if (c->state_file() == stem)
      throw OptionError(fmt::format(
          "callbacks '{}' and '{}' both checkpoint into {}.safetensors: give one another file",
          c->name(), callback.name(), stem));
}

template <class T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
  return j.at(key).get<T>();
}

// Best effort for a scheduler stepped by hand outside vigil: the checkpoint's lr changed during
// its run (its logged lrs, or its optimizer's lr against this run's starting one) while no
// learning-rate callback state was saved with it. A warning, not a refusal: the optimizer's lr is
// restored exactly, and the loop may well recompute the lr itself (or ReduceLROnPlateau was
// dropped on purpose); only a hand-stepped scheduler restarting from scratch would be wrong.
std::optional<std::string> unexplained_lr_change(const TrainContext& ctx, const nlohmann::json& s,
                                                 const nlohmann::json& states, double fresh_lr) {
  if (ctx.optimizer == nullptr || ctx.optimizer->param_groups().empty()) return std::nullopt;
  bool has_lr_state = !get_or<std::vector<std::string>>(s, "lr_callbacks", {}).empty();
  for (const auto& name : ctx.callbacks->lr_callbacks())
    has_lr_state = has_lr_state || states.contains(name);
  if (has_lr_state) return std::nullopt;
  const double now = get_learning_rate(*ctx.optimizer);
  std::optional<double> first;  // the first lr known to differ from the restored one
  if (!std::isnan(fresh_lr) && fresh_lr != now) first = fresh_lr;
  for (const auto& r : ctx.history)
    if (auto it = r.logs.find("lr"); !first && it != r.logs.end() && it->second != now)
      first = it->second;
  if (!first) return std::nullopt;
  return fmt::format(
      "the learning rate changed during the checkpointed run ({} -> {}) but no learning-rate "
      "callback state was saved with it: training goes on at lr {}, and a scheduler stepped by "
      "hand outside vigil starts over now (checkpoint it with vigil::torch::LibtorchLRScheduler "
      "or use LRSchedule)",
      *first, now, now);
}

struct OptionChange {
  std::string option;
  nlohmann::json from, to;
};

std::string shown(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The recorded run options this run gives another value; throws InputError naming the first one
// not marked as an intended override.
std::vector<OptionChange> changed_run_options(const TrainContext& ctx, const nlohmann::json& s,
                                              const std::filesystem::path& path) {
  std::vector<OptionChange> changed;
  if (!s.contains("run_options") || !s.at("run_options").is_object()) return changed;
  if (!ctx.run_options.is_object())
    throw OptionError("TrainContext::run_options must be a JSON object");
  for (const auto& [name, recorded] : s.at("run_options").items()) {
    if (!ctx.run_options.contains(name) || ctx.run_options.at(name) == recorded) continue;
    const auto& now = ctx.run_options.at(name);
    if (ctx.resume_overrides.count(name) == 0)
      throw InputError(fmt::format(
          "cannot resume from {}: {} was {} when it was saved, this run has {}; resume with {} = "
          "{}, or name \"{}\" in the resume overrides to change it on purpose",
          path.string(), name, shown(recorded), shown(now), name, shown(recorded), name));
    changed.push_back({name, recorded, now});
  }
  return changed;
}

// Keeps the checkpoint's history of overrides and adds this resume's.
void record_overrides(TrainContext& ctx, const nlohmann::json& s,
                      const std::vector<OptionChange>& changed) {
  ctx.overrides = s.contains("overrides") && s.at("overrides").is_array() ? s.at("overrides")
                                                                          : nlohmann::json::array();
  ctx.overridden.clear();
  for (const auto& c : changed) {
    ctx.overrides.push_back(
        {{"option", c.option}, {"from", c.from}, {"to", c.to}, {"step", ctx.global_step}});
    ctx.overridden.insert(c.option);
    ctx.warnings.push_back(fmt::format("resuming with {} = {} instead of {}, as asked (override)",
                                       c.option, shown(c.to), shown(c.from)));
  }
}

}  // namespace

nlohmann::json logs_to_json(const Logs& logs) {
  auto j = nlohmann::json::object();
  for (const auto& [k, v] : logs) j[k] = number_to_json(v);
  return j;
}

Logs logs_from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw InputError("metrics logs in a checkpoint are not a JSON object");
  Logs logs;
  for (const auto& [k, v] : json.items()) logs[k] = number_from_json(v);
  return logs;
}

RestorePoint RestorePoint::from(const Checkpoint& checkpoint) {
  RestorePoint p;
  p.path = checkpoint.info().path;
  // A verified folder was hashed whole: its shards are not hashed again.
  const auto read = SafetensorsReadOptions{}.with_verify_checksums(!checkpoint.verified());
  if (!checkpoint.has_file(kModelStem)) {
    auto shards = open_sharded(p.path, kModelStem, read);
    if (!shards)
      throw InputError(fmt::format("{}: the checkpoint has no model.safetensors", p.path.string()));
    p.model_shards = std::move(shards->shards);
  } else {
    if (checkpoint.verified()) {
      p.model = checkpoint.open_file(kModelStem);
    } else {
      // Hashed while the weights are read into the model: one pass over the largest file.
      p.model = checkpoint.open_file_unchecked(kModelStem);
      p.model_xxh3 = checkpoint.file_xxh3(kModelStem);
    }
  }
  if (checkpoint.has_file(kOptimizerStem))
    p.optimizer = checkpoint.open_file(kOptimizerStem);
  else if (auto o = open_sharded(p.path, kOptimizerStem, read))
    p.optimizer_shards = std::move(o->shards);
  if (checkpoint.has_file(kCallbacksStem)) p.callbacks = checkpoint.open_file(kCallbacksStem);
  p.state = checkpoint.state();
  // Only the files state.json names: a stem is opened once it is known to be a callback's.
  const auto names = p.state.is_object() ? p.state.value("callback_files", nlohmann::json::object())
                                         : nlohmann::json::object();
  if (names.is_object())
    for (const auto& entry : names.items()) {
      if (!entry.value().is_string()) continue;
      const auto stem = entry.value().get<std::string>();
      if (checkpoint.has_file(stem)) {
        p.callback_files[stem].push_back(checkpoint.open_file(stem));
      } else if (auto shards = open_sharded(p.path, stem, read)) {
        p.callback_files[stem] = std::move(shards->shards);
      }
    }
  return p;
}

RestorePoint RestorePoint::open(const std::filesystem::path& dir) {
  return from(Checkpoint::open(dir));
}

vigil::TensorFiles TrainingSnapshot::files() const {
  vigil::TensorFiles f;
  f[std::string(kModelStem)] = model.views();
  if (!optimizer.empty()) f[RestorePoint::kOptimizerStem] = optimizer.views();
  if (!callbacks.empty()) f[RestorePoint::kCallbacksStem] = callbacks.views();
  for (const auto& [stem, tensors] : callback_files) f[stem] = tensors.views();
  return f;
}

TrainingSnapshot TrainingSnapshot::clone() const {
  std::map<std::string, NamedTensors, std::less<>> files;
  for (const auto& [stem, tensors] : callback_files) files.emplace(stem, tensors.clone());
  return TrainingSnapshot{
      model.clone(), optimizer.clone(), callbacks.clone(), std::move(files), state, metadata,
      frozen};
}

std::int64_t TrainContext::planned_steps() const {
  if (max_steps > 0) return max_steps;
  return static_cast<std::int64_t>(epochs) * steps_per_epoch;
}

void TrainContext::request_stop(std::string reason) {
  if (!stop_training) stop_reason = std::move(reason);
  stop_training = true;
}

TrainingSnapshot TrainContext::snapshot(const Logs& metrics) const {
  if (!model) throw OptionError("TrainContext::snapshot: no model in the training context");
  TrainingSnapshot snap;
  snap.model = module_state(*model);
  for (const auto& p : model->named_parameters(true))
    if (!p.value().requires_grad()) snap.frozen.push_back(p.key());
  Metadata meta = model_metadata;
  for (auto& [key, value] : tied_metadata(*model)) meta[key] = value;
  if (!meta.empty()) snap.metadata["model"] = meta;
  nlohmann::json& s = snap.state;
  s = nlohmann::json::object();
  if (optimizer != nullptr) {
    auto os = optimizer_state(*optimizer, *model);
    snap.optimizer = std::move(os.tensors);
    s["optimizer"] = std::move(os.json);
  }
  if (callbacks != nullptr) {
    snap.callbacks = callbacks->state_tensors();
    snap.callback_files = callbacks->state_files();
    // A file of the model's tensors (averaged weights) says the same about them.
    for (const auto& [stem, tensors] : snap.callback_files)
      if (!meta.empty() && tensors.same_names(snap.model)) snap.metadata[stem] = meta;
    s["callbacks"] = callbacks->states();
    s["required_callbacks"] = callbacks->required_states();
    s["lr_callbacks"] = callbacks->lr_callbacks();
    s["callback_files"] = callbacks->state_file_names();
  } else {
    s["callbacks"] = nlohmann::json::object();
    s["callback_files"] = nlohmann::json::object();
  }
  s["epoch"] = epoch;
  s["batch"] = batch;
  s["epoch_complete"] = epoch_complete;
  s["steps_per_epoch"] = steps_per_epoch;
  s["epochs"] = epochs;
  s["global_step"] = global_step;
  s["data_epoch"] = data_epoch;
  s["max_steps"] = max_steps;
  s["val_every_n_steps"] = val_every_n_steps;
  s["accumulate"] = accumulate;
  if (data != nullptr) s["data"] = data->state();
  auto hist = nlohmann::json::array();
  for (const auto& r : history)
    hist.push_back({{"epoch", r.epoch}, {"step", r.step}, {"logs", logs_to_json(r.logs)}});
  s["history"] = std::move(hist);
  // An interruption is not a decision about the run: the resumed run must go on.
  const bool stopped = stop_training && !interrupted;
  s["stop_training"] = stopped;
  s["stop_reason"] = stopped ? stop_reason : std::string();
  s["rng"] = torch_rng_state_json();
  s["loop"] = loop;
  s["extra"] = extra;
  s["metrics"] = logs_to_json(metrics);
  s["run_options"] = run_options;
  s["overrides"] = overrides;
  return snap;
}

void TrainContext::restore(const RestorePoint& point) {
  if (!model) throw OptionError("TrainContext::restore: no model in the training context");
  const auto& s = point.state;
  if (!s.is_object())
    throw InputError(fmt::format("{}: state.json is not a JSON object", point.path.string()));
  if (!point.model && point.model_shards.empty())
    throw InputError(
        fmt::format("{}: the checkpoint has no model.safetensors", point.path.string()));
  // Before anything changes: a refused resume leaves the run as it was.
  const auto changed = changed_run_options(*this, s, point.path);
  try {
    // Everything that can fail on a mismatch is checked by these loaders before they change
    // anything; the model goes first because it is the most likely to differ (another --hidden).
    // Corrupt weights found while they are read in (model_xxh3) end the restore with an error
    // that says the model is partly overwritten.
    if (point.model)
      load_module_state(*model, *point.model, LoadStateOptions{}.with_file_xxh3(point.model_xxh3));
    else
      load_module_state(*model, views_of(point.model_shards));
    // The lr this run's optimizer starts with, to tell whether the checkpoint's differs.
    const double fresh_lr = optimizer != nullptr && !optimizer->param_groups().empty()
                                ? get_learning_rate(*optimizer)
                                : std::numeric_limits<double>::quiet_NaN();
    if (optimizer != nullptr) {
      if (!s.contains("optimizer"))
        throw InputError("it holds no optimizer state, but this run has an optimizer");
      const auto views =
          point.optimizer ? views_of(*point.optimizer) : views_of(point.optimizer_shards);
      load_optimizer_state(*optimizer, *model, s.at("optimizer"), views);
    }
    if (s.contains("rng")) set_torch_rng_state_json(s.at("rng"));

    epoch = get_or<int>(s, "epoch", 0);
    batch = get_or<std::int64_t>(s, "batch", 0);
    global_step = get_or<std::int64_t>(s, "global_step", 0);
    epoch_complete = get_or<bool>(s, "epoch_complete", false);
    data_epoch = get_or<std::int64_t>(s, "data_epoch", epoch);
    data_restored = false;
    if (data != nullptr && s.contains("data") && !s.at("data").is_null()) {
      data->accept_overrides(resume_overrides);
      data->load_state(s.at("data"));
      data_restored = true;
    }
    if (epoch_complete) {
      ++epoch;
      batch = 0;
      epoch_complete = false;
    }
    history.clear();
    for (const auto& r : s.value("history", nlohmann::json::array()))
      history.push_back(EpochRecord{r.at("epoch").get<int>(), r.at("step").get<std::int64_t>(),
                                    logs_from_json(r.at("logs"))});
    stop_training = get_or<bool>(s, "stop_training", false);
    stop_reason = get_or<std::string>(s, "stop_reason", "");
    interrupted = false;
    loop = s.value("loop", nlohmann::json::object());
    if (callbacks != nullptr) {
      const auto states = s.value("callbacks", nlohmann::json::object());
      callbacks->load_states(states, get_or<std::vector<std::string>>(s, "required_callbacks", {}));
      if (point.callbacks) callbacks->load_state_tensors(tensors_of(*point.callbacks));
      callbacks->load_state_files(point);
      if (auto w = unexplained_lr_change(*this, s, states, fresh_lr)) warnings.push_back(*w);
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(
        fmt::format("{}: state.json is malformed ({})", point.path.string(), e.what()));
  } catch (const StateDictError& e) {
    throw InputError(
        fmt::format("cannot resume from {}: the model differs: {}", point.path.string(), e.what()));
  } catch (const InputError& e) {
    throw InputError(fmt::format("cannot resume from {}: {}", point.path.string(), e.what()));
  }
  record_overrides(*this, s, changed);
  resumed_from = point.path;
}

CallbackList::CallbackList(std::vector<std::shared_ptr<Callback>> callbacks) {
  for (auto& c : callbacks) add(std::move(c));
}

CallbackList& CallbackList::add(std::shared_ptr<Callback> callback) {
  if (!callback) throw OptionError("CallbackList::add: null callback");
  const auto name = callback->name();
  for (const auto& c : callbacks_)
    if (c->name() == name)
      throw OptionError(fmt::format(
          "two callbacks are named '{}': give one another name (their checkpointed states would "
          "collide)",
          name));
  check_state_file(*callback, callbacks_);
  callbacks_.push_back(std::move(callback));
  return *this;
}

void CallbackList::on_train_begin(TrainContext& ctx, const Logs& logs) {
  ctx.callbacks = this;
  for (auto& c : callbacks_) c->on_train_begin(ctx, logs);
  if (ctx.pending_restore) {
    // Moved out first: a failed restore must not be retried by the next on_train_begin.
    RestorePoint point = std::move(*ctx.pending_restore);
    ctx.pending_restore.reset();
    ctx.restore(point);
    for (auto& c : callbacks_) c->on_resume(ctx);
  }
}

void CallbackList::on_train_end(TrainContext& ctx, const Logs& logs) {
  for (auto& c : callbacks_) c->on_train_end(ctx, logs);
}

void CallbackList::on_epoch_begin(TrainContext& ctx, int epoch, const Logs& logs) {
  ctx.epoch = epoch;
  ctx.epoch_complete = false;
  for (auto& c : callbacks_) c->on_epoch_begin(ctx, epoch, logs);
}

void CallbackList::on_epoch_end(TrainContext& ctx, int epoch, const Logs& logs) {
  ctx.epoch = epoch;
  ctx.epoch_complete = true;
  ctx.history.push_back(EpochRecord{epoch, ctx.global_step, logs});
  for (auto& c : callbacks_) c->on_epoch_end(ctx, epoch, logs);
}

void CallbackList::on_batch_begin(TrainContext& ctx, std::int64_t batch, const Logs& logs) {
  for (auto& c : callbacks_) c->on_batch_begin(ctx, batch, logs);
}

void CallbackList::on_batch_end(TrainContext& ctx, std::int64_t batch, const Logs& logs) {
  for (auto& c : callbacks_) c->on_batch_end(ctx, batch, logs);
}

void CallbackList::on_after_backward(TrainContext& ctx) {
  for (auto& c : callbacks_) c->on_after_backward(ctx);
}

void CallbackList::on_before_optimizer_step(TrainContext& ctx) {
  for (auto& c : callbacks_) c->on_before_optimizer_step(ctx);
}

void CallbackList::on_validation_begin(TrainContext& ctx) {
  for (auto& c : callbacks_) c->on_validation_begin(ctx);
}

void CallbackList::on_validation_end(TrainContext& ctx, const Logs& logs) {
  for (auto& c : callbacks_) c->on_validation_end(ctx, logs);
}

void CallbackList::on_interrupt(TrainContext& ctx) {
  ctx.interrupted = true;
  for (auto& c : callbacks_) c->on_interrupt(ctx);
}

nlohmann::json CallbackList::states() const {
  auto j = nlohmann::json::object();
  for (const auto& c : callbacks_) {
    auto s = c->state();
    if (!s.is_null()) j[c->name()] = std::move(s);
  }
  return j;
}

std::vector<std::string> CallbackList::required_states() const {
  std::vector<std::string> names;
  for (const auto& c : callbacks_)
    if (c->state_required_on_resume()) names.push_back(c->name());
  return names;
}

std::vector<std::string> CallbackList::lr_callbacks() const {
  std::vector<std::string> names;
  for (const auto& c : callbacks_)
    if (c->changes_learning_rate()) names.push_back(c->name());
  return names;
}

void CallbackList::load_states(const nlohmann::json& states,
                               const std::vector<std::string>& required) {
  if (!states.is_object()) throw InputError("callback states in a checkpoint are not an object");
  // Checked before any state is handed out, so that no callback is left half-restored.
  for (const auto& c : callbacks_)
    if (c->state_required_on_resume() && !states.contains(c->name()))
      throw InputError(fmt::format(
          "it holds no state for the callback '{}' (it was written by a run without it): resuming "
          "would restart it from scratch; resume without that callback, or start a fresh run",
          c->name()));
  for (const auto& name : required)
    if (std::none_of(callbacks_.begin(), callbacks_.end(),
                     [&](const auto& c) { return c->name() == name; }))
      throw InputError(fmt::format(
          "it was written with the callback '{}', which this run lacks: resuming would silently "
          "drop it; resume with the same callback (and options), or start a fresh run",
          name));
  for (auto& c : callbacks_) {
    auto it = states.find(c->name());
    if (it != states.end()) c->load_state(*it);
  }
}

NamedTensors CallbackList::state_tensors() const {
  NamedTensors all;
  for (const auto& c : callbacks_)
    if (c->state_file().empty()) all.append(c->state_tensors(), c->name() + "/");
  return all;
}

nlohmann::json CallbackList::state_file_names() const {
  auto j = nlohmann::json::object();
  for (const auto& c : callbacks_)
    if (auto stem = c->state_file(); !stem.empty()) j[c->name()] = std::move(stem);
  return j;
}

std::map<std::string, NamedTensors, std::less<>> CallbackList::state_files() const {
  std::map<std::string, NamedTensors, std::less<>> out;
  for (const auto& c : callbacks_) {
    auto stem = c->state_file();
    if (stem.empty()) continue;
    auto tensors = c->state_tensors();
    if (!tensors.empty()) out.emplace(std::move(stem), std::move(tensors));
  }
  return out;
}

void CallbackList::load_state_files(const RestorePoint& point) {
  for (auto& c : callbacks_) {
    const auto stem = c->state_file();
    if (stem.empty()) continue;
    if (auto it = point.callback_files.find(stem); it != point.callback_files.end())
      c->load_state_tensors(tensors_of(it->second));
  }
}

void CallbackList::load_state_tensors(const NamedTensors& tensors) {
  // Callbacks with a file of their own are included: checkpoints written before they had one
  // (EarlyStopping's best weights) hold their tensors here, prefixed.
  for (auto& c : callbacks_) {
    const std::string prefix = c->name() + "/";
    NamedTensors mine;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& n = tensors.names()[i];
      if (n.rfind(prefix, 0) == 0) mine.add(n.substr(prefix.size()), tensors.tensors()[i]);
    }
    if (!mine.empty()) c->load_state_tensors(mine);
  }
}

}  // namespace vigil::torch
