// torch::Tensor <-> TensorView: dtype mapping, zero-copy views, copies, and a safetensors round
// trip for every dtype both sides have.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vt = vigil::torch;
using vigil::DType;

namespace {

const std::vector<std::pair<DType, c10::ScalarType>> kPairs = {
    {DType::F32, torch::kFloat},     {DType::F64, torch::kDouble}, {DType::F16, torch::kHalf},
    {DType::BF16, torch::kBFloat16}, {DType::I64, torch::kLong},   {DType::I32, torch::kInt},
    {DType::I16, torch::kShort},     {DType::I8, torch::kChar},    {DType::U8, torch::kByte},
    {DType::BOOL, torch::kBool}};

// A tensor of `type` with distinct, exactly representable values (and both bools).
torch::Tensor sample(c10::ScalarType type) {
  auto base = torch::arange(-6, 6, torch::kDouble).reshape({3, 4});
  if (type == torch::kByte) base = base + 6;
  if (type == torch::kBool) return base.remainder(2).eq(0);
  // Halves only for floating types: an integer tensor times 0.5 would be promoted to float.
  return c10::isFloatingType(type) ? (base * 0.5).to(type) : base.to(type);
}

}  // namespace

TEST(Bridge, DtypeMappingCoversEverySharedType) {
  for (auto [d, s] : kPairs) {
    EXPECT_EQ(vt::to_dtype(s), d) << vigil::dtype_name(d);
    EXPECT_EQ(vt::to_scalar_type(d), s) << vigil::dtype_name(d);
  }
  EXPECT_THROW(vt::to_dtype(torch::kComplexFloat), vigil::OptionError);
  for (auto d : {DType::U16, DType::U32, DType::U64, DType::F8_E4M3, DType::F8_E5M2})
    EXPECT_THROW(vt::to_scalar_type(d), vigil::OptionError) << vigil::dtype_name(d);
}

TEST(Bridge, ViewOfContiguousTensorIsZeroCopyAndLive) {
  auto t = torch::arange(12, torch::kFloat).reshape({3, 4});
  auto v = vt::view_of(t, "w");
  EXPECT_EQ(v.name, "w");
  EXPECT_EQ(v.dtype, DType::F32);
  EXPECT_EQ(v.shape, (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(static_cast<const void*>(v.data.data()), t.data_ptr());
  EXPECT_EQ(v.data.size(), 48u);
  t.mul_(2);  // in-place updates show through the view
  float second;
  std::memcpy(&second, v.data.data() + 4, 4);
  EXPECT_EQ(second, 2.0f);
}

TEST(Bridge, ScalarTensorHasEmptyShape) {
  auto v = vt::view_of(torch::scalar_tensor(7, torch::kLong), "step");
  EXPECT_TRUE(v.shape.empty());
  EXPECT_EQ(v.data.size(), 8u);
}

TEST(Bridge, ViewOfRefusesNonContiguousAndUndefined) {
  auto t = torch::arange(12, torch::kFloat).reshape({3, 4}).t();
  EXPECT_THROW(vt::view_of(t, "t"), vigil::OptionError);
  EXPECT_THROW(vt::view_of(torch::Tensor(), "u"), vigil::OptionError);
}

TEST(Bridge, NamedTensorsSharesContiguousAndCopiesOthers) {
  auto a = torch::ones({2, 3});
  auto b = torch::arange(6, torch::kFloat).reshape({2, 3}).t();  // non-contiguous
  vt::NamedTensors set;
  set.add("a", a);
  set.add("b", b);
  EXPECT_EQ(set.at("a").data_ptr(), a.data_ptr());
  EXPECT_NE(set.at("b").data_ptr(), b.data_ptr());
  EXPECT_TRUE(torch::equal(set.at("b"), b));
  auto views = set.views();
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[1].shape, (std::vector<std::uint64_t>{3, 2}));
  EXPECT_EQ(set.nbytes(), 48u);
  EXPECT_THROW(set.add("a", a), vigil::OptionError);
  try {
    set.at("c");
    FAIL() << "no error for a missing name";
  } catch (const vigil::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a, b"), std::string::npos) << e.what();
  }
}

TEST(Bridge, CloneIsASnapshot) {
  auto a = torch::zeros({4});
  vt::NamedTensors set;
  set.add("a", a);
  auto snap = set.clone();
  a.add_(1);
  EXPECT_TRUE(torch::equal(set.at("a"), a));
  EXPECT_TRUE(torch::equal(snap.at("a"), torch::zeros({4})));
}

TEST(Bridge, AppendPrefixesNames) {
  vt::NamedTensors a, b;
  b.add("x", torch::ones({1}));
  a.append(b, "state.");
  EXPECT_EQ(a.names(), (std::vector<std::string>{"state.x"}));
}

TEST(Bridge, ToTensorAndCopyIntoRoundTripEveryDtype) {
  for (auto [d, s] : kPairs) {
    auto t = sample(s);
    auto v = vt::view_of(t, "x");
    auto back = vt::to_tensor(v);
    EXPECT_EQ(back.scalar_type(), s);
    EXPECT_TRUE(torch::equal(back, t)) << vigil::dtype_name(d);
    EXPECT_NE(back.data_ptr(), t.data_ptr());
    auto dst = torch::zeros({3, 4}, s);
    vt::copy_into(v, dst);
    EXPECT_TRUE(torch::equal(dst, t)) << vigil::dtype_name(d);
  }
}

TEST(Bridge, CopyIntoChecksShapeAndDtypeAndNamesTheTensor) {
  auto src = torch::ones({2, 2});
  auto v = vt::view_of(src, "layer.weight");
  auto wrong_shape = torch::zeros({2, 3});
  auto wrong_type = torch::zeros({2, 2}, torch::kDouble);
  try {
    vt::copy_into(v, wrong_shape);
    FAIL();
  } catch (const vigil::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layer.weight"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("[2, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(vt::copy_into(v, wrong_type), vigil::InputError);
  EXPECT_TRUE(torch::equal(wrong_shape, torch::zeros({2, 3})));
}

TEST(Bridge, CopyIntoWorksOnNonContiguousDestinationAndLeafParameters) {
  auto src = torch::arange(6, torch::kFloat).reshape({3, 2});
  auto base = torch::zeros({2, 3});
  auto dst = base.t();  // [3, 2] view with strides
  vt::copy_into(vt::view_of(src, "s"), dst);
  EXPECT_TRUE(torch::equal(base, src.t()));
  auto param = torch::zeros({3, 2}, torch::requires_grad());
  vt::copy_into(vt::view_of(src, "p"), param);  // in place on a leaf needs NoGradGuard
  EXPECT_TRUE(torch::equal(param.detach(), src));
  EXPECT_TRUE(param.requires_grad());
}

TEST(Bridge, SafetensorsFileRoundTripEveryDtype) {
  vigil::test::TempDir dir;
  vt::NamedTensors set;
  for (auto [d, s] : kPairs) set.add(std::string(vigil::dtype_name(d)), sample(s));
  auto views = set.views();
  vigil::save_safetensors(dir / "all.safetensors", views);
  auto file = vigil::SafetensorsFile::open(dir / "all.safetensors");
  for (auto [d, s] : kPairs) {
    auto v = file.view(vigil::dtype_name(d));
    EXPECT_EQ(v.dtype, d);
    EXPECT_TRUE(torch::equal(vt::to_tensor(v), sample(s))) << vigil::dtype_name(d);
  }
}
