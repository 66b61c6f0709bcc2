// Optimizer state for SGD, Adam, AdamW, RMSprop, Adagrad: per-parameter tensors + param groups.
#include "vigil/torch/optimizer_state.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vigil::torch {

namespace optim = ::torch::optim;
using nlohmann::json;

namespace {

constexpr std::string_view kStatePrefix = "state.";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// libtorch keys its state map by the address of the parameter's TensorImpl, printed.
std::string state_key(const ::torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

// The per-parameter tensor fields each optimizer keeps, besides the step count.
const std::vector<std::string>& tensor_fields(OptimizerKind kind) {
  static const std::vector<std::string> sgd{"momentum_buffer"};
  static const std::vector<std::string> adam{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static const std::vector<std::string> rmsprop{"square_avg", "momentum_buffer", "grad_avg"};
  static const std::vector<std::string> adagrad{"sum"};
  switch (kind) {
    case OptimizerKind::SGD:
      return sgd;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return adam;
    case OptimizerKind::RMSprop:
      return rmsprop;
    case OptimizerKind::Adagrad:
      return adagrad;
  }
  return sgd;
}

bool has_step(OptimizerKind kind) {
  return kind != OptimizerKind::SGD;
}

// ---- param-group options <-> JSON ----

const std::vector<std::string>& option_names(OptimizerKind kind) {
  static const std::vector<std::string> sgd{"lr", "momentum", "dampening", "weight_decay",
                                            "nesterov"};
  static const std::vector<std::string> adam{"lr", "betas", "eps", "weight_decay", "amsgrad"};
  static const std::vector<std::string> rmsprop{"lr",           "alpha",    "eps",
                                                "weight_decay", "momentum", "centered"};
  static const std::vector<std::string> adagrad{"lr", "lr_decay", "weight_decay",
                                                "initial_accumulator_value", "eps"};
  switch (kind) {
    case OptimizerKind::SGD:
      return sgd;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return adam;
    case OptimizerKind::RMSprop:
      return rmsprop;
    case OptimizerKind::Adagrad:
      return adagrad;
  }
  return sgd;
}

// Reads option `key` of `j` into `out` if present, with a type check; E is the error to throw.
template <typename E>
struct OptionReader {
  const json& j;
  OptimizerKind kind;

  void check_names() const {
    if (!j.is_object())
      throw E(fmt::format("{} options must be a JSON object", optimizer_name(kind)));
    const auto& known = option_names(kind);
    for (const auto& [key, value] : j.items()) {
      if (key == "params") continue;
      if (std::find(known.begin(), known.end(), key) == known.end())
        throw E(fmt::format("unknown {} option '{}' (known: {})", optimizer_name(kind), key,
                            fmt::join(known, ", ")));
    }
  }
  void read(const char* key, double& out) const {
    if (!j.contains(key)) return;
    if (!j[key].is_number())
      throw E(fmt::format("{} option '{}' must be a number", optimizer_name(kind), key));
    out = j[key].get<double>();
  }
  void read(const char* key, bool& out) const {
    if (!j.contains(key)) return;
    if (!j[key].is_boolean())
      throw E(fmt::format("{} option '{}' must be true or false", optimizer_name(kind), key));
    out = j[key].get<bool>();
  }
  void read(const char* key, std::tuple<double, double>& out) const {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
      throw E(fmt::format("{} option '{}' must be two numbers, e.g. [0.9, 0.999]",
                          optimizer_name(kind), key));
    out = {v[0].get<double>(), v[1].get<double>()};
  }
};

template <typename E>
void apply_options(OptimizerKind kind, const json& j, optim::OptimizerOptions& options) {
  OptionReader<E> r{j, kind};
  r.check_names();
  switch (kind) {
    case OptimizerKind::SGD: {
      auto& o = dynamic_cast<optim::SGDOptions&>(options);
      r.read("lr", o.lr());
      r.read("momentum", o.momentum());
      r.read("dampening", o.dampening());
      r.read("weight_decay", o.weight_decay());
      r.read("nesterov", o.nesterov());
      break;
    }
    case OptimizerKind::Adam: {
      auto& o = dynamic_cast<optim::AdamOptions&>(options);
      r.read("lr", o.lr());
      r.read("betas", o.betas());
      r.read("eps", o.eps());
      r.read("weight_decay", o.weight_decay());
      r.read("amsgrad", o.amsgrad());
      break;
    }
    case OptimizerKind::AdamW: {
      auto& o = dynamic_cast<optim::AdamWOptions&>(options);
      r.read("lr", o.lr());
      r.read("betas", o.betas());
      r.read("eps", o.eps());
      r.read("weight_decay", o.weight_decay());
      r.read("amsgrad", o.amsgrad());
      break;
    }
    case OptimizerKind::RMSprop: {
      auto& o = dynamic_cast<optim::RMSpropOptions&>(options);
      r.read("lr", o.lr());
      r.read("alpha", o.alpha());
      r.read("eps", o.eps());
      r.read("weight_decay", o.weight_decay());
      r.read("momentum", o.momentum());
      r.read("centered", o.centered());
      break;
    }
    case OptimizerKind::Adagrad: {
      auto& o = dynamic_cast<optim::AdagradOptions&>(options);
      r.read("lr", o.lr());
      r.read("lr_decay", o.lr_decay());
      r.read("weight_decay", o.weight_decay());
      r.read("initial_accumulator_value", o.initial_accumulator_value());
      r.read("eps", o.eps());
      break;
    }
  }
}

json options_to_json(OptimizerKind kind, const optim::OptimizerOptions& options) {
  json j = json::object();
  auto betas = [](const std::tuple<double, double>& b) {
    return json::array({std::get<0>(b), std::get<1>(b)});
  };
  switch (kind) {
    case OptimizerKind::SGD: {
      const auto& o = dynamic_cast<const optim::SGDOptions&>(options);
      j = {{"lr", o.lr()},
           {"momentum", o.momentum()},
           {"dampening", o.dampening()},
           {"weight_decay", o.weight_decay()},
           {"nesterov", o.nesterov()}};
      break;
    }
    case OptimizerKind::Adam: {
      const auto& o = dynamic_cast<const optim::AdamOptions&>(options);
      j = {{"lr", o.lr()},
           {"betas", betas(o.betas())},
           {"eps", o.eps()},
           {"weight_decay", o.weight_decay()},
           {"amsgrad", o.amsgrad()}};
      break;
    }
    case OptimizerKind::AdamW: {
      const auto& o = dynamic_cast<const optim::AdamWOptions&>(options);
      j = {{"lr", o.lr()},
           {"betas", betas(o.betas())},
           {"eps", o.eps()},
           {"weight_decay", o.weight_decay()},
           {"amsgrad", o.amsgrad()}};
      break;
    }
    case OptimizerKind::RMSprop: {
      const auto& o = dynamic_cast<const optim::RMSpropOptions&>(options);
      j = {{"lr", o.lr()},
           {"alpha", o.alpha()},
           {"eps", o.eps()},
           {"weight_decay", o.weight_decay()},
           {"momentum", o.momentum()},
           {"centered", o.centered()}};
      break;
    }
    case OptimizerKind::Adagrad: {
      const auto& o = dynamic_cast<const optim::AdagradOptions&>(options);
      j = {{"lr", o.lr()},
           {"lr_decay", o.lr_decay()},
           {"weight_decay", o.weight_decay()},
           {"initial_accumulator_value", o.initial_accumulator_value()},
           {"eps", o.eps()}};
      break;
    }
  }
  return j;
}

// ---- per-parameter state <-> named tensors ----

struct ParamFields {
  std::optional<std::int64_t> step;
  std::map<std::string, ::torch::Tensor> tensors;  // only defined ones
};

ParamFields read_fields(OptimizerKind kind, const optim::OptimizerParamState& s) {
  ParamFields f;
  auto put = [&](const char* name, const ::torch::Tensor& t) {
    if (t.defined()) f.tensors[name] = t;
  };
  switch (kind) {
    case OptimizerKind::SGD: {
      const auto& st = dynamic_cast<const optim::SGDParamState&>(s);
      put("momentum_buffer", st.momentum_buffer());
      break;
    }
    case OptimizerKind::Adam: {
      const auto& st = dynamic_cast<const optim::AdamParamState&>(s);
      f.step = st.step();
      put("exp_avg", st.exp_avg());
      put("exp_avg_sq", st.exp_avg_sq());
      put("max_exp_avg_sq", st.max_exp_avg_sq());
      break;
    }
    case OptimizerKind::AdamW: {
      const auto& st = dynamic_cast<const optim::AdamWParamState&>(s);
      f.step = st.step();
      put("exp_avg", st.exp_avg());
      put("exp_avg_sq", st.exp_avg_sq());
      put("max_exp_avg_sq", st.max_exp_avg_sq());
      break;
    }
    case OptimizerKind::RMSprop: {
      const auto& st = dynamic_cast<const optim::RMSpropParamState&>(s);
      f.step = st.step();
      put("square_avg", st.square_avg());
      put("momentum_buffer", st.momentum_buffer());
      put("grad_avg", st.grad_avg());
      break;
    }
    case OptimizerKind::Adagrad: {
      const auto& st = dynamic_cast<const optim::AdagradParamState&>(s);
      f.step = st.step();
      put("sum", st.sum());
      break;
    }
  }
  return f;
}

std::unique_ptr<optim::OptimizerParamState> make_param_state(OptimizerKind kind, ParamFields& f) {
  auto take = [&](const char* name) {
    auto it = f.tensors.find(name);
    return it == f.tensors.end() ? ::torch::Tensor() : it->second;
  };
  const std::int64_t step = f.step.value_or(0);
  switch (kind) {
    case OptimizerKind::SGD: {
      auto st = std::make_unique<optim::SGDParamState>();
      st->momentum_buffer(take("momentum_buffer"));
      return st;
    }
    case OptimizerKind::Adam: {
      auto st = std::make_unique<optim::AdamParamState>();
      st->step(step);
      st->exp_avg(take("exp_avg"));
      st->exp_avg_sq(take("exp_avg_sq"));
      st->max_exp_avg_sq(take("max_exp_avg_sq"));
      return st;
    }
    case OptimizerKind::AdamW: {
      auto st = std::make_unique<optim::AdamWParamState>();
      st->step(step);
      st->exp_avg(take("exp_avg"));
      st->exp_avg_sq(take("exp_avg_sq"));
      st->max_exp_avg_sq(take("max_exp_avg_sq"));
      return st;
    }
    case OptimizerKind::RMSprop: {
      auto st = std::make_unique<optim::RMSpropParamState>();
      st->step(step);
      st->square_avg(take("square_avg"));
      st->momentum_buffer(take("momentum_buffer"));
      st->grad_avg(take("grad_avg"));
      return st;
    }
    case OptimizerKind::Adagrad: {
      auto st = std::make_unique<optim::AdagradParamState>();
      st->step(step);
      st->sum(take("sum"));
      return st;
    }
  }
  return nullptr;
}

// The fields a param state needs to be usable by step() once it exists.
std::vector<std::string> required_fields(OptimizerKind kind, const json& group) {
  switch (kind) {
    case OptimizerKind::SGD:
      return {"momentum_buffer"};
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      std::vector<std::string> r{"exp_avg", "exp_avg_sq"};
      if (group.value("amsgrad", false)) r.push_back("max_exp_avg_sq");
      return r;
    }
    case OptimizerKind::RMSprop: {
      std::vector<std::string> r{"square_avg"};
      if (group.value("momentum", 0.0) > 0) r.push_back("momentum_buffer");
      if (group.value("centered", false)) r.push_back("grad_avg");
      return r;
    }
    case OptimizerKind::Adagrad:
      return {"sum"};
  }
  return {};
}

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

std::string c10_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
  return msg;
}

}  // namespace

std::string_view optimizer_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::SGD:
      return "sgd";
    case OptimizerKind::Adam:
      return "adam";
    case OptimizerKind::AdamW:
      return "adamw";
    case OptimizerKind::RMSprop:
      return "rmsprop";
    case OptimizerKind::Adagrad:
      return "adagrad";
  }
  return "?";
}

OptimizerKind parse_optimizer(std::string_view name) {
  auto n = lower(name);
  for (auto k : {OptimizerKind::SGD, OptimizerKind::Adam, OptimizerKind::AdamW,
                 OptimizerKind::RMSprop, OptimizerKind::Adagrad})
    if (n == optimizer_name(k)) return k;
  throw OptionError(
      fmt::format("unknown optimizer '{}' (supported: sgd, adam, adamw, rmsprop, adagrad)", name));
}

OptimizerKind optimizer_kind(const optim::Optimizer& optimizer) {
  const auto* p = &optimizer;
  // AdamW does not derive from Adam in libtorch, so the casts are unambiguous.
  if (dynamic_cast<const optim::SGD*>(p)) return OptimizerKind::SGD;
  if (dynamic_cast<const optim::Adam*>(p)) return OptimizerKind::Adam;
  if (dynamic_cast<const optim::AdamW*>(p)) return OptimizerKind::AdamW;
  if (dynamic_cast<const optim::RMSprop*>(p)) return OptimizerKind::RMSprop;
  if (dynamic_cast<const optim::Adagrad*>(p)) return OptimizerKind::Adagrad;
  if (dynamic_cast<const optim::LBFGS*>(p))
    throw OptionError(
        "LBFGS state cannot be checkpointed by vigil (its history lives outside the per-parameter "
        "state); use sgd, adam, adamw, rmsprop or adagrad");
  throw OptionError(
      "this optimizer type is not supported for checkpointing (supported: sgd, adam, adamw, "
      "rmsprop, adagrad)");
}

std::unique_ptr<optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                 std::vector<::torch::Tensor> params,
                                                 const json& options) {
  const json opts = options.is_null() ? json::object() : options;
  try {
    switch (kind) {
      case OptimizerKind::SGD: {
        optim::SGDOptions o(0.01);
        apply_options<OptionError>(kind, opts, o);
        return std::make_unique<optim::SGD>(std::move(params), o);
      }
      case OptimizerKind::Adam: {
        optim::AdamOptions o;
        apply_options<OptionError>(kind, opts, o);
        return std::make_unique<optim::Adam>(std::move(params), o);
      }
      case OptimizerKind::AdamW: {
        optim::AdamWOptions o;
        apply_options<OptionError>(kind, opts, o);
        return std::make_unique<optim::AdamW>(std::move(params), o);
      }
      case OptimizerKind::RMSprop: {
        optim::RMSpropOptions o;
        apply_options<OptionError>(kind, opts, o);
        return std::make_unique<optim::RMSprop>(std::move(params), o);
      }
      case OptimizerKind::Adagrad: {
        optim::AdagradOptions o;
        apply_options<OptionError>(kind, opts, o);
        return std::make_unique<optim::Adagrad>(std::move(params), o);
      }
    }
  } catch (const c10::Error& e) {
    throw OptionError(fmt::format("{}: {}", optimizer_name(kind), c10_message(e)));
  }
  throw OptionError("unknown optimizer kind");
}

OptimizerState optimizer_state(const optim::Optimizer& optimizer,
                               const ::torch::nn::Module& module) {
  const auto kind = optimizer_kind(optimizer);
  const auto names = group_param_names(optimizer, module);
  OptimizerState out;
  out.json = {{"optimizer", optimizer_name(kind)}, {"param_groups", json::array()}};
  const auto& state = optimizer.state();
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const auto& group = optimizer.param_groups()[g];
    json jg = options_to_json(kind, group.options());
    jg["params"] = names[g];
    out.json["param_groups"].push_back(std::move(jg));
    for (std::size_t i = 0; i < group.params().size(); ++i) {
      auto it = state.find(state_key(group.params()[i]));
      if (it == state.end()) continue;
      auto fields = read_fields(kind, *it->second);
      const std::string prefix = std::string(kStatePrefix) + names[g][i] + ".";
      if (fields.step)
        out.tensors.add(prefix + "step", ::torch::scalar_tensor(*fields.step, ::torch::kLong));
      for (const auto& [field, t] : fields.tensors) out.tensors.add(prefix + field, t);
    }
  }
  return out;
}

void load_optimizer_state(optim::Optimizer& optimizer, const ::torch::nn::Module& module,
                          const json& j, std::span<const TensorView> tensors) {
  const auto kind = optimizer_kind(optimizer);
  const auto names = group_param_names(optimizer, module);
  std::vector<std::string> problems;

  if (!j.is_object() || !j.contains("optimizer") || !j["optimizer"].is_string() ||
      !j.contains("param_groups") || !j["param_groups"].is_array())
    throw InputError(
        "optimizer state JSON must be an object with \"optimizer\" and \"param_groups\"");
  const std::string saved_kind = j["optimizer"].get<std::string>();
  if (saved_kind != optimizer_name(kind))
    throw InputError(fmt::format("the saved optimizer state is for {}, the optimizer is {}",
                                 saved_kind, optimizer_name(kind)));
  const auto& groups = j["param_groups"];
  if (groups.size() != names.size())
    throw InputError(fmt::format("the saved optimizer state has {} param groups, the optimizer {}",
                                 groups.size(), names.size()));

  // Validate every group's options on copies first, so a failure changes nothing.
  std::vector<std::unique_ptr<optim::OptimizerOptions>> new_options;
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
    auto opts = optimizer.param_groups()[g].options().clone();
    try {
      apply_options<InputError>(kind, jg, *opts);
    } catch (const InputError& e) {
      problems.push_back(fmt::format("param group {}: {}", g, e.what()));
    }
    new_options.push_back(std::move(opts));
  }
  if (!problems.empty())
    throw InputError(fmt::format("cannot load optimizer state: {}", fmt::join(problems, "; ")));

  // Sort the tensors by parameter.
  std::map<std::string, std::pair<std::size_t, std::size_t>> param_index;  // name -> (group, i)
  for (std::size_t g = 0; g < names.size(); ++g)
    for (std::size_t i = 0; i < names[g].size(); ++i) param_index[names[g][i]] = {g, i};
  std::map<std::string, ParamFields> fields;
  const auto& allowed = tensor_fields(kind);
  for (const auto& v : tensors) {
    std::string_view name = v.name;
    auto dot = name.rfind('.');
    if (!name.starts_with(kStatePrefix) || dot == std::string_view::npos ||
        dot < kStatePrefix.size()) {
      problems.push_back(fmt::format("unexpected tensor '{}'", name));
      continue;
    }
    std::string param(name.substr(kStatePrefix.size(), dot - kStatePrefix.size()));
    std::string field(name.substr(dot + 1));
    auto pit = param_index.find(param);
    if (pit == param_index.end()) {
      problems.push_back(
          fmt::format("'{}' is state for '{}', which the optimizer does not hold", name, param));
      continue;
    }
    const auto& p = optimizer.param_groups()[pit->second.first].params()[pit->second.second];
    if (field == "step" && has_step(kind)) {
      if (v.dtype != DType::I64 || !v.shape.empty() || v.data.size() != 8) {
        problems.push_back(fmt::format("'{}' must be an I64 scalar", name));
        continue;
      }
      fields[param].step = to_tensor(v).item<std::int64_t>();
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), field) == allowed.end()) {
      problems.push_back(fmt::format("'{}': {} keeps no '{}'", name, optimizer_name(kind), field));
      continue;
    }
    auto t = to_tensor(v);
    if (t.sizes() != p.sizes()) {
      problems.push_back(fmt::format("'{}' has shape [{}], the parameter [{}]", name,
                                     fmt::join(t.sizes(), ", "), fmt::join(p.sizes(), ", ")));
      continue;
    }
    if (t.scalar_type() != p.scalar_type()) {
      problems.push_back(fmt::format("'{}' is {}, the parameter {}", name, dtype_name(v.dtype),
                                     dtype_name(to_dtype(p.scalar_type()))));
      continue;
    }
    fields[param].tensors[field] = t.to(p.device());
  }
  for (const auto& [param, f] : fields) {
    const auto [g, i] = param_index.at(param);
    if (has_step(kind) && !f.step) problems.push_back(fmt::format("'{}' has no step count", param));
    for (const auto& req : required_fields(kind, groups[g]))
      if (!f.tensors.count(req))
        problems.push_back(fmt::format("state of '{}' lacks '{}'", param, req));
    (void)i;
  }
  if (!problems.empty())
    throw InputError(fmt::format("cannot load optimizer state: {}", fmt::join(problems, "; ")));

  // Everything checked: replace options and state.
  for (std::size_t g = 0; g < names.size(); ++g)
    optimizer.param_groups()[g].set_options(std::move(new_options[g]));
  auto& state = optimizer.state();
  for (std::size_t g = 0; g < names.size(); ++g) {
    for (std::size_t i = 0; i < names[g].size(); ++i) {
      const auto& p = optimizer.param_groups()[g].params()[i];
      auto it = fields.find(names[g][i]);
      if (it == fields.end())
        state.erase(state_key(p));  // no step taken for it yet: PyTorch has no entry either
      else
        state[state_key(p)] = make_param_state(kind, it->second);
    }
  }
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
