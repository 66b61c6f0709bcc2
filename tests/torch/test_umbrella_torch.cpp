// vigil/torch.hpp alone gives a program the adapter and the core.
#include "vigil/torch.hpp"

#include <gtest/gtest.h>

namespace vigil::torch {
namespace {

TEST(UmbrellaTorch, OneIncludeServesTheAdapterAndTheCore) {
  EarlyStopping stopping(EarlyStoppingOptions{}.with_patience(2));
  EXPECT_EQ(stopping.name(), "early_stopping");
  EXPECT_EQ(stopping.stopper().options().patience, 2);
  EXPECT_EQ(to_dtype(::torch::kFloat32), DType::F32);
}

}  // namespace
}  // namespace vigil::torch
