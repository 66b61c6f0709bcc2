// Module state with PyTorch's state_dict names, and strict/non-strict loading.
#include "vigil/torch/module_state.hpp"

#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/text.hpp"

namespace vigil::torch {

namespace {

// PyTorch's order: pre-order over modules; each module's parameters, then its buffers (unless
// `buffers` is false). Every name of a tied tensor is visited.
// named_modules() is avoided because it needs the root to be held by a shared_ptr.
template <typename Fn>
void visit_state(const ::torch::nn::Module& module, const std::string& prefix, bool buffers,
                 Fn&& fn) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    if (p.value().defined()) fn(prefix + p.key(), p.value());
  if (buffers)
    for (const auto& b : module.named_buffers(/*recurse=*/false))
      if (b.value().defined()) fn(prefix + b.key(), b.value());
  for (const auto& c : module.named_children())
    visit_state(*c.value(), prefix + c.key() + ".", buffers, fn);
}

const void* identity(const ::torch::Tensor& t) {
  return t.unsafeGetTensorImpl();
}

// Calls fn(name, tensor, canonical) for every name of the state; `canonical` is null for the
// first name of a tensor and that first name for its later ones.
template <typename Fn>
void visit_tied(const ::torch::nn::Module& module, bool buffers, Fn&& fn) {
  std::map<const void*, std::string> first;
  visit_state(module, "", buffers, [&](const std::string& name, const ::torch::Tensor& t) {
    auto [it, inserted] = first.emplace(identity(t), name);
    fn(name, t, inserted ? nullptr : &it->second);
  });
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

NamedTensors module_state(const ::torch::nn::Module& module) {
  NamedTensors out;
  visit_tied(module, true,
             [&](const std::string& name, const ::torch::Tensor& t, const std::string* canonical) {
               if (canonical == nullptr) out.add(name, t);
             });
  return out;
}

std::vector<std::pair<std::string, std::string>> tied_names(const ::torch::nn::Module& module) {
  std::vector<std::pair<std::string, std::string>> out;
  visit_tied(module, true,
             [&](const std::string& name, const ::torch::Tensor&, const std::string* canonical) {
               if (canonical != nullptr) out.emplace_back(name, *canonical);
             });
  return out;
}

Metadata tied_metadata(const ::torch::nn::Module& module) {
  const auto tied = tied_names(module);
  if (tied.empty()) return {};
  auto j = nlohmann::json::object();
  for (const auto& [alias, canonical] : tied) j[alias] = canonical;
  return {{std::string(kTiedKey), j.dump()}};
}

std::vector<::torch::Tensor> unique_parameters(const ::torch::nn::Module& module) {
  std::vector<::torch::Tensor> out;
  visit_tied(module, false,
             [&](const std::string&, const ::torch::Tensor& t, const std::string* canonical) {
               if (canonical == nullptr) out.push_back(t);
             });
  return out;
}

namespace {

// "name: shape [..] in the file, [..] in the model" if `v` cannot be copied into `tensor`.
std::optional<std::string> mismatch(const std::string& label, const TensorView& v,
                                    const ::torch::Tensor& tensor) {
  std::vector<std::uint64_t> model_shape(tensor.sizes().begin(), tensor.sizes().end());
  std::string model_dtype;
  try {
    model_dtype = std::string(dtype_name(to_dtype(tensor.scalar_type())));
  } catch (const OptionError&) {
    model_dtype = c10::toString(tensor.scalar_type());
  }
  if (v.shape != model_shape)
    return fmt::format("{}: shape {} in the file, {} in the model", label, shape_text(v.shape),
                       shape_text(model_shape));
  if (dtype_name(v.dtype) != model_dtype)
    return fmt::format("{}: dtype {} in the file, {} in the model", label, dtype_name(v.dtype),
                       model_dtype);
  return std::nullopt;
}

void throw_if_refused(LoadStateResult& result, const LoadStateOptions& options) {
  std::vector<std::string> problems;
  problems.reserve(3);
  if (options.strict && !result.missing_keys.empty())
    problems.push_back(
        fmt::format("missing keys: {}", vigil::detail::name_list(result.missing_keys)));
  if (options.strict && !result.unexpected_keys.empty())
    problems.push_back(
        fmt::format("unexpected keys: {}", vigil::detail::name_list(result.unexpected_keys)));
  if (!options.ignore_mismatched && !result.mismatched.empty())
    problems.push_back(fmt::format("mismatched: {}", vigil::detail::name_list(result.mismatched)));
  if (problems.empty()) return;
  std::string hint = options.strict ? " (strict=false ignores missing and unexpected keys)" : "";
  throw StateDictError(
      fmt::format("cannot load state into the model: {}{}", fmt::join(problems, "; "), hint),
      std::move(result));
}

// The kTiedKey metadata of a file: alias -> canonical. `file` names it in the error.
std::vector<std::pair<std::string, std::string>> tied_in(const Metadata& metadata,
                                                         std::string_view file) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = metadata.find(std::string(kTiedKey));
  if (it == metadata.end()) return out;
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  bool ok = j.is_object();
  for (auto e = j.begin(); ok && e != j.end(); ++e) {
    ok = e->is_string();
    if (ok) out.emplace_back(e.key(), e->get<std::string>());
  }
  if (!ok)
    throw InputError(fmt::format(
        "{}: its metadata \"{}\" must be a JSON object of tensor names (alias: canonical), got "
        "'{}'",
        file, kTiedKey, it->second));
  return out;
}

// Which source tensor goes into which module tensor.
using Plan = std::vector<std::pair<const TensorView*, ::torch::Tensor>>;

// Matches `tensors` to the module's state and makes every check; throws StateDictError (nothing
// changed yet) when the options refuse what it found.
std::pair<LoadStateResult, Plan> plan_load(const ::torch::nn::Module& module,
                                           std::span<const TensorView> tensors,
                                           const LoadStateOptions& options) {
  std::vector<std::pair<std::string, ::torch::Tensor>> targets;
  visit_state(module, "", true, [&](const std::string& name, const ::torch::Tensor& t) {
    targets.emplace_back(name, t);
  });
  std::map<std::string_view, const TensorView*> source;
  for (const auto& v : tensors) source.emplace(v.name, &v);
  std::map<std::string_view, std::string_view> tied;  // the first entry for an alias wins
  for (const auto& [alias, canonical] : options.tied) tied.emplace(alias, canonical);
  // Tensors the source fills under one of their names: their other names are not missing.
  std::set<const void*> filled;
  for (const auto& [name, tensor] : targets)
    if (source.count(name)) filled.insert(identity(tensor));

  LoadStateResult result;
  Plan plan;
  std::set<std::string_view> used;
  for (auto& [name, tensor] : targets) {
    std::string label = name;
    const TensorView* v = nullptr;
    if (auto it = source.find(name); it != source.end()) {
      v = it->second;
    } else if (filled.count(identity(tensor))) {
      continue;  // tied in the module to a tensor loaded under another name
    } else if (auto t = tied.find(name); t != tied.end() && source.count(t->second)) {
      v = source.at(t->second);  // tied in the source only: the module holds a separate copy
      label = fmt::format("{} (tied to {})", name, t->second);
    }
    if (v == nullptr) {
      result.missing_keys.push_back(name);
      continue;
    }
    used.insert(v->name);
    if (auto problem = mismatch(label, *v, tensor))
      result.mismatched.push_back(std::move(*problem));
    else
      plan.emplace_back(v, tensor);
  }
  for (const auto& v : tensors)
    if (!used.count(v.name)) result.unexpected_keys.push_back(v.name);
  throw_if_refused(result, options);
  return {std::move(result), std::move(plan)};
}

std::span<std::byte> bytes_of(const ::torch::Tensor& t) {
  return {static_cast<std::byte*>(t.data_ptr()), t.nbytes()};
}

// Reads the planned tensors from `file` in one verified pass (SafetensorsFile::read_into):
// straight into every CPU, contiguous module tensor; through a host tensor, copied once the
// check passed, for the others (another device, other strides, a second source for the same
// module tensor).
void read_plan(const SafetensorsFile& file, const Plan& plan, const LoadStateOptions& options) {
  std::map<std::string_view, ::torch::Tensor> landing;  // source tensor -> where it is read
  std::vector<std::pair<std::string_view, ::torch::Tensor>> later;
  std::set<const void*> direct;
  for (const auto& [view, tensor] : plan) {
    if (landing.count(view->name)) {
      later.emplace_back(view->name, tensor);
    } else if (tensor.device().is_cpu() && tensor.is_contiguous() &&
               direct.insert(identity(tensor)).second) {
      landing.emplace(view->name, tensor);
    } else {
      landing.emplace(view->name,
                      ::torch::empty(tensor.sizes(), tensor.options().device(::torch::kCPU)));
      later.emplace_back(view->name, tensor);
    }
  }
  std::vector<TensorDestination> destinations;
  destinations.reserve(landing.size());
  for (const auto& [source, tensor] : landing) destinations.push_back({source, bytes_of(tensor)});
  try {
    file.read_into(destinations, ReadIntoOptions{}.with_file_xxh3(options.file_xxh3));
  } catch (const FormatError& e) {
    if (e.kind() != FormatErrorKind::ChecksumMismatch) throw;
    throw FormatError(e.kind(),
                      fmt::format("{}; the model's tensors were read in place and now hold "
                                  "unchecked bytes: load an intact file into it before using it",
                                  e.what()));
  }
  ::torch::NoGradGuard no_grad;
  for (auto& [source, tensor] : later) tensor.copy_(landing.at(source));
}

LoadStateResult load_file(::torch::nn::Module& module, const SafetensorsFile& file,
                          const LoadStateOptions& options, std::string_view name) {
  LoadStateOptions with_file = options;
  for (auto& entry : tied_in(file.metadata(), name)) with_file.tied.push_back(std::move(entry));
  std::vector<TensorView> views;
  views.reserve(file.tensors().size());
  for (const auto& info : file.tensors()) views.push_back(file.view(info.name));
  auto [result, plan] = plan_load(module, views, with_file);
  read_plan(file, plan, options);
  result.loaded = plan.size();
  return result;
}

}  // namespace

LoadStateResult load_module_state(::torch::nn::Module& module, std::span<const TensorView> tensors,
                                  const LoadStateOptions& options) {
  auto [result, plan] = plan_load(module, tensors, options);
  for (auto& [view, tensor] : plan) copy_into(*view, tensor);
  result.loaded = plan.size();
  return result;
}

LoadStateResult load_module_state(::torch::nn::Module& module, const SafetensorsFile& file,
                                  const LoadStateOptions& options) {
  return load_file(module, file, options, "the tensor file");
}

LoadStateResult load_module_state(::torch::nn::Module& module, const ShardedTensors& shards,
                                  const LoadStateOptions& options) {
  LoadStateOptions with_ties = options;
  if (!shards.shards.empty())
    for (auto& entry : tied_in(shards.shards.front().metadata(), "the shards"))
      with_ties.tied.push_back(std::move(entry));
  return load_module_state(module, shards.views(), with_ties);
}

LoadStateResult load_module_state(::torch::nn::Module& module, const std::filesystem::path& path,
                                  const LoadStateOptions& options) {
  if (const auto name = path.filename().string(); name.ends_with(kShardIndexSuffix)) {
    const auto stem = name.substr(0, name.size() - kShardIndexSuffix.size());
    const auto set = open_sharded(path.parent_path(), stem);  // every shard's checksums
    if (!set) throw InputError(fmt::format("{}: no such shard index", path.string()));
    try {
      return load_module_state(module, *set, options);
    } catch (const StateDictError& e) {
      throw StateDictError(fmt::format("{}: {}", path.string(), e.what()), e.result());
    }
  }
  // Checksums are checked while reading into the module, not by a pass of their own.
  auto file = SafetensorsFile::open(path, SafetensorsReadOptions{}.with_verify_checksums(false));
  try {
    return load_file(module, file, options, path.string());
  } catch (const StateDictError& e) {
    throw StateDictError(fmt::format("{}: {}", path.string(), e.what()), e.result());
  }
}

void save_module_state(const std::filesystem::path& path, const ::torch::nn::Module& module,
                       const Metadata& metadata) {
  auto state = module_state(module);
  auto views = state.views();
  Metadata all = metadata;
  all.erase(std::string(kTiedKey));
  all.merge(tied_metadata(module));
  save_safetensors(path, views, all);
}

}  // namespace vigil::torch
