// Module state with PyTorch's state_dict names, and strict/non-strict loading.
#include "vigil/torch/module_state.hpp"

#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace vigil::torch {

namespace {

// PyTorch's order: pre-order over modules; each module's parameters, then its buffers.
// named_modules() is avoided because it needs the root to be held by a shared_ptr.
template <typename Fn>
void visit_state(const ::torch::nn::Module& module, const std::string& prefix, Fn&& fn) {
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    if (p.value().defined()) fn(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    if (b.value().defined()) fn(prefix + b.key(), b.value());
  for (const auto& c : module.named_children()) visit_state(*c.value(), prefix + c.key() + ".", fn);
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string list_text(const std::vector<std::string>& names) {
  constexpr std::size_t kShown = 8;  // keep the one-line message readable for big models
  if (names.size() <= kShown) return fmt::format("{}", fmt::join(names, ", "));
  std::vector<std::string> head(names.begin(), names.begin() + kShown);
  return fmt::format("{}, ... ({} in all)", fmt::join(head, ", "), names.size());
}

}  // namespace

NamedTensors module_state(const ::torch::nn::Module& module) {
  NamedTensors out;
  visit_state(module, "", [&](const std::string& name, const ::torch::Tensor& t) {
    // Tied weights appear under each of their names, as in PyTorch.
    out.add(name, t);
  });
  return out;
}

LoadStateResult load_module_state(::torch::nn::Module& module, std::span<const TensorView> tensors,
                                  const LoadStateOptions& options) {
  std::vector<std::pair<std::string, ::torch::Tensor>> targets;
  visit_state(module, "", [&](const std::string& name, const ::torch::Tensor& t) {
    targets.emplace_back(name, t);
  });
  std::map<std::string_view, const TensorView*> source;
  for (const auto& v : tensors) source.emplace(v.name, &v);

  LoadStateResult result;
  std::vector<std::pair<const TensorView*, ::torch::Tensor>> plan;
  std::map<std::string_view, bool> used;
  for (auto& [name, tensor] : targets) {
    auto it = source.find(name);
    if (it == source.end()) {
      result.missing_keys.push_back(name);
      continue;
    }
    used[it->first] = true;
    const TensorView& v = *it->second;
    std::vector<std::uint64_t> model_shape(tensor.sizes().begin(), tensor.sizes().end());
    std::string model_dtype;
    try {
      model_dtype = std::string(dtype_name(to_dtype(tensor.scalar_type())));
    } catch (const OptionError&) {
      model_dtype = c10::toString(tensor.scalar_type());
    }
    if (v.shape != model_shape) {
      result.mismatched.push_back(fmt::format("{}: shape {} in the file, {} in the model", name,
                                              shape_text(v.shape), shape_text(model_shape)));
    } else if (dtype_name(v.dtype) != model_dtype) {
      result.mismatched.push_back(fmt::format("{}: dtype {} in the file, {} in the model", name,
                                              dtype_name(v.dtype), model_dtype));
    } else {
      plan.emplace_back(&v, tensor);
    }
  }
  for (const auto& v : tensors)
    if (!used.count(v.name)) result.unexpected_keys.push_back(v.name);

  std::vector<std::string> problems;
  if (options.strict && !result.missing_keys.empty())
    problems.push_back(fmt::format("missing keys: {}", list_text(result.missing_keys)));
  if (options.strict && !result.unexpected_keys.empty())
    problems.push_back(fmt::format("unexpected keys: {}", list_text(result.unexpected_keys)));
  if (!options.ignore_mismatched && !result.mismatched.empty())
    problems.push_back(fmt::format("mismatched: {}", list_text(result.mismatched)));
  if (!problems.empty()) {
    std::string hint = options.strict ? " (strict=false ignores missing and unexpected keys)" : "";
    throw StateDictError(
        fmt::format("cannot load state into the model: {}{}", fmt::join(problems, "; "), hint),
        std::move(result));
  }

  for (auto& [view, tensor] : plan) copy_into(*view, tensor);
  result.loaded = plan.size();
  return result;
}

LoadStateResult load_module_state(::torch::nn::Module& module, const SafetensorsFile& file,
                                  const LoadStateOptions& options) {
  std::vector<TensorView> views;
  views.reserve(file.tensors().size());
  for (const auto& info : file.tensors()) views.push_back(file.view(info.name));
  return load_module_state(module, views, options);
}

LoadStateResult load_module_state(::torch::nn::Module& module, const std::filesystem::path& path,
                                  const LoadStateOptions& options) {
  auto file = SafetensorsFile::open(path);
  try {
    return load_module_state(module, file, options);
  } catch (const StateDictError& e) {
    throw StateDictError(fmt::format("{}: {}", path.string(), e.what()), e.result());
  }
}

void save_module_state(const std::filesystem::path& path, const ::torch::nn::Module& module,
                       const Metadata& metadata) {
  auto state = module_state(module);
  auto views = state.views();
  save_safetensors(path, views, metadata);
}

}  // namespace vigil::torch
