// Module state with PyTorch's state_dict names; strict and non-strict loading and its errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/torch/module_state.hpp"

namespace vt = vigil::torch;
namespace nn = torch::nn;

namespace {

// features: Sequential(Conv2d, BatchNorm2d, ReLU); bn: BatchNorm1d; head: Linear without bias.
struct Net : nn::Module {
  Net() {
    features = register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 2, 3)),
                                                          nn::BatchNorm2d(2), nn::ReLU()));
    bn = register_module("bn", nn::BatchNorm1d(3));
    head = register_module("head", nn::Linear(nn::LinearOptions(3, 2).bias(false)));
    scale = register_parameter("scale", torch::ones({1}));
  }
  nn::Sequential features{nullptr};
  nn::BatchNorm1d bn{nullptr};
  nn::Linear head{nullptr};
  torch::Tensor scale;
};

// A module holding one buffer of every dtype safetensors and libtorch share.
struct AllTypes : nn::Module {
  explicit AllTypes(double fill) {
    int k = 0;
    for (auto t : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16, torch::kLong,
                   torch::kInt, torch::kShort, torch::kChar, torch::kByte, torch::kBool}) {
      auto v = torch::arange(4, torch::kDouble).add(fill + k++);
      register_buffer(std::string("b_") + c10::toString(t),
                      t == torch::kBool ? v.remainder(2).eq(0) : v.to(t));
    }
  }
};

std::vector<std::string> names_of(const vt::NamedTensors& s) {
  return s.names();
}

}  // namespace

TEST(ModuleState, NamesAndOrderFollowPyTorchStateDict) {
  Net net;
  auto state = vt::module_state(net);
  // Python: list(Net().state_dict().keys()) for the same module prints exactly this.
  const std::vector<std::string> expected = {"scale",
                                             "features.0.weight",
                                             "features.0.bias",
                                             "features.1.weight",
                                             "features.1.bias",
                                             "features.1.running_mean",
                                             "features.1.running_var",
                                             "features.1.num_batches_tracked",
                                             "bn.weight",
                                             "bn.bias",
                                             "bn.running_mean",
                                             "bn.running_var",
                                             "bn.num_batches_tracked",
                                             "head.weight"};
  EXPECT_EQ(names_of(state), expected);
  EXPECT_EQ(state.at("bn.num_batches_tracked").scalar_type(), torch::kLong);
}

TEST(ModuleState, ViewsShareTheLiveTensors) {
  Net net;
  auto state = vt::module_state(net);
  EXPECT_EQ(state.at("head.weight").data_ptr(), net.head->weight.data_ptr());
  EXPECT_EQ(state.at("bn.running_mean").data_ptr(), net.bn->running_mean.data_ptr());
  auto views = state.views();
  EXPECT_EQ(static_cast<const void*>(views.back().data.data()), net.head->weight.data_ptr());
}

TEST(ModuleState, FileRoundTripRestoresParametersAndBuffers) {
  torch::manual_seed(1);
  Net a;
  a.train();
  a.features->forward(torch::randn({4, 1, 5, 5}));  // moves the BatchNorm running stats
  a.bn->forward(torch::randn({4, 3}));
  torch::manual_seed(2);
  Net b;
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "model.safetensors", a);
  auto result = vt::load_module_state(b, dir / "model.safetensors");
  EXPECT_EQ(result.loaded, 14u);
  EXPECT_TRUE(result.missing_keys.empty() && result.unexpected_keys.empty());
  auto sa = vt::module_state(a), sb = vt::module_state(b);
  for (const auto& name : sa.names()) EXPECT_TRUE(torch::equal(sa.at(name), sb.at(name))) << name;
  EXPECT_EQ(sb.at("features.1.num_batches_tracked").item<std::int64_t>(), 1);
  EXPECT_TRUE(b.head->weight.requires_grad());  // still a trainable leaf
}

TEST(ModuleState, EveryDtypeRoundTrips) {
  AllTypes a(1), b(10);
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "m.safetensors", a);
  auto file = vigil::SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(file.tensors().size(), 10u);
  EXPECT_EQ(vt::load_module_state(b, file).loaded, 10u);
  auto sa = vt::module_state(a), sb = vt::module_state(b);
  for (const auto& name : sa.names()) {
    EXPECT_TRUE(torch::equal(sa.at(name), sb.at(name))) << name;
    EXPECT_EQ(sa.at(name).scalar_type(), sb.at(name).scalar_type()) << name;
  }
}

namespace {
// The state of `net` with one tensor renamed, one dropped, one reshaped and one retyped.
vt::NamedTensors damaged(const Net& net) {
  auto good = vt::module_state(net);
  vt::NamedTensors out;
  for (std::size_t i = 0; i < good.size(); ++i) {
    const auto& n = good.names()[i];
    const auto& t = good.tensors()[i];
    if (n == "scale") continue;  // missing
    if (n == "bn.bias")
      out.add("bn.beta", t);  // bn.bias missing + unexpected
    else if (n == "head.weight")
      out.add(n, torch::zeros({2, 4}));  // shape
    else if (n == "bn.running_var")
      out.add(n, t.to(torch::kDouble));  // dtype
    else
      out.add(n, t);
  }
  out.add("extra.weight", torch::zeros({1}));  // unexpected
  return out;
}
}  // namespace

TEST(ModuleState, StrictLoadReportsEveryProblemInOneLineAndLoadsNothing) {
  Net net, other;
  auto src = damaged(other);
  auto before = vt::module_state(net).clone();
  try {
    vt::load_module_state(net, src.views());
    FAIL() << "no error";
  } catch (const vt::StateDictError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (auto s : {"missing keys: scale, bn.bias", "unexpected keys: bn.beta, extra.weight",
                   "head.weight: shape [2, 4] in the file, [2, 3] in the model",
                   "bn.running_var: dtype F64 in the file, F32 in the model"})
      EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
    EXPECT_EQ(e.result().missing_keys, (std::vector<std::string>{"scale", "bn.bias"}));
    EXPECT_EQ(e.result().unexpected_keys, (std::vector<std::string>{"bn.beta", "extra.weight"}));
    EXPECT_EQ(e.result().mismatched.size(), 2u);
  }
  auto after = vt::module_state(net);
  for (const auto& name : after.names())
    EXPECT_TRUE(torch::equal(after.at(name), before.at(name))) << name << " changed";
}

TEST(ModuleState, NonStrictStillRefusesMismatchesUnlessIgnored) {
  Net net, other;
  auto src = damaged(other);
  // Like PyTorch: strict=False forgives missing/unexpected keys, never a size mismatch.
  try {
    vt::load_module_state(net, src.views(), vt::LoadStateOptions().with_strict(false));
    FAIL() << "no error";
  } catch (const vt::StateDictError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find("missing keys"), std::string::npos) << msg;
    EXPECT_NE(msg.find("head.weight"), std::string::npos) << msg;
  }
  auto r = vt::load_module_state(
      net, src.views(), vt::LoadStateOptions().with_strict(false).with_ignore_mismatched(true));
  EXPECT_EQ(r.missing_keys, (std::vector<std::string>{"scale", "bn.bias"}));
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"bn.beta", "extra.weight"}));
  EXPECT_EQ(r.mismatched.size(), 2u);
  EXPECT_EQ(r.loaded, 14u - 4u);
  EXPECT_TRUE(torch::equal(net.features[0]->as<nn::Conv2d>()->weight,
                           other.features[0]->as<nn::Conv2d>()->weight));
  EXPECT_FALSE(torch::equal(net.head->weight, other.head->weight));
}

TEST(ModuleState, FilePathErrorsNameTheFile) {
  Net a;
  nn::Linear lin(3, 2);
  vigil::test::TempDir dir;
  vt::save_module_state(dir / "lin.safetensors", *lin);
  try {
    vt::load_module_state(a, dir / "lin.safetensors");
    FAIL();
  } catch (const vt::StateDictError& e) {
    EXPECT_NE(std::string(e.what()).find("lin.safetensors"), std::string::npos) << e.what();
    // A file lists its tensors in the safetensors writer's order (bias before weight here).
    EXPECT_NE(std::string(e.what()).find("unexpected keys: bias, weight"), std::string::npos)
        << e.what();
  }
}

TEST(ModuleState, NonContiguousTensorsAreCopiedNotViewed) {
  struct T : nn::Module {
    T(double k) {
      t = register_buffer("t", torch::arange(12, torch::kFloat).add(k).reshape({3, 4}).t());
    }
    torch::Tensor t;
  };
  T a(0), b(100);
  ASSERT_FALSE(a.t.is_contiguous());
  auto state = vt::module_state(a);
  EXPECT_TRUE(state.at("t").is_contiguous());
  EXPECT_NE(state.at("t").data_ptr(), a.t.data_ptr());
  EXPECT_TRUE(torch::equal(state.at("t"), a.t));
  vt::load_module_state(b, state.views());  // copy_ into a strided destination
  EXPECT_TRUE(torch::equal(b.t, a.t));
  EXPECT_FALSE(b.t.is_contiguous());
}

// The file overloads read straight into the module; a flipped byte in any tensor is found, and
// the error says the module now holds unchecked bytes.
TEST(ModuleState, AFlippedByteInAnyTensorIsFoundAndThePartialLoadAnnounced) {
  torch::manual_seed(3);
  Net a;
  vigil::test::TempDir dir;
  const auto path = dir / "model.safetensors";
  vt::save_module_state(path, a);
  const auto image = vigil::test::read_file(path);
  const auto file = vigil::SafetensorsFile::open(path);
  const auto data_start = file.file_size() - file.tensors().back().end;
  for (const auto& t : file.tensors()) {
    if (t.size() == 0) continue;
    vigil::test::write_file(path, image);
    vigil::test::flip_byte(path, data_start + t.begin + t.size() / 2);
    Net b;
    try {
      vt::load_module_state(b, path);
      ADD_FAILURE() << "a flipped byte in " << t.name << " went unnoticed";
    } catch (const vigil::FormatError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.kind(), vigil::FormatErrorKind::ChecksumMismatch);
      EXPECT_NE(msg.find("tensor \"" + t.name + "\" is corrupt"), std::string::npos) << msg;
      EXPECT_NE(msg.find("now hold unchecked bytes"), std::string::npos) << msg;
    }
  }
  // Intact again: the same module loads and equals the saved one.
  vigil::test::write_file(path, image);
  Net c;
  vt::load_module_state(c, path);
  auto sa = vt::module_state(a), sc = vt::module_state(c);
  for (const auto& name : sa.names()) EXPECT_TRUE(torch::equal(sa.at(name), sc.at(name))) << name;
}

// With the whole file's hash (a checkpoint's state.json), a byte of the header that no tensor
// checksum covers is found too.
TEST(ModuleState, TheWholeFileHashIsCheckedWhenGiven) {
  Net a;
  vigil::test::TempDir dir;
  const auto path = dir / "model.safetensors";
  vt::save_module_state(path, a, {{"note", "from the test"}});
  auto image = vigil::test::read_file(path);
  const auto good = vigil::xxh3_64(std::as_bytes(std::span(image)));
  Net b;
  vt::load_module_state(b, path, vt::LoadStateOptions{}.with_file_xxh3(good));
  vigil::test::flip_byte(path, image.find("from the"));
  vt::load_module_state(b, path);  // the tensors' own checksums still match
  const auto msg = vigil::test::error_of<vigil::FormatError>(
      [&] { vt::load_module_state(b, path, vt::LoadStateOptions{}.with_file_xxh3(good)); });
  EXPECT_NE(msg.find("the file is corrupt"), std::string::npos) << msg;
}

// Strided destinations and a tensor the module holds twice (tied) go through a host copy.
TEST(ModuleState, FileLoadsFillStridedAndTiedTensors) {
  struct T : nn::Module {
    explicit T(double k) {
      t = register_buffer("t", torch::arange(12, torch::kFloat).add(k).reshape({3, 4}).t());
      w = register_parameter("w", torch::full({5}, k));
      register_parameter("w_alias", w);
    }
    torch::Tensor t, w;
  };
  T a(0), b(100);
  vigil::test::TempDir dir;
  // Both names of the tied tensor in the file, as a PyTorch state_dict lists them.
  auto state = vt::module_state(a);
  state.add("w_alias", a.w.clone());
  vigil::save_safetensors(dir / "m.safetensors", state.views());
  auto result = vt::load_module_state(b, dir / "m.safetensors");
  EXPECT_EQ(result.loaded, 3u);
  EXPECT_TRUE(torch::equal(b.t, a.t));
  EXPECT_FALSE(b.t.is_contiguous());
  EXPECT_TRUE(torch::equal(b.w, a.w));
}
