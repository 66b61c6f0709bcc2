// Device handling without a GPU: restores copy into the tensors where they live (here the meta
// device, which holds shapes and dtypes but no data), and saving refuses tensors without data.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"

namespace vt = vigil::torch;
namespace nn = torch::nn;

namespace {

nn::Sequential make_net() {
  torch::manual_seed(4);
  return nn::Sequential(nn::Linear(3, 4), nn::BatchNorm1d(4), nn::Linear(4, 2));
}

void expect_all_on_meta(const nn::Module& module) {
  for (const auto& p : module.named_parameters()) {
    EXPECT_TRUE(p.value().device().is_meta()) << p.key();
    EXPECT_TRUE(p.value().requires_grad()) << p.key();
  }
  for (const auto& b : module.named_buffers()) EXPECT_TRUE(b.value().device().is_meta()) << b.key();
}

}  // namespace

TEST(Devices, ModuleStateIsCopiedIntoTheModulesOwnDevice) {
  auto cpu = make_net();
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", *cpu);
  auto meta = make_net();
  meta->to(torch::kMeta);
  const auto result = vt::load_module_state(*meta, dir / "model.safetensors");
  EXPECT_EQ(result.loaded, 9u);  // 2 x (weight, bias), BatchNorm: weight, bias, 3 buffers
  // Loading copies into the existing tensors: none was replaced by the file's CPU tensor.
  expect_all_on_meta(*meta);
}

TEST(Devices, ModuleStateLoadStillChecksShapesOnAnotherDevice) {
  auto cpu = nn::Sequential(nn::Linear(3, 4));
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", *cpu);
  auto meta = nn::Sequential(nn::Linear(3, 5));
  meta->to(torch::kMeta);
  EXPECT_THROW(vt::load_module_state(*meta, dir / "model.safetensors"), vigil::InputError);
}

TEST(Devices, OptimizerStateIsRestoredOntoTheParametersDevice) {
  auto cpu = make_net();
  auto opt = vt::make_optimizer(vt::OptimizerKind::Adam, cpu->parameters(), {{"lr", 0.01}});
  opt->zero_grad();
  cpu->forward(torch::randn({5, 3})).sum().backward();
  opt->step();
  const auto saved = vt::optimizer_state(*opt, *cpu);
  ASSERT_FALSE(saved.tensors.empty());

  auto meta = make_net();
  meta->to(torch::kMeta);
  auto restored = vt::make_optimizer(vt::OptimizerKind::Adam, meta->parameters(), {{"lr", 0.5}});
  vt::load_optimizer_state(*restored, *meta, saved.json, saved.tensors.views());
  EXPECT_DOUBLE_EQ(vt::get_learning_rate(*restored), 0.01);
  const auto& params = restored->param_groups()[0].params();
  std::size_t states = 0;
  for (const auto& [key, state] : restored->state()) {
    const auto& adam = dynamic_cast<const torch::optim::AdamParamState&>(*state);
    EXPECT_EQ(adam.step(), 1);
    EXPECT_TRUE(adam.exp_avg().device().is_meta());
    EXPECT_TRUE(adam.exp_avg_sq().device().is_meta());
    ++states;
  }
  EXPECT_EQ(states, params.size());
}

TEST(Devices, SavingATensorWithoutDataIsRefusedByName) {
  vt::NamedTensors tensors;
  try {
    tensors.add("w", torch::zeros({2, 2}, torch::TensorOptions().device(torch::kMeta)));
    FAIL() << "a meta tensor was accepted";
  } catch (const vigil::OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("meta"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(tensors.empty());
}
