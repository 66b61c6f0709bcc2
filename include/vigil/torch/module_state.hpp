// A torch::nn::Module's full state (parameters and buffers) as named tensors with PyTorch's
// state_dict names, and loading it back with the checks of load_state_dict().
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/setter.hpp"
#include "vigil/sharded_files.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// Parameters and buffers of `module` and all its children, named as PyTorch's state_dict()
/// names them ("0.weight", "features.2.bias", "bn.running_mean", "bn.num_batches_tracked") and
/// in the same order (pre-order over modules; a module's parameters, then its buffers).
/// Contiguous CPU tensors are shared with the module (zero copy, see NamedTensors); others are
/// copied. Undefined tensors (e.g. a Linear without bias) are skipped, as PyTorch does.
/// A tensor reached under several names (tied weights: the same TensorImpl, e.g. a GPT's
/// lm_head.weight and transformer.wte.weight) is listed once, under its first name in that
/// order; tied_names() gives the others.
NamedTensors module_state(const ::torch::nn::Module& module);

/// Alias -> canonical name of every tensor module_state() lists once but the module holds under
/// several names, in module_state()'s order: {{"lm_head.weight", "transformer.wte.weight"}} for
/// a GPT with a tied output layer; empty for a module without tied tensors.
std::vector<std::pair<std::string, std::string>> tied_names(const ::torch::nn::Module& module);

/// The metadata key under which saved files name their tied tensors; plain readers ignore it.
inline constexpr std::string_view kTiedKey = "vigil.tied";

/// The metadata save_module_state() adds for `module`: {kTiedKey: {"alias": "canonical", ...}}
/// as JSON when it has tied tensors, else nothing. For writers of the module's tensors other than
/// save_module_state() (e.g. a checkpoint's model file), so that readers can re-tie them.
Metadata tied_metadata(const ::torch::nn::Module& module);

/// module.parameters() without repeats (a tied tensor once, at its first place): what an
/// optimizer, gradient clipping or a gradient all-reduce must see, so that a tied tensor is
/// stepped, counted and scaled once.
std::vector<::torch::Tensor> unique_parameters(const ::torch::nn::Module& module);

/// Options of load_module_state.
struct LoadStateOptions {
  /// Like PyTorch's strict: when true (default), any missing or unexpected key is an error and
  /// nothing is loaded; when false, the matching tensors are loaded and the others reported.
  bool strict = true;
  /// Like Hugging Face's ignore_mismatched_sizes: when true, tensors whose shape or dtype differs
  /// are skipped and reported instead of failing (default false: they are always an error, as in
  /// PyTorch, where strict=False does not excuse a size mismatch).
  bool ignore_mismatched = false;
  /// Alias -> canonical name of tensors the source holds once for several names (as
  /// tied_names() gives them): a module tensor named by an alias that the source lacks is filled
  /// from the canonical one. Only needed when the module does not tie them itself: a module
  /// tensor tied to one being loaded is filled by that copy anyway. The file overloads add the
  /// file's kTiedKey metadata to this (default empty).
  std::vector<std::pair<std::string, std::string>> tied;
  /// For the file overloads: the whole file's expected XXH3-64 (a checkpoint's state.json
  /// records it), checked while the tensors are read, instead of the per-tensor checksums
  /// (default none).
  std::optional<std::uint64_t> file_xxh3;

  VIGIL_SETTER(strict)
  VIGIL_SETTER(ignore_mismatched)
  VIGIL_SETTER(tied)
  VIGIL_SETTER(file_xxh3)
};

/// What a load did not use, as PyTorch's load_state_dict() returns it.
struct LoadStateResult {
  std::vector<std::string> missing_keys;     ///< in the module, not in the source
  std::vector<std::string> unexpected_keys;  ///< in the source, not in the module
  /// Present in both but with a different shape or dtype, e.g.
  /// "0.weight: shape [10, 784] in the file, [256, 784] in the model".
  std::vector<std::string> mismatched;
  std::size_t loaded = 0;  ///< how many tensors were copied
};

/// The source does not fit the module. what() is one line listing every problem; the lists are
/// kept for programs. Nothing has been loaded when this is thrown.
class StateDictError : public InputError {
 public:
  StateDictError(const std::string& what, LoadStateResult result)
      : InputError(what), result_(std::move(result)) {}
  const LoadStateResult& result() const { return result_; }

 private:
  LoadStateResult result_;
};

/// Copies `tensors` into the module's existing parameters and buffers (in place, under
/// NoGradGuard, converting to each tensor's device; the dtype must match exactly). Every check is
/// made before anything is copied: on StateDictError the module is untouched. A tensor the
/// module holds under several names is loaded from whichever of them the source has (from each,
/// if it has several: a PyTorch state_dict lists a tied tensor under every name), and is not
/// missing under the others.
LoadStateResult load_module_state(::torch::nn::Module& module, std::span<const TensorView> tensors,
                                  const LoadStateOptions& options = {});
/// Same, from an opened tensor file, re-tying what its kTiedKey metadata says (InputError if that
/// metadata is not a JSON object of names). The tensors are read in one pass straight into the
/// module's CPU tensors (SafetensorsFile::read_into), each block hashed as it arrives: the stored
/// checksums (unless the file was verified when opened), or options.file_xxh3. The shape and name
/// checks come first (StateDictError leaves the module untouched); a checksum that fails is found
/// only after the bytes were read in place: the FormatError (ChecksumMismatch) then says that the
/// module holds unchecked bytes, and it must be loaded again from an intact file before use.
LoadStateResult load_module_state(::torch::nn::Module& module, const SafetensorsFile& file,
                                  const LoadStateOptions& options = {});
/// Same, from a sharded file opened with open_sharded() (sharded_files.hpp; its shards' checksums
/// are checked when they are opened), re-tying what the first shard's kTiedKey metadata says.
LoadStateResult load_module_state(::torch::nn::Module& module, const ShardedTensors& shards,
                                  const LoadStateOptions& options = {});
/// Same, from a file path (checksums, when present, verified as above while reading), or from
/// the index of a sharded file ("model.safetensors.index.json": its shards' checksums are
/// checked when they are opened, before anything is loaded).
LoadStateResult load_module_state(::torch::nn::Module& module, const std::filesystem::path& path,
                                  const LoadStateOptions& options = {});

/// Writes the module's state to `path` atomically (a plain safetensors file any reader loads):
/// module_state()'s tensors, a tied tensor once, with `metadata` plus tied_metadata(module)
/// (which replaces a kTiedKey of `metadata`).
void save_module_state(const std::filesystem::path& path, const ::torch::nn::Module& module,
                       const Metadata& metadata = {});

}  // namespace vigil::torch
