// Gpt against PyTorch: scripts/load_in_python.py's GPT, loaded from a vigil-saved file with one
// copy of the tied weight, gives the C++ logits, and its language-model branch gives the C++
// test loss of a run directory made here by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"
#include "vigil/torch/gpt.hpp"
#include "vigil/torch/module_state.hpp"

namespace fs = std::filesystem;
using namespace vigil::torch;
using namespace vigil::test;

namespace {

fs::path scripts() {
  return vigil::test::source_dir() / "scripts";
}

GptOptions options() {
  return GptOptions{}
      .with_vocab_size(256)
      .with_context(16)
      .with_layers(2)
      .with_heads(2)
      .with_embed(32)
      .with_dropout(0.1);  // dropout: off in eval mode on both sides
}

// A model with weights far from their small initial values, so that every tensor matters.
Gpt perturbed(std::uint64_t seed) {
  ::torch::manual_seed(seed);
  Gpt m(options());
  ::torch::NoGradGuard no_grad;
  for (auto& p : unique_parameters(*m)) p.add_(::torch::randn_like(p) * 0.2);
  m->eval();
  return m;
}

void save(const fs::path& path, const Gpt& m) {
  save_module_state(path, *m, {{"vigil.model", m->options().to_json().dump()}});
}

}  // namespace

TEST(GptPython, PyTorchLoadsTheTiedFileAndGivesTheSameLogits) {
  if (!python_has_torch()) GTEST_SKIP() << kPython << " cannot import torch (python3-torch)";
  TempDir tmp;
  auto m = perturbed(1);
  save(tmp / "model.safetensors", m);
  const auto x = ::torch::randint(256, {2, 16}, ::torch::kLong);
  std::vector<std::vector<std::int64_t>> rows;
  for (std::int64_t b = 0; b < x.size(0); ++b) {
    const auto row = x[b].contiguous();
    rows.emplace_back(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
  }
  write_file(tmp / "input.json", nlohmann::json(rows).dump());
  write_file(tmp / "logits.py", R"(import json, struct, sys, torch
sys.path.insert(0, sys.argv[1])
import load_in_python as lp
state, metadata = lp.load_safetensors(sys.argv[2])
model = lp.GPT(json.loads(metadata["vigil.model"]))
model.load_state_dict(state)
model.eval()
print("tied", model.lm_head.weight is model.transformer.wte.weight)
with torch.no_grad():
    logits = model(torch.tensor(json.load(open(sys.argv[3]))))
open(sys.argv[4], "wb").write(struct.pack(f"<{logits.numel()}f", *logits.flatten().tolist()))
)");
  auto r = run_process({kPython, (tmp / "logits.py").string(), scripts().string(),
                        (tmp / "model.safetensors").string(), (tmp / "input.json").string(),
                        (tmp / "logits.f32").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("tied True"), std::string::npos) << r.out;

  ::torch::NoGradGuard no_grad;
  const auto ours = m->forward(x).contiguous();
  const std::string bytes = read_file(tmp / "logits.f32");
  ASSERT_EQ(bytes.size(), static_cast<std::size_t>(ours.numel()) * sizeof(float));
  auto theirs = ::torch::empty_like(ours);
  std::memcpy(theirs.data_ptr<float>(), bytes.data(), bytes.size());
  EXPECT_GT(ours.abs().max().item<double>(), 1.0);  // logits large enough to tell weights apart
  EXPECT_LT((ours - theirs).abs().max().item<double>(), 1e-5);
}

namespace {

// The test loss load_in_python.py computes: windows of T + 1 tokens stepping by T through each
// file's test segment, mean cross-entropy over all their targets.
std::pair<double, std::int64_t> cpp_test_loss(GptImpl& m, const ::torch::Tensor& tokens,
                                              const std::vector<std::pair<int, int>>& tests) {
  const std::int64_t T = m.options().context;
  ::torch::NoGradGuard no_grad;
  double total = 0;
  std::int64_t n = 0;
  for (auto [b, e] : tests)
    for (std::int64_t s = b; s + T + 1 <= e; s += T) {
      const auto w = tokens.slice(0, s, s + T + 1).to(::torch::kLong);
      const auto logits = m.forward(w.slice(0, 0, T).view({1, T}));
      total += ::torch::nn::functional::cross_entropy(
                   logits.view({T, -1}), w.slice(0, 1),
                   ::torch::nn::functional::CrossEntropyFuncOptions().reduction(::torch::kSum))
                   .item<double>();
      n += T;
    }
  return {total / static_cast<double>(n), n};
}

}  // namespace

TEST(GptPython, TheScriptsLanguageModelTestLossIsVigils) {
  if (!python_has_torch()) GTEST_SKIP() << kPython << " cannot import torch (python3-torch)";
  TempDir tmp;
  const fs::path run = tmp / "run";
  std::string text;
  for (int i = 0; text.size() < 3000; ++i)
    text += "line " + std::to_string(i * 37 % 101) + ": the cat sat on the mat.\n";
  text.resize(3000);
  write_file(run / "data/tokens.u8", text);
  // Two files; test segments whose lengths are not multiples of the window step.
  const std::vector<std::pair<int, int>> tests{{1300, 1500}, {2841, 3000}};
  // A file of 1500 bytes from `begin`: training up to `val`, validation up to `test`, then test.
  const auto file = [](const char* path, int begin, int val, int test) {
    return nlohmann::json{{"path", path},
                          {"begin", begin},
                          {"bytes", 1500},
                          {"train", {begin, val}},
                          {"validation", {val, test}},
                          {"test", {test, begin + 1500}}};
  };
  const auto files =
      nlohmann::json::array({file("a.txt", 0, 1200, 1300), file("b.txt", 1500, 2700, 2841)});
  write_file(run / "data/corpus.json",
             nlohmann::json{{"tokens", "tokens.u8"}, {"files", files}}.dump());
  write_file(run / "run.json", nlohmann::json{{"model", "gpt"}}.dump());

  auto m = perturbed(2);
  const auto tokens = ::torch::from_blob(text.data(), {3000}, ::torch::kUInt8).clone();
  // A few steps on the training part: a loss well below the uniform one, from every weight.
  {
    m->train();
    ::torch::optim::Adam opt(unique_parameters(*m), ::torch::optim::AdamOptions(3e-3));
    for (int step = 0; step < 40; ++step) {
      std::vector<::torch::Tensor> xs, ys;
      for (int b = 0; b < 8; ++b) {
        const std::int64_t s = (step * 131 + b * 149) % 1180;
        xs.push_back(tokens.slice(0, s, s + 16).to(::torch::kLong));
        ys.push_back(tokens.slice(0, s + 1, s + 17).to(::torch::kLong));
      }
      opt.zero_grad();
      ::torch::nn::functional::cross_entropy(m->forward(::torch::stack(xs)).flatten(0, 1),
                                             ::torch::stack(ys).flatten())
          .backward();
      opt.step();
    }
    m->eval();
  }
  fs::create_directories(run / "best");
  save(run / "best/model.safetensors", m);
  const auto [loss, n] = cpp_test_loss(*m, tokens, tests);
  EXPECT_EQ(n, (12 + 9) * 16);  // 1300..1476 and 2841..2969
  EXPECT_LT(loss, std::log(256.0) - 1.0);

  auto expect_script_loss = [&, loss = loss, n = n] {
    auto r = run_process({kPython, (scripts() / "load_in_python.py").string(), run.string()});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::smatch match;
    const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
    ASSERT_TRUE(std::regex_match(
        last, match,
        std::regex(R"(test loss ([0-9.]+) \(perplexity ([0-9.]+)\) on ([0-9]+) tokens\n)")))
        << r.out;
    EXPECT_NEAR(std::stod(match[1].str()), loss, 2e-6);
    EXPECT_NEAR(std::stod(match[2].str()), std::exp(loss), 1e-4 * std::exp(loss));
    EXPECT_EQ(std::stoll(match[3].str()), n);
  };
  expect_script_loss();
  // A file without the vigil.tied note (written from module_state() alone): GPT ties anyway.
  const auto state = module_state(*m);
  vigil::save_safetensors(run / "best/model.safetensors", state.views(),
                          {{"vigil.model", m->options().to_json().dump()}});
  ASSERT_EQ(vigil::SafetensorsFile::open(run / "best/model.safetensors")
                .metadata()
                .count(std::string(kTiedKey)),
            0u);
  expect_script_loss();
}
