// torch::Tensor <-> TensorView.
#include "vigil/torch/tensor_bridge.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/text.hpp"

namespace vigil::torch {

// safetensors stores little-endian bytes; CPU tensors are viewed as they lie in memory.
static_assert(std::endian::native == std::endian::little,
              "vigil's zero-copy tensor views assume a little-endian host");

namespace {

// The dtypes both sides know, each pair once for both directions.
constexpr std::pair<c10::ScalarType, DType> kDTypes[] = {
    {c10::ScalarType::Float, DType::F32}, {c10::ScalarType::Double, DType::F64},
    {c10::ScalarType::Half, DType::F16},  {c10::ScalarType::BFloat16, DType::BF16},
    {c10::ScalarType::Long, DType::I64},  {c10::ScalarType::Int, DType::I32},
    {c10::ScalarType::Short, DType::I16}, {c10::ScalarType::Char, DType::I8},
    {c10::ScalarType::Byte, DType::U8},   {c10::ScalarType::Bool, DType::BOOL}};

}  // namespace

DType to_dtype(c10::ScalarType type) {
  for (const auto& [scalar_type, dtype] : kDTypes)
    if (scalar_type == type) return dtype;
  throw OptionError(
      fmt::format("tensor dtype {} cannot be stored in safetensors", c10::toString(type)));
}

c10::ScalarType to_scalar_type(DType dtype) {
  for (const auto& [scalar_type, d] : kDTypes)
    if (d == dtype) return scalar_type;
  throw OptionError(
      fmt::format("safetensors dtype {} has no libtorch equivalent", dtype_name(dtype)));
}

namespace {

std::vector<std::uint64_t> shape_of(const ::torch::Tensor& t) {
  std::vector<std::uint64_t> shape;
  shape.reserve(t.dim());
  for (auto s : t.sizes()) shape.push_back(static_cast<std::uint64_t>(s));
  return shape;
}

std::vector<std::int64_t> torch_shape(const TensorView& v) {
  std::vector<std::int64_t> shape;
  shape.reserve(v.shape.size());
  for (auto s : v.shape) shape.push_back(static_cast<std::int64_t>(s));
  return shape;
}

std::string shape_text(c10::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes.begin(), sizes.end(), ", "));
}

std::uint64_t element_count(const TensorView& v) {
  std::uint64_t n = 1;
  for (auto s : v.shape) n *= s;
  return n;
}

void check_view_size(const TensorView& v) {
  if (element_count(v) * dtype_size(v.dtype) != v.data.size())
    throw InputError(fmt::format("tensor '{}' has {} bytes, its dtype and shape need {}", v.name,
                                 v.data.size(), element_count(v) * dtype_size(v.dtype)));
}

}  // namespace

TensorView view_of(const ::torch::Tensor& tensor, std::string name) {
  if (!tensor.defined()) throw OptionError(fmt::format("tensor '{}' is undefined", name));
  if (!tensor.device().is_cpu() || tensor.layout() != c10::kStrided || !tensor.is_contiguous() ||
      tensor.is_quantized())
    throw OptionError(fmt::format(
        "tensor '{}' is not a dense contiguous CPU tensor; copy it first (NamedTensors does)",
        name));
  TensorView view;
  view.name = std::move(name);
  view.dtype = to_dtype(tensor.scalar_type());
  view.shape = shape_of(tensor);
  view.data = {static_cast<const std::byte*>(tensor.data_ptr()), tensor.nbytes()};
  return view;
}

::torch::Tensor to_tensor(const TensorView& view) {
  check_view_size(view);
  auto t =
      ::torch::empty(torch_shape(view), ::torch::TensorOptions().dtype(to_scalar_type(view.dtype)));
  if (!view.data.empty()) std::memcpy(t.data_ptr(), view.data.data(), view.data.size());
  return t;
}

void copy_into(const TensorView& view, ::torch::Tensor& dst) {
  check_view_size(view);
  if (to_scalar_type(view.dtype) != dst.scalar_type())
    throw InputError(fmt::format("tensor '{}' is {} in the source, {} in the destination",
                                 view.name, dtype_name(view.dtype),
                                 dtype_name(to_dtype(dst.scalar_type()))));
  auto shape = torch_shape(view);
  if (c10::IntArrayRef(shape) != dst.sizes())
    throw InputError(fmt::format("tensor '{}' has shape {} in the source, {} in the destination",
                                 view.name, shape_text(shape), shape_text(dst.sizes())));
  ::torch::NoGradGuard no_grad;
  // from_blob borrows the view's bytes (read-only use: copy_ only reads the source).
  auto src = ::torch::from_blob(const_cast<std::byte*>(view.data.data()), shape,
                                ::torch::TensorOptions().dtype(dst.scalar_type()));
  dst.copy_(src);
}

void NamedTensors::add(std::string name, const ::torch::Tensor& tensor) {
  if (!tensor.defined()) throw OptionError(fmt::format("tensor '{}' is undefined", name));
  if (find(name)) throw OptionError(fmt::format("duplicate tensor name '{}'", name));
  to_dtype(tensor.scalar_type());  // refuse unsupported dtypes now, not at write time
  ::torch::Tensor held = tensor.detach();
  // A tensor on another device is saved from a host copy; the meta device has none to give.
  if (held.is_meta())
    throw OptionError(fmt::format(
        "tensor '{}' is on the meta device, which holds no data; move it to a real device (e.g. "
        "module->to(torch::kCPU)) before saving it",
        name));
  if (!held.device().is_cpu() || held.layout() != c10::kStrided)
    held = held.to(::torch::kCPU).to_dense();
  if (!held.is_contiguous()) held = held.contiguous();
  names_.push_back(std::move(name));
  tensors_.push_back(std::move(held));
}

void NamedTensors::append(const NamedTensors& other, std::string_view prefix) {
  for (std::size_t i = 0; i < other.size(); ++i)
    add(std::string(prefix) + other.names_[i], other.tensors_[i]);
}

const ::torch::Tensor* NamedTensors::find(std::string_view name) const {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return &tensors_[i];
  return nullptr;
}

bool NamedTensors::same_names(const NamedTensors& other) const {
  if (size() != other.size()) return false;
  auto a = names_;
  auto b = other.names_;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

const ::torch::Tensor& NamedTensors::at(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw InputError(
      fmt::format("no tensor named '{}' (have: {})", name, vigil::detail::name_list(names_, 20)));
}

std::vector<TensorView> NamedTensors::views() const {
  std::vector<TensorView> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.push_back(view_of(tensors_[i], names_[i]));
  return out;
}

std::uint64_t NamedTensors::nbytes() const {
  std::uint64_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes();
  return n;
}

NamedTensors NamedTensors::clone() const {
  NamedTensors out;
  out.names_ = names_;
  out.tensors_.reserve(size());
  for (const auto& t : tensors_) out.tensors_.push_back(t.clone());
  return out;
}

}  // namespace vigil::torch
