// Gpt: nanoGPT's modules under its names, causal self-attention written out (libtorch 1.13 has
// no scaled_dot_product_attention), the tied output layer, and sampling.
#include "vigil/torch/gpt.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/json_fields.hpp"
#include "vigil/torch/module_state.hpp"

namespace vigil::torch {

namespace nn = ::torch::nn;
using nlohmann::json;

// ---- options ----

void GptOptions::validate() const {
  auto positive = [](const char* name, std::int64_t v) {
    if (v < 1) throw OptionError(fmt::format("gpt: {} must be >= 1, got {}", name, v));
  };
  positive("vocab_size", vocab_size);
  positive("context", context);
  positive("layers", layers);
  positive("heads", heads);
  positive("embed", embed);
  if (embed % heads != 0)
    throw OptionError(fmt::format(
        "gpt: embed {} must be a multiple of heads {} (each head gets embed / heads dimensions)",
        embed, heads));
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw OptionError(fmt::format("gpt: dropout must be in [0, 1), got {}", dropout));
}

json GptOptions::to_json() const {
  return {{"kind", "gpt"},  {"vocab_size", vocab_size}, {"context", context}, {"layers", layers},
          {"heads", heads}, {"embed", embed},           {"dropout", dropout}};
}

GptOptions GptOptions::from_json(const json& j) {
  if (!j.is_object())
    throw InputError(fmt::format("a gpt model must be a JSON object, got {}", j.dump()));
  static const std::set<std::string> known{"kind",  "vocab_size", "context", "layers",
                                           "heads", "embed",      "dropout"};
  detail::refuse_unknown_fields(j, known, "gpt model");
  if (j.contains("kind") && !(j["kind"].is_string() && j["kind"] == "gpt"))
    throw InputError(fmt::format("a gpt model has \"kind\": \"gpt\", got {}", j["kind"].dump()));
  GptOptions o;
  auto integer = [&](const char* key, std::int64_t& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_number_integer())
      throw InputError(
          fmt::format("gpt model '{}' must be an integer, got {}", key, j[key].dump()));
    out = j[key].get<std::int64_t>();
  };
  integer("vocab_size", o.vocab_size);
  integer("context", o.context);
  integer("layers", o.layers);
  integer("heads", o.heads);
  integer("embed", o.embed);
  if (j.contains("dropout")) {
    if (!j["dropout"].is_number())
      throw InputError(
          fmt::format("gpt model 'dropout' must be a number, got {}", j["dropout"].dump()));
    o.dropout = j["dropout"].get<double>();
  }
  return o;
}

// ---- the modules ----

namespace {

constexpr double kInitStd = 0.02;

// A Linear initialised as nanoGPT's _init_weights: normal(0, std) weight, zero bias.
nn::Linear make_linear(std::int64_t in, std::int64_t out, double std) {
  nn::Linear l(in, out);
  ::torch::NoGradGuard no_grad;
  l->weight.normal_(0.0, std);
  l->bias.zero_();
  return l;
}

// nanoGPT scales the residual projections so that the residual stream's variance does not grow
// with depth: std 0.02 / sqrt(2 * layers).
double projection_std(const GptOptions& o) {
  return kInitStd / std::sqrt(2.0 * static_cast<double>(o.layers));
}

struct CausalSelfAttention : nn::Module {
  explicit CausalSelfAttention(const GptOptions& o) : heads(o.heads) {
    c_attn = register_module("c_attn", make_linear(o.embed, 3 * o.embed, kInitStd));
    c_proj = register_module("c_proj", make_linear(o.embed, o.embed, projection_std(o)));
    attn_dropout = register_module("attn_dropout", nn::Dropout(o.dropout));
    resid_dropout = register_module("resid_dropout", nn::Dropout(o.dropout));
  }

  // x [B, T, C]; `future` [T, T] is true where a key comes after the query.
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& future) {
    const std::int64_t B = x.size(0), T = x.size(1), C = x.size(2);
    const std::int64_t hs = C / heads;  // exact: validate() checks that heads divides embed
    const auto qkv = c_attn(x).split(C, 2);
    auto per_head = [&](const ::torch::Tensor& t) {
      return t.view({B, T, heads, hs}).transpose(1, 2);  // [B, heads, T, hs]
    };
    const auto q = per_head(qkv[0]), k = per_head(qkv[1]), v = per_head(qkv[2]);
    auto att = q.matmul(k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hs)));
    att = att.masked_fill(future, -std::numeric_limits<double>::infinity()).softmax(-1);
    att = attn_dropout(att);
    auto y = att.matmul(v).transpose(1, 2).contiguous().view({B, T, C});
    return resid_dropout(c_proj(y));
  }

  std::int64_t heads;
  nn::Linear c_attn{nullptr}, c_proj{nullptr};
  nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};
};

struct Mlp : nn::Module {
  explicit Mlp(const GptOptions& o) {
    c_fc = register_module("c_fc", make_linear(o.embed, 4 * o.embed, kInitStd));
    gelu = register_module("gelu", nn::GELU());  // exact (erf), as nn.GELU()
    c_proj = register_module("c_proj", make_linear(4 * o.embed, o.embed, projection_std(o)));
    dropout = register_module("dropout", nn::Dropout(o.dropout));
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return dropout(c_proj(gelu(c_fc(x)))); }

  nn::Linear c_fc{nullptr}, c_proj{nullptr};
  nn::GELU gelu{nullptr};
  nn::Dropout dropout{nullptr};
};

nn::LayerNorm make_layer_norm(std::int64_t embed) {
  return nn::LayerNorm(nn::LayerNormOptions({embed}));
}

// Pre-norm: x + attn(ln_1(x)), then + mlp(ln_2(x)).
struct Block : nn::Module {
  explicit Block(const GptOptions& o) {
    ln_1 = register_module("ln_1", make_layer_norm(o.embed));
    attn = register_module("attn", std::make_shared<CausalSelfAttention>(o));
    ln_2 = register_module("ln_2", make_layer_norm(o.embed));
    mlp = register_module("mlp", std::make_shared<Mlp>(o));
  }
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& future) {
    auto h = x + attn->forward(ln_1(x), future);
    return h + mlp->forward(ln_2(h));
  }

  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<Mlp> mlp;
};

nn::Embedding make_embedding(std::int64_t n, std::int64_t dim) {
  nn::Embedding e(n, dim);
  ::torch::NoGradGuard no_grad;
  e->weight.normal_(0.0, kInitStd);
  return e;
}

}  // namespace

struct GptImpl::Transformer : nn::Module {
  explicit Transformer(const GptOptions& o) {
    wte = register_module("wte", make_embedding(o.vocab_size, o.embed));
    wpe = register_module("wpe", make_embedding(o.context, o.embed));
    drop = register_module("drop", nn::Dropout(o.dropout));
    h = register_module("h", nn::ModuleList());
    for (std::int64_t i = 0; i < o.layers; ++i) {
      blocks.push_back(std::make_shared<Block>(o));
      h->push_back(blocks.back());
    }
    ln_f = register_module("ln_f", make_layer_norm(o.embed));
  }

  nn::Embedding wte{nullptr}, wpe{nullptr};
  nn::Dropout drop{nullptr};
  nn::ModuleList h{nullptr};
  std::vector<std::shared_ptr<Block>> blocks;  // h's modules with their type
  nn::LayerNorm ln_f{nullptr};
};

// A Linear without bias whose weight is another module's tensor: libtorch cannot re-point a
// Linear's registered parameter, so the shared tensor is registered here under "weight".
struct GptImpl::TiedHead : nn::Module {
  explicit TiedHead(const ::torch::Tensor& shared) {
    weight = register_parameter("weight", shared);
  }
  ::torch::Tensor weight;
};

GptImpl::GptImpl(GptOptions options) : options_(options) {
  options_.validate();
  transformer_ = register_module("transformer", std::make_shared<Transformer>(options_));
  lm_head_ = register_module("lm_head", std::make_shared<TiedHead>(transformer_->wte->weight));
}

::torch::Tensor GptImpl::forward(const ::torch::Tensor& tokens) {
  if (tokens.scalar_type() != ::torch::kLong)
    throw InputError(fmt::format("gpt: the tokens must be int64 (torch::kLong), got {}",
                                 c10::toString(tokens.scalar_type())));
  if (tokens.dim() != 2 || tokens.size(0) < 1)
    throw InputError(
        fmt::format("gpt: the tokens must be a non-empty [batch, time] tensor, got "
                    "shape [{}]",
                    fmt::join(tokens.sizes(), ", ")));
  const std::int64_t T = tokens.size(1);
  if (T < 1 || T > options_.context)
    throw InputError(fmt::format(
        "gpt: {} tokens per row; the model takes 1 to {} (its context): crop longer inputs", T,
        options_.context));
  const std::int64_t lo = tokens.min().item<std::int64_t>();
  const std::int64_t hi = tokens.max().item<std::int64_t>();
  if (lo < 0 || hi >= options_.vocab_size)
    throw InputError(fmt::format("gpt: token {} is outside the vocabulary [0, {})",
                                 lo < 0 ? lo : hi, options_.vocab_size));

  auto& t = *transformer_;
  const auto device = t.wte->weight.device();
  const auto x_in = tokens.to(device);
  const auto positions = ::torch::arange(T, ::torch::TensorOptions(::torch::kLong).device(device));
  auto x = t.drop(t.wte(x_in) + t.wpe(positions));
  // Built per call rather than registered: a "bias" buffer (nanoGPT's non-flash path) would add
  // a key to the state and break name matching with its (flash) checkpoints.
  const auto future =
      ::torch::ones({T, T}, ::torch::TensorOptions(::torch::kBool).device(device)).triu(1);
  for (const auto& block : t.blocks) x = block->forward(x, future);
  return ::torch::nn::functional::linear(t.ln_f(x), lm_head_->weight);
}

std::int64_t GptImpl::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& p : unique_parameters(*this)) n += p.numel();
  return n;
}

// ---- sampling ----

namespace {

void check(const GenerateOptions& o) {
  if (o.tokens < 1)
    throw OptionError(fmt::format("generate: tokens must be >= 1, got {}", o.tokens));
  if (!(std::isfinite(o.temperature) && o.temperature >= 0))
    throw OptionError(fmt::format(
        "generate: temperature must be >= 0 and finite (0 = greedy), got {}", o.temperature));
  if (o.top_k && *o.top_k < 1)
    throw OptionError(fmt::format("generate: top_k must be >= 1 (or unset), got {}", *o.top_k));
}

void check(const std::vector<std::int64_t>& prompt, const GptOptions& m) {
  if (prompt.empty()) throw InputError("generate: the prompt is empty (give at least one token)");
  if (static_cast<std::int64_t>(prompt.size()) > m.context)
    throw InputError(fmt::format(
        "generate: the prompt has {} tokens, more than the model's context {}: keep its last {}",
        prompt.size(), m.context, m.context));
  for (std::size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= m.vocab_size)
      throw InputError(
          fmt::format("generate: prompt token {} is {}, outside the vocabulary [0, {})", i,
                      prompt[i], m.vocab_size));
}

// Puts the module in eval mode and restores its mode when it goes.
class EvalMode {
 public:
  explicit EvalMode(::torch::nn::Module& m) : module_(m), was_training_(m.is_training()) {
    m.eval();
  }
  ~EvalMode() { module_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  ::torch::nn::Module& module_;
  bool was_training_;
};

// The next token from the last position's logits [vocab].
std::int64_t pick(::torch::Tensor logits, const GenerateOptions& o, ::at::Generator& gen) {
  if (o.temperature == 0) return logits.argmax().item<std::int64_t>();
  logits = logits.to(::torch::kCPU, ::torch::kFloat);
  // Shifted so that the best is 0 before dividing: a tiny temperature cannot overflow to inf.
  logits = (logits - logits.max()) / o.temperature;
  if (o.top_k && *o.top_k < logits.size(0)) {
    const auto kth = std::get<0>(logits.topk(*o.top_k)).select(0, *o.top_k - 1);
    logits.masked_fill_(logits < kth, -std::numeric_limits<double>::infinity());
  }
  return ::torch::multinomial(logits.softmax(0), 1, /*replacement=*/false, gen)
      .item<std::int64_t>();
}

}  // namespace

std::vector<std::int64_t> generate(GptImpl& model, const std::vector<std::int64_t>& prompt,
                                   const GenerateOptions& options) {
  check(options);
  check(prompt, model.options());
  EvalMode eval(model);
  ::torch::NoGradGuard no_grad;
  auto gen = ::at::make_generator<::at::CPUGeneratorImpl>(options.seed);
  const auto context = static_cast<std::size_t>(model.options().context);
  std::vector<std::int64_t> seq = prompt;
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(options.tokens));
  for (std::int64_t i = 0; i < options.tokens; ++i) {
    const std::size_t start = seq.size() > context ? seq.size() - context : 0;
    const std::vector<std::int64_t> window(seq.begin() + static_cast<std::ptrdiff_t>(start),
                                           seq.end());
    const auto x = ::torch::tensor(window, ::torch::kLong).view({1, -1});
    const auto logits = model.forward(x).select(0, 0).select(0, -1);
    const std::int64_t next = pick(logits, options, gen);
    seq.push_back(next);
    out.push_back(next);
  }
  return out;
}

}  // namespace vigil::torch
