// Optimizer state for SGD, Adam, AdamW, RMSprop, Adagrad: per-parameter tensors + param groups.
// The per-optimizer fields live in one table each (optimizer_state/traits.hpp); the code here is
// written once over those tables.
#include "vigil/torch/optimizer_state.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/compat.hpp"
#include "optimizer_state/traits.hpp"

namespace vigil::torch {

namespace optim = ::torch::optim;
using nlohmann::json;
using optimizer_traits::Betas;
using optimizer_traits::kAllKinds;
using optimizer_traits::visit_traits;

namespace {

constexpr std::string_view kStatePrefix = "state.";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "sgd, adam, adamw, rmsprop, adagrad", with `last` ("or") before the last name if given.
std::string supported_names(std::string_view last = {}) {
  std::string out;
  for (std::size_t k = 0; k < kAllKinds.size(); ++k) {
    if (k > 0)
      out += (k + 1 == kAllKinds.size() && !last.empty()) ? fmt::format(" {} ", last) : ", ";
    out += optimizer_name(kAllKinds[k]);
  }
  return out;
}

std::string c10_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  return msg;
}

// ---- param-group options <-> JSON ----

// One option value from JSON; `where` is "<optimizer> option '<key>'" for the error.
void read_value(const json& v, const std::string& where, double& out) {
  if (!v.is_number()) throw OptionError(fmt::format("{} must be a number", where));
  out = v.get<double>();
}
void read_value(const json& v, const std::string& where, bool& out) {
  if (!v.is_boolean()) throw OptionError(fmt::format("{} must be true or false", where));
  out = v.get<bool>();
}
void read_value(const json& v, const std::string& where, Betas& out) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
    throw OptionError(fmt::format("{} must be two numbers, e.g. [0.9, 0.999]", where));
  out = {v[0].get<double>(), v[1].get<double>()};
}

json value_json(double v) {
  return v;
}
json value_json(bool v) {
  return v;
}
json value_json(const Betas& v) {
  return json::array({std::get<0>(v), std::get<1>(v)});
}

template <typename T>
std::vector<std::string> option_names() {
  std::vector<std::string> names;
  optimizer_traits::for_each_option<T>([&](const auto& field) { names.emplace_back(field.name); });
  return names;
}

// Sets the options `j` names on `options` (others keep their value); throws OptionError for an
// unknown name or a value of the wrong type. The key "params" is the group's parameter list.
template <typename T>
void apply_options(const json& j, optim::OptimizerOptions& options) {
  if (!j.is_object()) throw OptionError(fmt::format("{} options must be a JSON object", T::name));
  const auto known = option_names<T>();
  for (const auto& [key, value] : j.items()) {
    if (key != "params" && std::find(known.begin(), known.end(), key) == known.end())
      throw OptionError(
          fmt::format("unknown {} option '{}' (known: {})", T::name, key, fmt::join(known, ", ")));
  }
  auto& o = dynamic_cast<typename T::Options&>(options);
  optimizer_traits::for_each_option<T>([&](const auto& field) {
    const std::string key(field.name);
    if (!j.contains(key)) return;
    typename std::remove_cvref_t<decltype(field)>::Value value{};
    read_value(j[key], fmt::format("{} option '{}'", T::name, key), value);
    (o.*field.set)(value);
  });
}

template <typename T>
json options_to_json(const optim::OptimizerOptions& options) {
  const auto& o = dynamic_cast<const typename T::Options&>(options);
  json j = json::object();
  optimizer_traits::for_each_option<T>(
      [&](const auto& field) { j[std::string(field.name)] = value_json((o.*field.get)()); });
  return j;
}

// ---- per-parameter state <-> named tensors ----

struct ParamFields {
  std::optional<std::int64_t> step;
  std::map<std::string, ::torch::Tensor> tensors;  // only defined ones, so saved in name order
};

template <typename T>
ParamFields read_fields(const optim::OptimizerParamState& s) {
  const auto& st = dynamic_cast<const typename T::State&>(s);
  ParamFields f;
  if constexpr (T::has_step) f.step = st.step();
  for (const auto& field : T::tensors)
    if (const auto& t = (st.*field.get)(); t.defined()) f.tensors[std::string(field.name)] = t;
  return f;
}

template <typename T>
std::unique_ptr<optim::OptimizerParamState> make_param_state(const ParamFields& f) {
  auto st = std::make_unique<typename T::State>();
  if constexpr (T::has_step) st->step(f.step.value_or(0));
  for (const auto& field : T::tensors)
    if (auto it = f.tensors.find(std::string(field.name)); it != f.tensors.end())
      ((*st).*field.set)(it->second);
  return st;
}

template <typename T>
bool keeps_tensor(std::string_view name) {
  return std::any_of(T::tensors.begin(), T::tensors.end(),
                     [&](const auto& field) { return field.name == name; });
}

// ---- parameter names ----

// Parameter TensorImpl -> state_dict name in `module`.
std::map<const void*, std::string> parameter_names(const ::torch::nn::Module& module) {
  std::map<const void*, std::string> names;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    names.emplace(p.value().unsafeGetTensorImpl(), p.key());
  return names;
}

std::vector<std::vector<std::string>> group_param_names(const optim::Optimizer& optimizer,
                                                        const ::torch::nn::Module& module) {
  auto names = parameter_names(module);
  std::vector<std::vector<std::string>> out;
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    std::vector<std::string> group;
    const auto& params = optimizer.param_groups()[g].params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto it = names.find(params[i].unsafeGetTensorImpl());
      if (it == names.end())
        throw OptionError(fmt::format(
            "the optimizer's param group {} holds a tensor (index {}, shape [{}]) that is not a "
            "parameter of the module; pass the module the optimizer was built over",
            g, i, fmt::join(params[i].sizes(), ", ")));
      group.push_back(it->second);
    }
    out.push_back(std::move(group));
  }
  return out;
}

// ---- capture ----

template <typename T>
OptimizerState capture(const optim::Optimizer& optimizer,
                       const std::vector<std::vector<std::string>>& names) {
  OptimizerState out;
  out.json = {{"optimizer", T::name}, {"param_groups", json::array()}};
  const auto& state = optimizer.state();
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const auto& group = optimizer.param_groups()[g];
    json jg = options_to_json<T>(group.options());
    jg["params"] = names[g];
    out.json["param_groups"].push_back(std::move(jg));
    for (std::size_t i = 0; i < group.params().size(); ++i) {
      auto it = state.find(compat::optimizer_state_key(group.params()[i]));
      if (it == state.end()) continue;
      const auto fields = read_fields<T>(*it->second);
      const std::string prefix = std::string(kStatePrefix) + names[g][i] + ".";
      if (fields.step)
        out.tensors.add(prefix + "step", ::torch::scalar_tensor(*fields.step, ::torch::kLong));
      for (const auto& [field, t] : fields.tensors) out.tensors.add(prefix + field, t);
    }
  }
  return out;
}

// ---- restore: check everything, then change the optimizer ----

// Where each parameter name sits in the optimizer: (group, index).
using ParamIndex = std::map<std::string, std::pair<std::size_t, std::size_t>>;

// The "param_groups" array of `j`, once it is the state of this optimizer's kind and group count.
const json& saved_groups(const json& j, std::string_view kind_name, std::size_t group_count) {
  if (!j.is_object() || !j.contains("optimizer") || !j["optimizer"].is_string() ||
      !j.contains("param_groups") || !j["param_groups"].is_array())
    throw InputError(
        "optimizer state JSON must be an object with \"optimizer\" and \"param_groups\"");
  const std::string saved_kind = j["optimizer"].get<std::string>();
  if (saved_kind != kind_name)
    throw InputError(fmt::format("the saved optimizer state is for {}, the optimizer is {}",
                                 saved_kind, kind_name));
  const auto& groups = j["param_groups"];
  if (groups.size() != group_count)
    throw InputError(fmt::format("the saved optimizer state has {} param groups, the optimizer {}",
                                 groups.size(), group_count));
  return groups;
}

// Each group's saved options applied to a copy of its live options, so a failure changes nothing.
template <typename T>
std::vector<std::unique_ptr<optim::OptimizerOptions>> saved_options(
    const optim::Optimizer& optimizer, const json& groups,
    const std::vector<std::vector<std::string>>& names, std::vector<std::string>& problems) {
  std::vector<std::unique_ptr<optim::OptimizerOptions>> out;
  for (std::size_t g = 0; g < names.size(); ++g) {
    const auto& jg = groups[g];
    if (!jg.is_object() || !jg.contains("params") || !jg["params"].is_array()) {
      problems.push_back(fmt::format("param group {} has no \"params\" list", g));
      continue;
    }
    std::vector<std::string> saved_names;
    for (const auto& n : jg["params"])
      saved_names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
    if (saved_names != names[g])
      problems.push_back(fmt::format("param group {} holds [{}] in the file, [{}] in the optimizer",
                                     g, fmt::join(saved_names, ", "), fmt::join(names[g], ", ")));
    auto options = optimizer.param_groups()[g].options().clone();
    try {
      apply_options<T>(jg, *options);
    } catch (const OptionError& e) {
      problems.push_back(fmt::format("param group {}: {}", g, e.what()));
    }
    out.push_back(std::move(options));
  }
  return out;
}

// Files `v` under its parameter in `fields` if it fits that parameter; else names the problem.
template <typename T>
void sort_tensor(const TensorView& v, const optim::Optimizer& optimizer, const ParamIndex& index,
                 std::map<std::string, ParamFields>& fields, std::vector<std::string>& problems) {
  const std::string_view name = v.name;
  const auto dot = name.rfind('.');
  if (!name.starts_with(kStatePrefix) || dot == std::string_view::npos ||
      dot < kStatePrefix.size()) {
    problems.push_back(fmt::format("unexpected tensor '{}'", name));
    return;
  }
  const std::string param(name.substr(kStatePrefix.size(), dot - kStatePrefix.size()));
  const std::string field(name.substr(dot + 1));
  const auto pit = index.find(param);
  if (pit == index.end()) {
    problems.push_back(
        fmt::format("'{}' is state for '{}', which the optimizer does not hold", name, param));
    return;
  }
  const auto& p = optimizer.param_groups()[pit->second.first].params()[pit->second.second];
  if (field == "step" && T::has_step) {
    if (v.dtype != DType::I64 || !v.shape.empty() || v.data.size() != 8)
      problems.push_back(fmt::format("'{}' must be an I64 scalar", name));
    else
      fields[param].step = to_tensor(v).item<std::int64_t>();
    return;
  }
  if (!keeps_tensor<T>(field)) {
    problems.push_back(fmt::format("'{}': {} keeps no '{}'", name, T::name, field));
    return;
  }
  auto t = to_tensor(v);
  if (t.sizes() != p.sizes()) {
    problems.push_back(fmt::format("'{}' has shape [{}], the parameter [{}]", name,
                                   fmt::join(t.sizes(), ", "), fmt::join(p.sizes(), ", ")));
  } else if (t.scalar_type() != p.scalar_type()) {
    problems.push_back(fmt::format("'{}' is {}, the parameter {}", name, dtype_name(v.dtype),
                                   dtype_name(to_dtype(p.scalar_type()))));
  } else {
    fields[param].tensors[field] = t.to(p.device());
  }
}

// Names every parameter whose state step() could not use: no step count, or a tensor its group's
// options make step() read.
template <typename T>
void check_complete(const std::map<std::string, ParamFields>& fields, const ParamIndex& index,
                    const std::vector<std::unique_ptr<optim::OptimizerOptions>>& options,
                    std::vector<std::string>& problems) {
  for (const auto& [param, f] : fields) {
    if (T::has_step && !f.step) problems.push_back(fmt::format("'{}' has no step count", param));
    const auto& o = dynamic_cast<const typename T::Options&>(*options[index.at(param).first]);
    for (const auto& field : T::tensors)
      if (field.needed(o) && !f.tensors.count(std::string(field.name)))
        problems.push_back(fmt::format("state of '{}' lacks '{}'", param, field.name));
  }
}

void throw_if_any(const std::vector<std::string>& problems) {
  if (!problems.empty())
    throw InputError(fmt::format("cannot load optimizer state: {}", fmt::join(problems, "; ")));
}

template <typename T>
void restore(optim::Optimizer& optimizer, const std::vector<std::vector<std::string>>& names,
             const json& j, std::span<const TensorView> tensors) {
  const auto& groups = saved_groups(j, T::name, names.size());
  std::vector<std::string> problems;
  auto options = saved_options<T>(optimizer, groups, names, problems);
  throw_if_any(problems);

  ParamIndex index;
  for (std::size_t g = 0; g < names.size(); ++g)
    for (std::size_t i = 0; i < names[g].size(); ++i) index[names[g][i]] = {g, i};
  std::map<std::string, ParamFields> fields;
  for (const auto& v : tensors) sort_tensor<T>(v, optimizer, index, fields, problems);
  check_complete<T>(fields, index, options, problems);
  throw_if_any(problems);

  for (std::size_t g = 0; g < names.size(); ++g)
    optimizer.param_groups()[g].set_options(std::move(options[g]));
  auto& state = optimizer.state();
  for (std::size_t g = 0; g < names.size(); ++g) {
    for (std::size_t i = 0; i < names[g].size(); ++i) {
      const auto& p = optimizer.param_groups()[g].params()[i];
      auto it = fields.find(names[g][i]);
      // No step taken for a parameter yet: PyTorch has no entry for it either.
      if (it == fields.end())
        state.erase(compat::optimizer_state_key(p));
      else
        state[compat::optimizer_state_key(p)] = make_param_state<T>(it->second);
    }
  }
}

}  // namespace

std::string_view optimizer_name(OptimizerKind kind) {
  if (std::find(kAllKinds.begin(), kAllKinds.end(), kind) == kAllKinds.end()) return "?";
  return visit_traits(kind, [](auto t) { return decltype(t)::name; });
}

OptimizerKind parse_optimizer(std::string_view name) {
  const auto n = lower(name);
  for (auto k : kAllKinds)
    if (n == optimizer_name(k)) return k;
  throw OptionError(fmt::format("unknown optimizer '{}' (supported: {})", name, supported_names()));
}

OptimizerKind optimizer_kind(const optim::Optimizer& optimizer) {
  // AdamW does not derive from Adam in libtorch, so the casts are unambiguous.
  for (auto k : kAllKinds) {
    const bool match = visit_traits(k, [&](auto t) {
      return dynamic_cast<const typename decltype(t)::Optimizer*>(&optimizer) != nullptr;
    });
    if (match) return k;
  }
  if (dynamic_cast<const optim::LBFGS*>(&optimizer))
    throw OptionError(fmt::format(
        "LBFGS state cannot be checkpointed by vigil (its history lives outside the per-parameter "
        "state); use {}",
        supported_names("or")));
  throw OptionError(fmt::format(
      "this optimizer type is not supported for checkpointing (supported: {})", supported_names()));
}

std::unique_ptr<optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                 std::vector<::torch::Tensor> params,
                                                 const json& options) {
  const json opts = options.is_null() ? json::object() : options;
  try {
    return visit_traits(kind, [&](auto t) -> std::unique_ptr<optim::Optimizer> {
      using T = decltype(t);
      auto o = T::default_options();
      apply_options<T>(opts, o);
      return std::make_unique<typename T::Optimizer>(std::move(params), o);
    });
  } catch (const c10::Error& e) {
    throw OptionError(fmt::format("{}: {}", optimizer_name(kind), c10_message(e)));
  }
}

OptimizerState optimizer_state(const optim::Optimizer& optimizer,
                               const ::torch::nn::Module& module) {
  const auto kind = optimizer_kind(optimizer);
  const auto names = group_param_names(optimizer, module);
  return visit_traits(kind, [&](auto t) { return capture<decltype(t)>(optimizer, names); });
}

void load_optimizer_state(optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const json& j, std::span<const TensorView> tensors) {
  const auto kind = optimizer_kind(optimizer);
  const auto names = group_param_names(optimizer, module);
  visit_traits(kind, [&](auto t) { restore<decltype(t)>(optimizer, names, j, tensors); });
}

void save_optimizer_state(const std::filesystem::path& path, const optim::Optimizer& optimizer,
                          const ::torch::nn::Module& module) {
  auto state = optimizer_state(optimizer, module);
  auto views = state.tensors.views();
  Metadata metadata{{std::string(kOptimizerMetadataKey), state.json.dump()}};
  save_safetensors(path, views, metadata);
}

void load_optimizer_state(optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const SafetensorsFile& file) {
  auto it = file.metadata().find(std::string(kOptimizerMetadataKey));
  if (it == file.metadata().end())
    throw InputError(
        fmt::format("the file holds no optimizer state (no '{}' metadata)", kOptimizerMetadataKey));
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("the optimizer state metadata is not valid JSON: {}", e.what()));
  }
  std::vector<TensorView> views;
  for (const auto& info : file.tensors()) views.push_back(file.view(info.name));
  load_optimizer_state(optimizer, module, j, views);
}

void load_optimizer_state(optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const std::filesystem::path& path) {
  auto file = SafetensorsFile::open(path);
  try {
    load_optimizer_state(optimizer, module, file);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", path.string(), e.what()));
  }
}

double get_learning_rate(const optim::Optimizer& optimizer) {
  if (optimizer.param_groups().empty()) throw OptionError("the optimizer has no param groups");
  return optimizer.param_groups()[0].options().get_lr();
}

void set_learning_rate(optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace vigil::torch
