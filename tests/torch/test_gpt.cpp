// Gpt: nanoGPT's parameter names and initialisation, logits for every position, causality, input
// checks, the tied output layer counted once, seeded sampling (greedy, top-k, cropping) and
// learning a repeated sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "vigil/torch/gpt.hpp"
#include "vigil/torch/module_state.hpp"

using namespace vigil;
using namespace vigil::torch;

namespace {

GptOptions small() {
  return GptOptions{}.with_vocab_size(64).with_context(16).with_layers(2).with_heads(2).with_embed(
      32);
}

Gpt make(std::uint64_t seed, const GptOptions& o = small()) {
  ::torch::manual_seed(seed);
  return Gpt(o);
}

::torch::Tensor random_tokens(std::int64_t batch, std::int64_t time, std::int64_t vocab,
                              std::uint64_t seed) {
  auto gen = ::at::detail::createCPUGenerator(seed);
  return ::torch::randint(vocab, {batch, time}, gen, ::torch::kLong);
}

// Greedy continuation computed step by step with forward(), cropping to the context.
std::vector<std::int64_t> greedy_by_hand(GptImpl& m, std::vector<std::int64_t> seq, int n) {
  ::torch::NoGradGuard no_grad;
  std::vector<std::int64_t> out;
  const auto context = static_cast<std::size_t>(m.options().context);
  for (int i = 0; i < n; ++i) {
    const std::size_t start = seq.size() > context ? seq.size() - context : 0;
    std::vector<std::int64_t> window(seq.begin() + static_cast<std::ptrdiff_t>(start), seq.end());
    auto logits = m.forward(::torch::tensor(window).view({1, -1}));
    out.push_back(logits[0][-1].argmax().item<std::int64_t>());
    seq.push_back(out.back());
  }
  return out;
}

}  // namespace

TEST(Gpt, ParameterNamesAreNanoGptsWithTheOutputLayerTied) {
  auto m = make(1);
  std::vector<std::string> expected{"transformer.wte.weight", "transformer.wpe.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string h = "transformer.h." + std::to_string(i) + ".";
    for (const char* n :
         {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
          "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      expected.push_back(h + n);
  }
  expected.push_back("transformer.ln_f.weight");
  expected.push_back("transformer.ln_f.bias");
  const auto state = module_state(*m);
  EXPECT_EQ(state.names(), expected);  // lm_head.weight is transformer.wte.weight, listed once
  std::vector<std::string> all;
  for (const auto& p : m->named_parameters()) all.push_back(p.key());
  EXPECT_EQ(all.back(), "lm_head.weight");
  EXPECT_EQ(m->named_parameters()["lm_head.weight"].unsafeGetTensorImpl(),
            m->named_parameters()["transformer.wte.weight"].unsafeGetTensorImpl());
  EXPECT_EQ(tied_names(*m), (std::vector<std::pair<std::string, std::string>>{
                                {"lm_head.weight", "transformer.wte.weight"}}));
  EXPECT_EQ(state.at("transformer.wte.weight").sizes(), (std::vector<std::int64_t>{64, 32}));
  EXPECT_EQ(state.at("transformer.wpe.weight").sizes(), (std::vector<std::int64_t>{16, 32}));
  EXPECT_EQ(state.at("transformer.h.0.attn.c_attn.weight").sizes(),
            (std::vector<std::int64_t>{96, 32}));
  EXPECT_EQ(state.at("transformer.h.1.mlp.c_fc.weight").sizes(),
            (std::vector<std::int64_t>{128, 32}));
  EXPECT_EQ(state.at("transformer.h.1.mlp.c_proj.weight").sizes(),
            (std::vector<std::int64_t>{32, 128}));
}

TEST(Gpt, InitialisedAsNanoGpt) {
  auto m = make(2, GptOptions(small()).with_embed(64).with_layers(4));
  const auto s = module_state(*m);
  auto std_of = [&](const std::string& n) { return s.at(n).std().item<double>(); };
  // 1024 samples and more: the estimated std is within a few percent.
  EXPECT_NEAR(std_of("transformer.h.0.attn.c_attn.weight"), 0.02, 0.002);
  EXPECT_NEAR(std_of("transformer.h.3.mlp.c_fc.weight"), 0.02, 0.002);
  EXPECT_NEAR(std_of("transformer.wte.weight"), 0.02, 0.002);
  EXPECT_NEAR(std_of("transformer.wpe.weight"), 0.02, 0.002);
  const double projection = 0.02 / std::sqrt(8.0);
  EXPECT_NEAR(std_of("transformer.h.0.attn.c_proj.weight"), projection, projection * 0.1);
  EXPECT_NEAR(std_of("transformer.h.2.mlp.c_proj.weight"), projection, projection * 0.1);
  EXPECT_EQ(s.at("transformer.h.1.attn.c_attn.bias").abs().max().item<float>(), 0.0f);
  EXPECT_EQ(s.at("transformer.h.1.mlp.c_proj.bias").abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(::torch::equal(s.at("transformer.ln_f.weight"), ::torch::ones({64})));
  EXPECT_TRUE(::torch::equal(s.at("transformer.h.0.ln_1.bias"), ::torch::zeros({64})));
}

TEST(Gpt, ForwardGivesLogitsForEveryPosition) {
  auto m = make(3);
  const auto logits = m->forward(random_tokens(3, 10, 64, 1));
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{3, 10, 64}));
  EXPECT_EQ(logits.scalar_type(), ::torch::kFloat);
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
  EXPECT_EQ(m->forward(random_tokens(1, 16, 64, 2)).sizes(),
            (std::vector<std::int64_t>{1, 16, 64}));
}

TEST(Gpt, APositionSeesOnlyItsPast) {
  auto m = make(4);
  m->eval();
  ::torch::NoGradGuard no_grad;
  const auto a = random_tokens(2, 16, 64, 3);
  for (std::int64_t t : {0, 7, 15}) {
    auto b = a.clone();
    b.select(1, t).add_(1).remainder_(64);
    const auto la = m->forward(a), lb = m->forward(b);
    if (t > 0) {
      EXPECT_TRUE(::torch::allclose(la.slice(1, 0, t), lb.slice(1, 0, t), 0, 1e-6))
          << "a logit before position " << t << " changed";
    }
    // From t on the outputs do change: the comparison can tell.
    EXPECT_GT((la.slice(1, t) - lb.slice(1, t)).abs().max().item<double>(), 1e-4);
  }
}

TEST(Gpt, BadInputsAreInputErrors) {
  auto m = make(5);
  auto message = [&](const ::torch::Tensor& x) {
    try {
      m->forward(x);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(random_tokens(2, 4, 64, 1).to(::torch::kFloat)).find("int64"),
            std::string::npos);
  EXPECT_NE(message(random_tokens(1, 4, 64, 1).flatten()).find("[batch, time]"), std::string::npos);
  EXPECT_NE(message(::torch::zeros({2, 0}, ::torch::kLong)).find("1 to 16"), std::string::npos);
  EXPECT_NE(message(random_tokens(2, 17, 64, 1)).find("17 tokens per row"), std::string::npos);
  auto x = random_tokens(2, 4, 64, 1);
  x[1][2] = 64;
  EXPECT_NE(message(x).find("token 64 is outside the vocabulary [0, 64)"), std::string::npos);
  x[1][2] = -3;
  EXPECT_NE(message(x).find("token -3"), std::string::npos);
}

TEST(Gpt, NumParametersCountsTheTiedWeightOnce) {
  auto m = make(6);
  const std::int64_t V = 64, T = 16, C = 32, L = 2;
  const std::int64_t block =
      2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
  EXPECT_EQ(m->num_parameters(), V * C + T * C + L * block + 2 * C);
  std::int64_t with_repeats = 0;
  for (const auto& p : m->parameters()) with_repeats += p.numel();
  EXPECT_EQ(with_repeats, m->num_parameters() + V * C);
}

TEST(Gpt, OptionsAreCheckedAndRoundTripThroughJson) {
  EXPECT_NO_THROW(small().validate());
  EXPECT_THROW(GptOptions{}.with_layers(0).validate(), OptionError);
  EXPECT_THROW(GptOptions{}.with_vocab_size(0).validate(), OptionError);
  EXPECT_THROW(GptOptions{}.with_embed(30).with_heads(4).validate(), OptionError);
  EXPECT_THROW(GptOptions{}.with_dropout(1.0).validate(), OptionError);
  EXPECT_THROW(GptOptions{}.with_dropout(-0.1).validate(), OptionError);
  EXPECT_THROW(Gpt(GptOptions{}.with_context(0)), OptionError);

  const auto o = GptOptions(small()).with_dropout(0.25);
  const auto j = o.to_json();
  EXPECT_EQ(j.at("kind"), "gpt");
  EXPECT_EQ(j.at("embed"), 32);
  EXPECT_EQ(GptOptions::from_json(j), o);
  EXPECT_EQ(GptOptions::from_json(nlohmann::json::object()), GptOptions{});
  EXPECT_EQ(GptOptions::from_json({{"layers", 3}}), GptOptions{}.with_layers(3));
  EXPECT_THROW(GptOptions::from_json({{"kind", "mlp"}}), InputError);
  EXPECT_THROW(GptOptions::from_json({{"layer", 3}}), InputError);
  EXPECT_THROW(GptOptions::from_json({{"layers", 2.5}}), InputError);
  EXPECT_THROW(GptOptions::from_json({{"dropout", "0.1"}}), InputError);
  EXPECT_THROW(GptOptions::from_json(nlohmann::json::array()), InputError);
}

TEST(Gpt, GenerateIsSeededByItsOwnGenerator) {
  auto m = make(7);
  m->train();
  const std::vector<std::int64_t> prompt{1, 2, 3};
  const auto o = GenerateOptions{}.with_tokens(20).with_seed(11);
  ::torch::manual_seed(99);
  const auto a = generate(*m, prompt, o);
  const float after = ::torch::rand({1}).item<float>();
  ::torch::manual_seed(99);
  EXPECT_EQ(::torch::rand({1}).item<float>(), after);  // the global generator was not used
  EXPECT_TRUE(m->is_training());                       // the mode is restored
  ASSERT_EQ(a.size(), 20u);
  for (auto t : a) EXPECT_TRUE(t >= 0 && t < 64);
  EXPECT_EQ(generate(*m, prompt, o), a);
  // An untrained model is close to uniform over 64 tokens: another seed gives another sequence
  // (the same 20 tokens would have a chance of about 64^-20).
  EXPECT_NE(generate(*m, prompt, GenerateOptions(o).with_seed(12)), a);
  m->eval();
  generate(*m, prompt, o);
  EXPECT_FALSE(m->is_training());
}

TEST(Gpt, TemperatureZeroAndTopKOneAreGreedyAcrossTheContext) {
  auto m = make(8);
  // Scaled-up weights: confident, varied predictions rather than an almost uniform argmax.
  {
    ::torch::NoGradGuard no_grad;
    for (auto& p : unique_parameters(*m)) p.mul_(20);
  }
  m->eval();
  std::vector<std::int64_t> prompt;
  for (int i = 0; i < 14; ++i) prompt.push_back((i * 7) % 64);
  // 14 + 10 tokens: the last steps see only the last 16.
  const auto by_hand = greedy_by_hand(*m, prompt, 10);
  const auto greedy = generate(*m, prompt, GenerateOptions{}.with_tokens(10).with_temperature(0));
  EXPECT_EQ(greedy, by_hand);
  EXPECT_EQ(generate(*m, prompt, GenerateOptions{}.with_tokens(10).with_top_k(1).with_seed(3)),
            greedy);
  const auto sampled = generate(*m, prompt, GenerateOptions{}.with_tokens(10).with_seed(3));
  EXPECT_EQ(sampled.size(), 10u);
}

TEST(Gpt, GenerateChecksItsOptionsAndPrompt) {
  auto m = make(9);
  const std::vector<std::int64_t> prompt{1};
  EXPECT_THROW(generate(*m, prompt, GenerateOptions{}.with_tokens(0)), OptionError);
  EXPECT_THROW(generate(*m, prompt, GenerateOptions{}.with_temperature(-0.5)), OptionError);
  EXPECT_THROW(generate(*m, prompt, GenerateOptions{}.with_temperature(std::nan(""))), OptionError);
  EXPECT_THROW(generate(*m, prompt, GenerateOptions{}.with_top_k(0)), OptionError);
  EXPECT_THROW(generate(*m, {}, GenerateOptions{}), InputError);
  EXPECT_THROW(generate(*m, std::vector<std::int64_t>(17, 1), GenerateOptions{}), InputError);
  EXPECT_THROW(generate(*m, {1, 64}, GenerateOptions{}), InputError);
  EXPECT_THROW(generate(*m, {-1}, GenerateOptions{}), InputError);
  EXPECT_NO_THROW(generate(*m, std::vector<std::int64_t>(16, 1), GenerateOptions{}.with_tokens(2)));
}

TEST(Gpt, LearnsARepeatedSequence) {
  ::torch::set_num_threads(1);
  auto m = make(10, GptOptions(small()).with_vocab_size(256));
  std::string text;
  while (text.size() < 200) text += "abc";
  auto data = ::torch::tensor(std::vector<std::int64_t>(text.begin(), text.end()));
  ::torch::optim::Adam opt(unique_parameters(*m), ::torch::optim::AdamOptions(3e-3));
  auto loss_at = [&](std::int64_t step) {
    // Eight windows of 16 at offsets that cover all three phases.
    std::vector<::torch::Tensor> x, y;
    for (std::int64_t b = 0; b < 8; ++b) {
      const std::int64_t s = (step * 5 + b * 7) % 150;
      x.push_back(data.slice(0, s, s + 16));
      y.push_back(data.slice(0, s + 1, s + 17));
    }
    const auto logits = m->forward(::torch::stack(x));
    return ::torch::nn::functional::cross_entropy(logits.flatten(0, 1),
                                                  ::torch::stack(y).flatten());
  };
  const double first = loss_at(0).item<double>();
  EXPECT_NEAR(first, std::log(256.0), 0.5);  // about uniform at the start
  double last = first;
  for (std::int64_t step = 0; step < 150 && last > 0.05; ++step) {
    opt.zero_grad();
    auto loss = loss_at(step);
    loss.backward();
    opt.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, 0.1);
  m->eval();
  EXPECT_EQ(generate(*m, {'a', 'b'}, GenerateOptions{}.with_tokens(7).with_temperature(0)),
            (std::vector<std::int64_t>{'c', 'a', 'b', 'c', 'a', 'b', 'c'}));
}
