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

// A weight and a counter buffer made directly on `device`: libtorch 1.13's Module::to cannot move
// parameters to the meta device (set_data refuses the change of tensor type).
struct Net : nn::Module {
  explicit Net(torch::Device device, std::int64_t rows = 4) {
    const auto on = torch::TensorOptions().device(device);
    weight = register_parameter("weight", torch::randn({rows, 3}).to(on.dtype(torch::kFloat)));
    count = register_buffer("count", torch::zeros({2}, on.dtype(torch::kLong)));
  }
  torch::Tensor weight, count;
};

}  // namespace

TEST(Devices, ModuleStateIsCopiedIntoTheModulesOwnDevice) {
  Net cpu(torch::kCPU);
  cpu.count.fill_(7);
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", cpu);
  Net meta(torch::kMeta);
  const auto* weight = meta.weight.unsafeGetTensorImpl();
  const auto result = vt::load_module_state(meta, dir / "model.safetensors");
  EXPECT_EQ(result.loaded, 2u);
  // Loading copies into the existing tensors: none was replaced by the file's CPU tensor.
  EXPECT_EQ(meta.named_parameters()["weight"].unsafeGetTensorImpl(), weight);
  EXPECT_TRUE(meta.named_parameters()["weight"].device().is_meta());
  EXPECT_TRUE(meta.named_parameters()["weight"].requires_grad());
  EXPECT_TRUE(meta.named_buffers()["count"].device().is_meta());
}

TEST(Devices, ModuleStateLoadStillChecksShapesOnAnotherDevice) {
  Net cpu(torch::kCPU);
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", cpu);
  Net meta(torch::kMeta, /*rows=*/5);
  EXPECT_THROW(vt::load_module_state(meta, dir / "model.safetensors"), vigil::InputError);
}

TEST(Devices, OptimizerStateIsRestoredOntoTheParametersDevice) {
  Net cpu(torch::kCPU);
  auto opt = vt::make_optimizer(vt::OptimizerKind::Adam, cpu.parameters(), {{"lr", 0.01}});
  for (int i = 0; i < 3; ++i) {
    opt->zero_grad();
    (cpu.weight * cpu.weight).sum().backward();
    opt->step();
  }
  const auto saved = vt::optimizer_state(*opt, cpu);
  ASSERT_EQ(saved.tensors.size(), 3u);  // step, exp_avg, exp_avg_sq

  Net meta(torch::kMeta);
  auto restored = vt::make_optimizer(vt::OptimizerKind::Adam, meta.parameters(), {{"lr", 0.5}});
  vt::load_optimizer_state(*restored, meta, saved.json, saved.tensors.views());
  EXPECT_DOUBLE_EQ(vt::get_learning_rate(*restored), 0.01);
  ASSERT_EQ(restored->state().size(), 1u);
  const auto& adam =
      dynamic_cast<const torch::optim::AdamParamState&>(*restored->state().begin()->second);
  EXPECT_EQ(adam.step(), 3);
  EXPECT_TRUE(adam.exp_avg().device().is_meta());
  EXPECT_TRUE(adam.exp_avg_sq().device().is_meta());
  EXPECT_EQ(adam.exp_avg().sizes(), meta.weight.sizes());
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
