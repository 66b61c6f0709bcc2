// freeze_parameters: the matching parameters keep their values through training (Adam with
// weight decay included), the others train; bad patterns are refused with a clear message.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/torch/freeze.hpp"

namespace vt = vigil::torch;
using vigil::test::error_of;

namespace {

torch::nn::Sequential small_mlp() {
  torch::manual_seed(5);
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::ReLU(), torch::nn::Linear(8, 3));
}

}  // namespace

TEST(Freeze, MatchingParametersKeepTheirValuesThroughTraining) {
  auto net = small_mlp();
  const auto frozen = vt::freeze_parameters(*net, "^0\\.");
  EXPECT_EQ(frozen, (std::vector<std::string>{"0.weight", "0.bias"}));
  const auto before = net->named_parameters().values();
  std::vector<torch::Tensor> copies;
  for (const auto& p : before) copies.push_back(p.detach().clone());
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(0.1).weight_decay(0.5));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    net->forward(torch::randn({16, 4})).pow(2).mean().backward();
    opt.step();
  }
  const auto after = net->named_parameters();
  EXPECT_TRUE(torch::equal(after["0.weight"], copies[0]));
  EXPECT_TRUE(torch::equal(after["0.bias"], copies[1]));
  EXPECT_FALSE(torch::equal(after["2.weight"], copies[2]));
  EXPECT_FALSE(after["0.weight"].requires_grad());
  EXPECT_TRUE(after["2.weight"].requires_grad());
}

TEST(Freeze, ThePatternIsSearchedAnywhereInTheName) {
  auto net = small_mlp();
  EXPECT_EQ(vt::freeze_parameters(*net, "bias$"), (std::vector<std::string>{"0.bias", "2.bias"}));
}

TEST(Freeze, BadPatternsAreRefused) {
  auto net = small_mlp();
  const auto invalid =
      error_of<vigil::OptionError>([&] { (void)vt::freeze_parameters(*net, "("); });
  EXPECT_NE(invalid.find("not a valid regular expression"), std::string::npos) << invalid;
  const auto none =
      error_of<vigil::OptionError>([&] { (void)vt::freeze_parameters(*net, "^9\\."); });
  EXPECT_NE(none.find("matches none of the model's parameters (0.weight, 0.bias, 2.weight, "
                      "2.bias)"),
            std::string::npos)
      << none;
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
}
