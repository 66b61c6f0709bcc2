// A decoder-only transformer language model (GPT-2's layout, nanoGPT's parameter names) and
// sampling from it, for byte-level (or any small-vocabulary) language modelling on a CPU.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/error.hpp"
#include "vigil/setter.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::torch {

/// What to build. The parameters are named as nanoGPT's GPT names them, so its checkpoints'
/// state_dict keys match:
///
///     transformer.wte.weight            [vocab_size, embed]  token embedding
///     transformer.wpe.weight            [context, embed]     learned position embedding
///     transformer.h.{i}.ln_1.weight/bias                     pre-attention LayerNorm
///     transformer.h.{i}.attn.c_attn.weight/bias [3*embed, embed]  q, k, v in one Linear
///     transformer.h.{i}.attn.c_proj.weight/bias [embed, embed]
///     transformer.h.{i}.ln_2.weight/bias                     pre-MLP LayerNorm
///     transformer.h.{i}.mlp.c_fc.weight/bias    [4*embed, embed]  then GELU (exact, erf)
///     transformer.h.{i}.mlp.c_proj.weight/bias  [embed, 4*embed]
///     transformer.ln_f.weight/bias                           final LayerNorm
///     lm_head.weight                    tied: the same tensor as transformer.wte.weight
struct GptOptions {
  /// Distinct tokens (default 256: bytes).
  std::int64_t vocab_size = 256;
  /// Longest input, the size of the position embedding (default 128).
  std::int64_t context = 128;
  /// Transformer blocks (default 4).
  std::int64_t layers = 4;
  /// Attention heads per block; must divide embed (default 4).
  std::int64_t heads = 4;
  /// Width of the residual stream (default 128).
  std::int64_t embed = 128;
  /// Dropout after the embeddings, on the attention weights and after each residual branch, as
  /// nanoGPT (default 0).
  double dropout = 0.0;

  VIGIL_SETTER(vocab_size)
  VIGIL_SETTER(context)
  VIGIL_SETTER(layers)
  VIGIL_SETTER(heads)
  VIGIL_SETTER(embed)
  VIGIL_SETTER(dropout)

  /// Throws OptionError naming the field: sizes < 1, embed not a multiple of heads, dropout
  /// outside [0, 1).
  void validate() const;
  /// {"kind": "gpt", "vocab_size", "context", "layers", "heads", "embed", "dropout"}.
  nlohmann::json to_json() const;
  /// Absent fields take the defaults; a wrong type, an unknown field or a "kind" other than
  /// "gpt" throws InputError.
  static GptOptions from_json(const nlohmann::json& json);

  bool operator==(const GptOptions&) const = default;
};

/// The model. Weights are initialised as nanoGPT does (normal(0, 0.02) for Linear and
/// Embedding weights, zero biases, c_proj weights with std 0.02 / sqrt(2 * layers)) from the
/// default CPU generator: seed it for reproducible runs.
///
///     vigil::torch::Gpt model(vigil::torch::GptOptions{}.with_layers(2));
///     auto logits = model->forward(tokens);  // int64 [B, T] -> float [B, T, vocab_size]
class GptImpl : public ::torch::nn::Module {
 public:
  explicit GptImpl(GptOptions options);

  /// Logits of the next token at every position: `tokens` int64 [B, T] with 1 <= T <= context
  /// and every token in [0, vocab_size) gives [B, T, vocab_size]. Causal: position t sees only
  /// tokens 0..t. Throws InputError for a wrong dtype, rank, length or token value.
  ::torch::Tensor forward(const ::torch::Tensor& tokens);

  const GptOptions& options() const { return options_; }
  /// Distinct parameters' elements: the tied output layer counted once, the position embedding
  /// included (nanoGPT's get_num_params(non_embedding=False)).
  std::int64_t num_parameters() const;

 private:
  struct Transformer;  // wte, wpe, drop, h, ln_f (defined in gpt.cpp)
  struct TiedHead;     // lm_head: registers transformer.wte.weight as its "weight"
  GptOptions options_;
  std::shared_ptr<Transformer> transformer_;
  std::shared_ptr<TiedHead> lm_head_;
};
/// A shared GptImpl, what TORCH_MODULE(Gpt) declares (spelled out: the macro's `torch::` would
/// mean vigil::torch here).
class Gpt : public ::torch::nn::ModuleHolder<GptImpl> {
 public:
  using ::torch::nn::ModuleHolder<GptImpl>::ModuleHolder;
  using Impl = GptImpl;
};

/// How generate() samples.
struct GenerateOptions {
  /// Tokens to add after the prompt; must be >= 1 (default 100).
  std::int64_t tokens = 100;
  /// Divides the logits before the softmax; 0 picks the most likely token (greedy) (default 1).
  double temperature = 1.0;
  /// Sample only among the k most likely tokens (default: all).
  std::optional<std::int64_t> top_k;
  /// Seeds the sampling generator (its own, not the global one): the same model, prompt and
  /// options give the same tokens (default 0).
  std::uint64_t seed = 0;

  VIGIL_SETTER(tokens)
  VIGIL_SETTER(temperature)
  VIGIL_SETTER(top_k)
  VIGIL_SETTER(seed)
};

/// Continues `prompt` (non-empty, at most the model's context tokens) by options.tokens tokens
/// in eval mode without gradients, each step seeing the last `context` tokens. Returns only the
/// new tokens. Throws OptionError for tokens < 1, a negative or non-finite temperature,
/// top_k < 1; InputError for an empty or too long prompt or a token outside the vocabulary.
std::vector<std::int64_t> generate(GptImpl& model, const std::vector<std::int64_t>& prompt,
                                   const GenerateOptions& options);

}  // namespace vigil::torch
