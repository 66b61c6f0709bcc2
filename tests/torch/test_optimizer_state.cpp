// Optimizer state round trips: for every supported optimizer, a step after save + restore into a
// fresh model and optimizer is bitwise the step an uninterrupted run takes.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"

namespace vt = vigil::torch;
namespace nn = torch::nn;
using nlohmann::json;

namespace {

nn::Sequential make_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  return nn::Sequential(nn::Linear(6, 5), nn::ReLU(), nn::Linear(5, 3));
}

struct Batch {
  torch::Tensor x, y;
};
Batch batch() {
  auto g = torch::make_generator<at::CPUGeneratorImpl>(123);
  return {torch::randn({8, 6}, g), torch::randint(0, 3, {8}, g)};
}

void train_step(nn::Sequential& net, torch::optim::Optimizer& opt, const Batch& b) {
  opt.zero_grad();
  auto loss = torch::nn::functional::cross_entropy(net->forward(b.x), b.y);
  loss.backward();
  opt.step();
}

struct Case {
  const char* label;
  vt::OptimizerKind kind;
  json options;
};

std::vector<Case> cases() {
  using K = vt::OptimizerKind;
  return {
      {"sgd_momentum", K::SGD, {{"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 1e-3}}},
      {"sgd_nesterov", K::SGD, {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}}},
      {"adam", K::Adam, {{"lr", 0.01}}},
      {"adam_amsgrad", K::Adam, {{"lr", 0.01}, {"amsgrad", true}, {"betas", {0.8, 0.99}}}},
      {"adamw", K::AdamW, {{"lr", 0.01}, {"weight_decay", 0.1}}},
      {"rmsprop_centered_momentum",
       K::RMSprop,
       {{"lr", 0.01}, {"momentum", 0.5}, {"centered", true}, {"alpha", 0.9}}},
      {"adagrad",
       K::Adagrad,
       {{"lr", 0.1}, {"lr_decay", 0.01}, {"initial_accumulator_value", 0.1}}},
      // Every option away from its default, so a field dropped on either side shows.
      {"sgd_every_option",
       K::SGD,
       {{"lr", 0.05},
        {"momentum", 0.8},
        {"dampening", 0.1},
        {"weight_decay", 1e-3},
        {"nesterov", false}}},
      {"adam_every_option",
       K::Adam,
       {{"lr", 0.02},
        {"betas", {0.85, 0.995}},
        {"eps", 1e-7},
        {"weight_decay", 1e-3},
        {"amsgrad", true}}},
      {"adamw_every_option",
       K::AdamW,
       {{"lr", 0.02},
        {"betas", {0.85, 0.995}},
        {"eps", 1e-7},
        {"weight_decay", 0.05},
        {"amsgrad", true}}},
      {"rmsprop_every_option",
       K::RMSprop,
       {{"lr", 0.005},
        {"alpha", 0.95},
        {"eps", 1e-6},
        {"weight_decay", 1e-3},
        {"momentum", 0.3},
        {"centered", true}}},
      {"adagrad_every_option",
       K::Adagrad,
       {{"lr", 0.05},
        {"lr_decay", 0.02},
        {"weight_decay", 1e-3},
        {"initial_accumulator_value", 0.2},
        {"eps", 1e-9}}},
  };
}

class OptimizerRoundTrip : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

}  // namespace

TEST_P(OptimizerRoundTrip, StepAfterRestoreIsBitwiseTheUninterruptedStep) {
  const auto& c = GetParam();
  const auto b = batch();
  constexpr int k = 3;

  auto net = make_net(1);
  auto opt = vt::make_optimizer(c.kind, net->parameters(), c.options);
  for (int i = 0; i < k; ++i) train_step(net, *opt, b);

  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", *net);
  vt::save_optimizer_state(dir / "optimizer.safetensors", *opt, *net);

  // A fresh run: different initial weights and default options until the state is loaded.
  auto net2 = make_net(99);
  auto opt2 = vt::make_optimizer(c.kind, net2->parameters());
  vt::load_module_state(*net2, dir / "model.safetensors");
  vt::load_optimizer_state(*opt2, *net2, dir / "optimizer.safetensors");
  EXPECT_EQ(vt::optimizer_state(*opt2, *net2).json, vt::optimizer_state(*opt, *net).json);

  train_step(net, *opt, b);
  train_step(net2, *opt2, b);
  auto s1 = vt::module_state(*net), s2 = vt::module_state(*net2);
  for (const auto& name : s1.names())
    EXPECT_TRUE(torch::equal(s1.at(name), s2.at(name))) << c.label << " " << name;
  auto o1 = vt::optimizer_state(*opt, *net), o2 = vt::optimizer_state(*opt2, *net2);
  ASSERT_EQ(o1.tensors.names(), o2.tensors.names());
  for (const auto& name : o1.tensors.names())
    EXPECT_TRUE(torch::equal(o1.tensors.at(name), o2.tensors.at(name))) << c.label << " " << name;
}

TEST_P(OptimizerRoundTrip, GivenOptionsAreSavedAndRestored) {
  const auto& c = GetParam();
  auto net = make_net(1);
  auto opt = vt::make_optimizer(c.kind, net->parameters(), c.options);
  train_step(net, *opt, batch());
  const auto saved = vt::optimizer_state(*opt, *net);
  auto opt2 = vt::make_optimizer(c.kind, net->parameters());
  vt::load_optimizer_state(*opt2, *net, saved.json, saved.tensors.views());
  const auto restored = vt::optimizer_state(*opt2, *net).json["param_groups"][0];
  for (const auto& [key, value] : c.options.items())
    EXPECT_EQ(restored.at(key), value) << c.label << " " << key;
}

TEST_P(OptimizerRoundTrip, WithoutTheStateTheNextStepDiffers) {
  // Guards the test above: restoring only the weights is not enough for these optimizers.
  const auto& c = GetParam();
  const auto b = batch();
  auto net = make_net(1);
  auto opt = vt::make_optimizer(c.kind, net->parameters(), c.options);
  for (int i = 0; i < 3; ++i) train_step(net, *opt, b);
  auto net2 = make_net(99);
  vt::load_module_state(*net2, vt::module_state(*net).views());
  auto opt2 = vt::make_optimizer(c.kind, net2->parameters(), c.options);
  train_step(net, *opt, b);
  train_step(net2, *opt2, b);
  EXPECT_FALSE(torch::equal(net[0]->as<nn::Linear>()->weight, net2[0]->as<nn::Linear>()->weight));
}

INSTANTIATE_TEST_SUITE_P(All, OptimizerRoundTrip, ::testing::ValuesIn(cases()),
                         [](const auto& test) { return std::string(test.param.label); });

TEST(OptimizerState, NamesTensorsByParameterAndKeepsStepAndOptions) {
  auto net = make_net(1);
  auto opt = vt::make_optimizer(vt::OptimizerKind::Adam, net->parameters(),
                                {{"lr", 0.01}, {"amsgrad", true}});
  auto before = vt::optimizer_state(*opt, *net);
  EXPECT_TRUE(before.tensors.empty());  // Adam creates its state lazily, as in PyTorch
  for (int i = 0; i < 2; ++i) train_step(net, *opt, batch());
  vt::set_learning_rate(*opt, 0.005);
  auto s = vt::optimizer_state(*opt, *net);
  EXPECT_EQ(s.tensors.at("state.0.weight.step").item<std::int64_t>(), 2);
  EXPECT_EQ(s.tensors.at("state.2.bias.exp_avg").sizes(), torch::IntArrayRef({3}));
  EXPECT_TRUE(s.tensors.find("state.0.weight.max_exp_avg_sq"));
  EXPECT_EQ(s.tensors.size(), 4u * 4u);
  const auto& g = s.json["param_groups"][0];
  EXPECT_EQ(s.json["optimizer"], "adam");
  EXPECT_EQ(g["params"], json({"0.weight", "0.bias", "2.weight", "2.bias"}));
  EXPECT_EQ(g["lr"], 0.005);
  EXPECT_EQ(g["betas"], json({0.9, 0.999}));
  EXPECT_EQ(g["amsgrad"], true);
  for (auto key : {"eps", "weight_decay"}) EXPECT_TRUE(g.contains(key)) << key;
}

TEST(OptimizerState, EveryOptionNameIsWritten) {
  auto net = make_net(1);
  const std::map<vt::OptimizerKind, std::vector<std::string>> expected = {
      {vt::OptimizerKind::SGD, {"lr", "momentum", "dampening", "weight_decay", "nesterov"}},
      {vt::OptimizerKind::AdamW, {"lr", "betas", "eps", "weight_decay", "amsgrad"}},
      {vt::OptimizerKind::RMSprop, {"lr", "alpha", "eps", "weight_decay", "momentum", "centered"}},
      {vt::OptimizerKind::Adagrad,
       {"lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"}}};
  for (const auto& [kind, keys] : expected) {
    auto opt = vt::make_optimizer(kind, net->parameters());
    auto g = vt::optimizer_state(*opt, *net).json["param_groups"][0];
    for (const auto& k : keys) EXPECT_TRUE(g.contains(k)) << vt::optimizer_name(kind) << " " << k;
    EXPECT_EQ(g.size(), keys.size() + 1) << g.dump();
  }
  auto adamw = vt::make_optimizer(vt::OptimizerKind::AdamW, net->parameters());
  EXPECT_EQ(vt::optimizer_state(*adamw, *net).json["param_groups"][0]["weight_decay"], 0.01);
}

TEST(OptimizerState, LbfgsIsRefusedClearly) {
  auto net = make_net(1);
  torch::optim::LBFGS lbfgs(net->parameters());
  try {
    (void)vt::optimizer_state(lbfgs, *net);
    FAIL();
  } catch (const vigil::OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("LBFGS"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)vt::parse_optimizer("lbfgs"), vigil::OptionError);
  EXPECT_EQ(vt::parse_optimizer("AdamW"), vt::OptimizerKind::AdamW);
}

TEST(OptimizerState, BadOptionsAreOptionErrors) {
  auto net = make_net(1);
  EXPECT_THROW(
      (void)vt::make_optimizer(vt::OptimizerKind::Adam, net->parameters(), {{"momentum", 0.9}}),
      vigil::OptionError);
  EXPECT_THROW(
      (void)vt::make_optimizer(vt::OptimizerKind::SGD, net->parameters(), {{"lr", "fast"}}),
      vigil::OptionError);
  EXPECT_THROW((void)vt::make_optimizer(vt::OptimizerKind::SGD, net->parameters(), {{"lr", -1.0}}),
               vigil::OptionError);
  EXPECT_THROW((void)vt::make_optimizer(vt::OptimizerKind::SGD, net->parameters(),
                                        {{"lr", 0.1}, {"nesterov", true}}),
               vigil::OptionError);
}

TEST(OptimizerState, MismatchedStateIsRefusedAndChangesNothing) {
  auto net = make_net(1);
  auto sgd = vt::make_optimizer(vt::OptimizerKind::SGD, net->parameters(),
                                {{"lr", 0.1}, {"momentum", 0.9}});
  train_step(net, *sgd, batch());
  auto saved = vt::optimizer_state(*sgd, *net).tensors.clone();
  auto saved_json = vt::optimizer_state(*sgd, *net).json;

  auto adam = vt::make_optimizer(vt::OptimizerKind::Adam, net->parameters());
  EXPECT_THROW(vt::load_optimizer_state(*adam, *net, saved_json, saved.views()), vigil::InputError);

  // A different model: same kind of optimizer, other shapes and names.
  torch::manual_seed(3);
  nn::Sequential other(nn::Linear(6, 4), nn::ReLU(), nn::Linear(4, 3));
  auto sgd2 = vt::make_optimizer(vt::OptimizerKind::SGD, other->parameters(), {{"lr", 0.5}});
  try {
    vt::load_optimizer_state(*sgd2, *other, saved_json, saved.views());
    FAIL();
  } catch (const vigil::InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("state.0.weight.momentum_buffer' has shape [5, 6], the parameter [4, 6]"),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_EQ(vt::get_learning_rate(*sgd2), 0.5);
  EXPECT_TRUE(vt::optimizer_state(*sgd2, *other).tensors.empty());

  // Parameters the optimizer does not hold, and a tensor with an unknown field.
  auto partial = vt::make_optimizer(vt::OptimizerKind::SGD, net[0]->parameters(), {{"lr", 0.1}});
  EXPECT_THROW(vt::load_optimizer_state(*partial, *net, saved_json, saved.views()),
               vigil::InputError);
  vt::NamedTensors odd = saved.clone();
  odd.add("state.0.bias.exp_avg", torch::zeros({5}));
  try {
    vt::load_optimizer_state(*sgd, *net, saved_json, odd.views());
    FAIL();
  } catch (const vigil::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("keeps no 'exp_avg'"), std::string::npos) << e.what();
  }
}

TEST(OptimizerState, IncompleteStateIsRefused) {
  auto net = make_net(1);
  auto opt = vt::make_optimizer(vt::OptimizerKind::Adam, net->parameters(), {{"amsgrad", true}});
  train_step(net, *opt, batch());
  const auto saved = vt::optimizer_state(*opt, *net);
  vt::NamedTensors partial;
  for (const auto& name : saved.tensors.names())
    if (name != "state.0.weight.max_exp_avg_sq" && name != "state.2.bias.step")
      partial.add(name, saved.tensors.at(name));
  auto opt2 = vt::make_optimizer(vt::OptimizerKind::Adam, net->parameters());
  try {
    vt::load_optimizer_state(*opt2, *net, saved.json, partial.views());
    FAIL();
  } catch (const vigil::InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("state of '0.weight' lacks 'max_exp_avg_sq'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'2.bias' has no step count"), std::string::npos) << msg;
  }
  EXPECT_TRUE(vt::optimizer_state(*opt2, *net).tensors.empty());
  EXPECT_EQ(vt::optimizer_state(*opt2, *net).json["param_groups"][0]["amsgrad"], false);
}

TEST(OptimizerState, OptimizerOverForeignTensorsIsRefused) {
  auto net = make_net(1);
  std::vector<torch::Tensor> params = net->parameters();
  params.push_back(torch::zeros({2}, torch::requires_grad()));
  auto opt = vt::make_optimizer(vt::OptimizerKind::SGD, params, {{"lr", 0.1}});
  EXPECT_THROW((void)vt::optimizer_state(*opt, *net), vigil::OptionError);
}

TEST(OptimizerState, FileWithoutOptimizerMetadataIsRefused) {
  auto net = make_net(1);
  auto opt = vt::make_optimizer(vt::OptimizerKind::SGD, net->parameters());
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", *net);
  try {
    vt::load_optimizer_state(*opt, *net, dir / "model.safetensors");
    FAIL();
  } catch (const vigil::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no optimizer state"), std::string::npos) << e.what();
  }
}

TEST(OptimizerState, LearningRateHelpers) {
  auto net = make_net(1);
  auto opt = vt::make_optimizer(vt::OptimizerKind::RMSprop, net->parameters());
  EXPECT_EQ(vt::get_learning_rate(*opt), 1e-2);
  vt::set_learning_rate(*opt, 3e-4);
  EXPECT_EQ(vt::get_learning_rate(*opt), 3e-4);
}
