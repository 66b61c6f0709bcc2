// torch::Tensor <-> vigil::TensorView: dtype mapping, zero-copy views on CPU tensors, and
// NamedTensors, which keeps the tensors alive while a safetensors writer reads their bytes.
#pragma once

// libtorch is ::torch; inside namespace vigil, `torch::` means vigil::torch, so spell it ::torch.
#include <torch/torch.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/safetensors.hpp"

namespace vigil::torch {

/// The safetensors dtype of a libtorch scalar type: Float->F32, Double->F64, Half->F16,
/// BFloat16->BF16, Long->I64, Int->I32, Short->I16, Char->I8, Byte->U8, Bool->BOOL.
/// Throws OptionError for types safetensors cannot hold (complex, quantized).
DType to_dtype(c10::ScalarType type);

/// The libtorch scalar type of a safetensors dtype. Throws OptionError for U16/U32/U64/F8_*,
/// which libtorch 1.13 does not have (refused with 2.x too, so files behave the same on both).
c10::ScalarType to_scalar_type(DType dtype);

/// Zero-copy view of `tensor`'s bytes. It must be a dense, contiguous CPU tensor (throws
/// OptionError otherwise: use NamedTensors, which copies such tensors). The view is valid while
/// the tensor's storage lives and is not resized; it sees later in-place updates.
TensorView view_of(const ::torch::Tensor& tensor, std::string name);

/// A new CPU tensor owning a copy of `view`'s bytes (shape and dtype from the view).
::torch::Tensor to_tensor(const TensorView& view);

/// Copies `view` into the existing tensor `dst` (any device, any strides) without autograd.
/// Throws InputError naming the tensor if dtype or shape differ.
void copy_into(const TensorView& view, ::torch::Tensor& dst);

/// Named tensors in insertion order, plus views on them for the safetensors writer.
/// Each entry holds a reference to its tensor: contiguous CPU tensors are shared with the caller
/// (zero copy: the bytes written are whatever the live tensor holds at write time); anything else
/// (non-contiguous, other devices) is copied to a contiguous CPU tensor when added.
/// Use clone() before handing the set to a background writer while training goes on.
class NamedTensors {
 public:
  NamedTensors() = default;

  /// Adds `tensor` under `name`; throws OptionError for a duplicate name, an undefined tensor or
  /// one on the meta device (which has no data to save).
  void add(std::string name, const ::torch::Tensor& tensor);
  /// Appends every entry of `other`, each name prefixed with `prefix`.
  void append(const NamedTensors& other, std::string_view prefix = "");

  std::size_t size() const { return names_.size(); }
  bool empty() const { return names_.empty(); }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<::torch::Tensor>& tensors() const { return tensors_; }
  /// The tensor named `name`; throws InputError naming the ones that exist if absent.
  const ::torch::Tensor& at(std::string_view name) const;
  /// nullptr if absent.
  const ::torch::Tensor* find(std::string_view name) const;
  /// True if both hold the same names, in any order (a file read back lists its own order).
  [[nodiscard]] bool same_names(const NamedTensors& other) const;

  /// Views on the held tensors (valid while this object and its tensors live).
  std::vector<TensorView> views() const;
  /// Total bytes of all tensors.
  std::uint64_t nbytes() const;
  /// A deep copy: a consistent snapshot the live tensors can no longer change.
  NamedTensors clone() const;

 private:
  std::vector<std::string> names_;
  std::vector<::torch::Tensor> tensors_;
};

}  // namespace vigil::torch
