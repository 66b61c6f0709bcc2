// The benchmark's state as libtorch sees it: a module tree with the layout's parameter names.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "bench_util.hpp"
#include "vigil/checkpoint.hpp"

namespace vigil::bench {

/// A module tree whose state_dict names are the layout's names ("layers.3.attn.qkv.weight"),
/// parameters given by `make` (views on the shared state, placeholders, or fresh tensors).
std::shared_ptr<::torch::nn::Module> module_tree(
    const StateLayout& layout, const std::function<::torch::Tensor(const TensorSpec&)>& make);

/// The libtorch shape of a tensor of the layout.
std::vector<std::int64_t> shape_of(const TensorSpec& t);

/// A checkpoint holding `views` as model.safetensors.
CheckpointContent model_content(const std::vector<TensorView>& views);

}  // namespace vigil::bench
