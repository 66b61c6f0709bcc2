// Tied weights (one tensor under several names, as a GPT's lm_head and token embedding): listed
// and saved once with a "vigil.tied" note, re-tied on load, loaded into untied modules and from
// files that hold every name; stepped, clipped, rescaled and averaged once in training.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/torch/ema.hpp"
#include "vigil/torch/gpt.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/trainer.hpp"

using namespace vigil;
using namespace vigil::torch;
using vigil::test::TempDir;
namespace nn = ::torch::nn;

namespace {

using Ties = std::vector<std::pair<std::string, std::string>>;

// A module whose "weight" is another module's tensor.
struct Shared : nn::Module {
  explicit Shared(const ::torch::Tensor& t) { weight = register_parameter("weight", t); }
  ::torch::Tensor weight;
};

// emb.weight [5, 3], and head.weight: the same tensor (tied) or its own (untied).
struct Pair : nn::Module {
  explicit Pair(bool tied) {
    emb = register_module("emb", nn::Embedding(5, 3));
    if (tied)
      head = register_module("head", std::make_shared<Shared>(emb->weight));
    else
      head = register_module("head", std::make_shared<Shared>(::torch::randn({5, 3})));
    bias = register_parameter("bias", ::torch::zeros({5}));
  }
  // Uses the shared tensor twice: as the embedding and as the output layer.
  ::torch::Tensor forward(const ::torch::Tensor& x) {
    return ::torch::nn::functional::linear(emb(x), head->weight, bias);
  }
  nn::Embedding emb{nullptr};
  std::shared_ptr<Shared> head;
  ::torch::Tensor bias;
};

const void* impl(const ::torch::Tensor& t) {
  return t.unsafeGetTensorImpl();
}

Gpt tiny_gpt(std::uint64_t seed) {
  ::torch::manual_seed(seed);
  return Gpt(
      GptOptions{}.with_vocab_size(32).with_context(8).with_layers(1).with_heads(2).with_embed(16));
}

nlohmann::json tied_json(const SafetensorsFile& f) {
  return nlohmann::json::parse(f.metadata().at(std::string(kTiedKey)));
}

}  // namespace

TEST(TiedWeights, ListedOnceUnderTheFirstName) {
  Pair tied(true), untied(false);
  EXPECT_EQ(module_state(tied).names(), (std::vector<std::string>{"bias", "emb.weight"}));
  EXPECT_EQ(tied_names(tied), (Ties{{"head.weight", "emb.weight"}}));
  EXPECT_EQ(module_state(untied).names(),
            (std::vector<std::string>{"bias", "emb.weight", "head.weight"}));
  EXPECT_TRUE(tied_names(untied).empty());
  EXPECT_TRUE(tied_metadata(untied).empty());

  auto gpt = tiny_gpt(1);
  const auto names = module_state(*gpt).names();
  EXPECT_EQ(names.front(), "transformer.wte.weight");
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
}

TEST(TiedWeights, UniqueParametersDropsTheRepeats) {
  Pair tied(true);
  const auto all = tied.parameters();
  const auto unique = unique_parameters(tied);
  ASSERT_EQ(all.size(), 3u);  // libtorch lists the tied tensor under both names
  ASSERT_EQ(unique.size(), 2u);
  EXPECT_EQ(impl(unique[0]), impl(tied.bias));
  EXPECT_EQ(impl(unique[1]), impl(tied.emb->weight));
  EXPECT_EQ(unique_parameters(Pair(false)).size(), 3u);

  auto gpt = tiny_gpt(1);
  EXPECT_EQ(unique_parameters(*gpt).size() + 1, gpt->parameters().size());
  // The same order as the state (a Gpt has no buffers).
  const auto state = module_state(*gpt);
  const auto params = unique_parameters(*gpt);
  ASSERT_EQ(params.size(), state.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(params[i].data_ptr(), state.tensors()[i].data_ptr()) << state.names()[i];
}

TEST(TiedWeights, SavedOnceWithTheTieInTheMetadata) {
  TempDir dir;
  auto gpt = tiny_gpt(2);
  const Metadata meta{{"vigil.model", gpt->options().to_json().dump()},
                      {std::string(kTiedKey), "stale, replaced"}};
  save_module_state(dir / "gpt.safetensors", *gpt, meta);
  auto file = SafetensorsFile::open(dir / "gpt.safetensors");
  EXPECT_EQ(file.tensors().size(), module_state(*gpt).size());
  EXPECT_EQ(file.find("lm_head.weight"), nullptr);
  ASSERT_NE(file.find("transformer.wte.weight"), nullptr);
  EXPECT_EQ(tied_json(file), (nlohmann::json{{"lm_head.weight", "transformer.wte.weight"}}));
  EXPECT_EQ(file.metadata().at("vigil.model"), gpt->options().to_json().dump());

  Pair untied(false);
  save_module_state(dir / "untied.safetensors", untied, {{"note", "x"}});
  auto plain = SafetensorsFile::open(dir / "untied.safetensors");
  EXPECT_EQ(plain.metadata().count(std::string(kTiedKey)), 0u);
  EXPECT_EQ(plain.metadata().at("note"), "x");
}

TEST(TiedWeights, LoadingKeepsTheTieAndFillsBothNames) {
  TempDir dir;
  auto a = tiny_gpt(3);
  save_module_state(dir / "a.safetensors", *a);
  auto b = tiny_gpt(4);
  ASSERT_FALSE(::torch::equal(a->named_parameters()["transformer.wte.weight"],
                              b->named_parameters()["transformer.wte.weight"]));
  const auto r = load_module_state(*b, dir / "a.safetensors");
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_EQ(r.loaded, module_state(*a).size());
  const auto params = b->named_parameters();
  EXPECT_EQ(impl(params["lm_head.weight"]), impl(params["transformer.wte.weight"]));
  auto file = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_TRUE(
      ::torch::equal(params["lm_head.weight"], to_tensor(file.view("transformer.wte.weight"))));
  const auto x = ::torch::randint(32, {2, 8}, ::torch::kLong);
  EXPECT_TRUE(::torch::equal(a->forward(x), b->forward(x)));
}

TEST(TiedWeights, AnUntiedModuleLoadsBothFromATiedFile) {
  TempDir dir;
  ::torch::manual_seed(5);
  Pair tied(true);
  save_module_state(dir / "tied.safetensors", tied);
  Pair untied(false);
  const auto r = load_module_state(untied, dir / "tied.safetensors");
  EXPECT_EQ(r.loaded, 3u);
  EXPECT_TRUE(::torch::equal(untied.emb->weight, tied.emb->weight));
  EXPECT_TRUE(::torch::equal(untied.head->weight, tied.emb->weight));
  EXPECT_NE(impl(untied.head->weight), impl(untied.emb->weight));  // still two tensors

  // From views, the tie comes in the options; without it head.weight is missing.
  Pair other(false);
  const auto state = module_state(tied);
  EXPECT_THROW(load_module_state(other, state.views()), StateDictError);
  EXPECT_EQ(
      load_module_state(other, state.views(), LoadStateOptions{}.with_strict(false)).missing_keys,
      (std::vector<std::string>{"head.weight"}));
  EXPECT_FALSE(::torch::equal(other.head->weight, tied.emb->weight));
  load_module_state(other, state.views(), LoadStateOptions{}.with_tied(tied_names(tied)));
  EXPECT_TRUE(::torch::equal(other.head->weight, tied.emb->weight));
}

TEST(TiedWeights, AFileWithEveryNameLoadsIntoATiedModule) {
  // What an older vigil or torch.save(model.state_dict()) writes: both names, the same bytes.
  TempDir dir;
  ::torch::manual_seed(6);
  Pair untied(false);
  {
    ::torch::NoGradGuard no_grad;
    untied.head->weight.copy_(untied.emb->weight);
  }
  save_module_state(dir / "both.safetensors", untied);
  ::torch::manual_seed(7);
  Pair tied(true);
  const auto r = load_module_state(tied, dir / "both.safetensors");
  EXPECT_EQ(r.loaded, 3u);  // the tied tensor is written twice, with the same bytes
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_EQ(impl(tied.head->weight), impl(tied.emb->weight));
  EXPECT_TRUE(::torch::equal(tied.emb->weight, untied.emb->weight));
}

TEST(TiedWeights, AMalformedTieNoteIsAnInputErrorNamingTheFile) {
  TempDir dir;
  Pair tied(true);
  const auto state = module_state(tied);
  for (const std::string bad : {"[1, 2]", "{\"head.weight\": 3}", "not json"}) {
    save_safetensors(dir / "bad.safetensors", state.views(), {{std::string(kTiedKey), bad}});
    Pair untied(false);
    try {
      load_module_state(untied, dir / "bad.safetensors");
      FAIL() << "no error for " << bad;
    } catch (const StateDictError& e) {
      FAIL() << "a state error instead of the metadata's: " << e.what();
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
      EXPECT_NE(msg.find("vigil.tied"), std::string::npos) << msg;
    }
  }
}

TEST(TiedWeights, AnOptimizerOverUniqueParametersStepsTheTieOnce) {
  ::torch::manual_seed(8);
  Pair m(true);
  const auto x = ::torch::tensor({0, 3, 4}, ::torch::kLong);
  const auto y = ::torch::tensor({1, 1, 2}, ::torch::kLong);
  auto loss_of = [&](Pair& p) { return ::torch::nn::functional::cross_entropy(p.forward(x), y); };
  // By hand: w - lr * dL/dw, where the gradient sums both uses of w.
  const auto w0 = m.emb->weight.detach().clone();
  loss_of(m).backward();
  const auto expected = w0 - 0.5 * m.emb->weight.grad();

  auto step_with = [&](bool unique) {
    ::torch::manual_seed(8);
    Pair p(true);
    ::torch::optim::SGD sgd(unique ? unique_parameters(p) : p.parameters(),
                            ::torch::optim::SGDOptions(0.5));
    sgd.zero_grad();
    loss_of(p).backward();
    sgd.step();
    return p.emb->weight.detach().clone();
  };
  EXPECT_TRUE(::torch::allclose(step_with(true), expected, 0, 1e-7));
  // Over parameters(), the tied tensor is stepped twice: the test can tell.
  EXPECT_FALSE(::torch::allclose(step_with(false), expected, 0, 1e-4));
}

namespace {

struct Tokens {
  ::torch::Tensor x, y;
};

// Four fixed batches of token windows, one pass.
class FixedTokens : public DataSource<Tokens> {
 public:
  explicit FixedTokens(std::vector<Tokens> batches) : batches_(std::move(batches)) {}
  void set_epoch(std::int64_t) override { i_ = 0; }
  std::optional<Tokens> next() override {
    if (i_ >= batches_.size()) return std::nullopt;
    return batches_[i_++];
  }
  std::optional<std::int64_t> batches_per_epoch() const override {
    return static_cast<std::int64_t>(batches_.size());
  }
  nlohmann::json state() const override { return {{"i", i_}}; }
  void load_state(const nlohmann::json& s) override { i_ = s.at("i").get<std::size_t>(); }

 private:
  std::vector<Tokens> batches_;
  std::size_t i_ = 0;
};

std::vector<Tokens> token_batches() {
  auto gen = ::at::detail::createCPUGenerator(21);
  std::vector<Tokens> out;
  for (std::int64_t b = 0; b < 4; ++b) {
    // Micro-batches of 3 and 2 windows: example-weighted accumulation is not a plain mean.
    auto w = ::torch::randint(32, {b % 2 == 0 ? 3 : 2, 9}, gen, ::torch::kLong);
    out.push_back({w.slice(1, 0, 8), w.slice(1, 1, 9)});
  }
  return out;
}

StepResult lm_step(GptImpl& m, const Tokens& b) {
  StepResult r;
  r.loss = ::torch::nn::functional::cross_entropy(m.forward(b.x).flatten(0, 1), b.y.flatten());
  r.count = b.x.size(0);
  return r;
}

}  // namespace

TEST(TiedWeights, TheTrainerClipsAndAccumulatesATiedModelAsAManualLoop) {
  ::torch::set_num_threads(1);
  const auto batches = token_batches();
  constexpr double kClip = 0.05;

  auto trained = tiny_gpt(9);
  auto opt = make_optimizer(OptimizerKind::Adam, unique_parameters(*trained), {{"lr", 0.01}});
  FixedTokens source(batches);
  Trainer t(TrainerOptions{}.with_threads(1).with_epochs(1).with_accumulate(2).with_clip_grad_norm(
      kClip));
  GptImpl& net = *trained;
  t.fit<Tokens>(trained.ptr(), *opt, source, [&net](const Tokens& b) { return lm_step(net, b); });

  auto manual = tiny_gpt(9);
  const auto params = unique_parameters(*manual);
  auto ref = make_optimizer(OptimizerKind::Adam, params, {{"lr", 0.01}});
  manual->train();
  double first_norm = 0;
  for (std::size_t s = 0; s < batches.size(); s += 2) {
    ref->zero_grad();
    std::int64_t seen = 0;
    for (std::size_t k = s; k < s + 2; ++k) {
      auto r = lm_step(*manual, batches[k]);
      (r.loss * static_cast<double>(r.count)).backward();
      seen += r.count;
    }
    {
      ::torch::NoGradGuard no_grad;
      for (auto& p : params) p.mutable_grad().mul_(1.0 / static_cast<double>(seen));
    }
    const double norm = nn::utils::clip_grad_norm_(params, kClip);
    if (s == 0) first_norm = norm;
    ref->step();
  }
  EXPECT_GT(first_norm, kClip);  // clipping did something
  const auto a = module_state(*trained), b = module_state(*manual);
  ASSERT_EQ(a.names(), b.names());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(::torch::equal(a.tensors()[i], b.tensors()[i])) << a.names()[i];
  const auto p = trained->named_parameters();
  EXPECT_EQ(impl(p["lm_head.weight"]), impl(p["transformer.wte.weight"]));
}

TEST(TiedWeights, TheMovingAverageOfATiedModelStaysTied) {
  auto model = tiny_gpt(10);
  ModelEma ema(ModelEmaOptions{}.with_decay(0.5).with_warmup(false));
  ema.reset(*model);
  EXPECT_EQ(ema.averaged().names(), module_state(*model).names());
  const auto before = module_state(*model).clone();
  {
    ::torch::NoGradGuard no_grad;
    for (auto& p : unique_parameters(*model)) p.add_(1.0);
  }
  ema.update(*model, 5);  // decay 0.5: halfway between the old and new weights
  auto copy = tiny_gpt(11);
  ema.copy_to(*copy);
  const auto p = copy->named_parameters();
  EXPECT_EQ(impl(p["lm_head.weight"]), impl(p["transformer.wte.weight"]));
  EXPECT_TRUE(
      ::torch::allclose(p["lm_head.weight"], before.at("transformer.wte.weight") + 0.5, 0, 1e-6));
}
