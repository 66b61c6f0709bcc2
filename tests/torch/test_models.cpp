// Models: ModelSpec JSON, build_model() names and shapes, errors, and that Python rebuilds the
// same nn.Sequential from python_code() and loads the saved weights with load_state_dict.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "test_support.hpp"
#include "vigil/torch/models.hpp"
#include "vigil/torch/module_state.hpp"

namespace vt = vigil::torch;
using nlohmann::json;
using vigil::test::error_of;

namespace {

std::map<std::string, std::vector<std::int64_t>> shapes(const vt::NamedTensors& s) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (std::size_t i = 0; i < s.size(); ++i) out[s.names()[i]] = s.tensors()[i].sizes().vec();
  return out;
}

}  // namespace

TEST(Models, DefaultMlpHasPythonNamesAndShapes) {
  auto model = vt::build_model(vt::ModelSpec());
  auto s = vt::module_state(*model);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"1.weight", "1.bias", "3.weight", "3.bias",
                                                 "5.weight", "5.bias"}));
  auto sh = shapes(s);
  EXPECT_EQ(sh["1.weight"], (std::vector<std::int64_t>{256, 784}));
  EXPECT_EQ(sh["3.weight"], (std::vector<std::int64_t>{256, 256}));
  EXPECT_EQ(sh["5.weight"], (std::vector<std::int64_t>{10, 256}));
  auto y = model->forward(torch::zeros({4, 1, 28, 28}));
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({4, 10}));
  EXPECT_EQ(vt::python_code(vt::ModelSpec()),
            "nn.Sequential(\n    nn.Flatten(),\n    nn.Linear(784, 256),\n    nn.ReLU(),\n"
            "    nn.Linear(256, 256),\n    nn.ReLU(),\n    nn.Linear(256, 10),\n)");
}

TEST(Models, DropoutShiftsIndicesExactlyAsInPython) {
  auto spec = vt::ModelSpec().with_hidden({32}).with_dropout(0.25).with_outputs(3);
  auto s = vt::module_state(*vt::build_model(spec));
  EXPECT_EQ(s.names(), (std::vector<std::string>{"1.weight", "1.bias", "4.weight", "4.bias"}));
  EXPECT_NE(vt::python_code(spec).find("nn.Dropout(0.25)"), std::string::npos);
}

TEST(Models, LinearMlpWithoutHiddenLayers) {
  auto spec = vt::ModelSpec().with_hidden({}).with_input_shape({5}).with_outputs(1);
  auto model = vt::build_model(spec);
  EXPECT_EQ(model->forward(torch::zeros({2, 5})).sizes(), torch::IntArrayRef({2, 1}));
}

TEST(Models, CnnWithBatchNormHasBuffersAndRightShapes) {
  auto spec = vt::ModelSpec().with_kind("cnn").with_hidden({64}).with_batch_norm(true);
  auto model = vt::build_model(spec);
  auto sh = shapes(vt::module_state(*model));
  EXPECT_EQ(sh["0.weight"], (std::vector<std::int64_t>{16, 1, 3, 3}));
  EXPECT_EQ(sh["1.running_mean"], (std::vector<std::int64_t>{16}));
  EXPECT_TRUE(sh.count("1.num_batches_tracked"));
  EXPECT_EQ(sh["4.weight"], (std::vector<std::int64_t>{32, 16, 3, 3}));
  EXPECT_EQ(sh["9.weight"], (std::vector<std::int64_t>{64, 32 * 7 * 7}));
  EXPECT_EQ(sh["11.weight"], (std::vector<std::int64_t>{10, 64}));
  EXPECT_EQ(model->forward(torch::zeros({2, 1, 28, 28})).sizes(), torch::IntArrayRef({2, 10}));
}

TEST(Models, SpecJsonRoundTripAndDefaults) {
  auto spec = vt::ModelSpec()
                  .with_kind("cnn")
                  .with_input_shape({3, 32, 32})
                  .with_channels({8})
                  .with_hidden({20, 10})
                  .with_outputs(4)
                  .with_dropout(0.1)
                  .with_batch_norm(true);
  auto back = vt::ModelSpec::from_json(json::parse(spec.to_json().dump()));
  EXPECT_EQ(back, spec);
  EXPECT_EQ(vt::ModelSpec::from_json(json::object()), vt::ModelSpec());
  EXPECT_EQ(vt::ModelSpec::from_json({{"hidden", {128}}}).hidden, (std::vector<std::int64_t>{128}));
  EXPECT_THROW(vt::ModelSpec::from_json({{"layers", 3}}), vigil::InputError);
  EXPECT_THROW(vt::ModelSpec::from_json({{"hidden", "256,256"}}), vigil::InputError);
  EXPECT_THROW(vt::ModelSpec::from_json({{"dropout", "x"}}), vigil::InputError);
  EXPECT_THROW(vt::ModelSpec::from_json(json::array()), vigil::InputError);
}

TEST(Models, InvalidSpecsAreClearOptionErrors) {
  auto unknown = error_of([] { vt::build_model(vt::ModelSpec().with_kind("resnet")); });
  EXPECT_NE(unknown.find("unknown model 'resnet' (known models: mlp, cnn)"), std::string::npos)
      << unknown;
  EXPECT_THROW(vt::build_model(vt::ModelSpec().with_hidden({0})), vigil::OptionError);
  EXPECT_THROW(vt::build_model(vt::ModelSpec().with_outputs(0)), vigil::OptionError);
  EXPECT_THROW(vt::build_model(vt::ModelSpec().with_dropout(1.0)), vigil::OptionError);
  EXPECT_THROW(vt::build_model(vt::ModelSpec().with_kind("cnn").with_input_shape({784})),
               vigil::OptionError);
  auto small = error_of([] {
    vt::build_model(
        vt::ModelSpec().with_kind("cnn").with_input_shape({1, 4, 4}).with_channels({2, 2, 2}));
  });
  EXPECT_NE(small.find("too small"), std::string::npos) << small;
}

namespace {
// Reads safetensors by hand (no safetensors package needed), rebuilds each model from the code
// vigil prints, loads the weights strictly and compares the outputs with libtorch's.
constexpr const char* kPythonCheck = R"PY(
import json, struct, sys
try:
    import torch
    from torch import nn
except ImportError:
    sys.exit(77)
TYPES = {'F32': torch.float32, 'I64': torch.int64}
def load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n]); data = b[8 + n:]
    out = {}
    for k, v in header.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        t = torch.frombuffer(bytearray(data[s:e]), dtype=TYPES[v['dtype']])
        out[k] = t.reshape(v['shape'])
    return out
ok = True
for case in json.load(open(sys.argv[1])):
    model = eval(case['code'])
    model.load_state_dict(load(case['model']), strict=True)
    model.eval()
    io = load(case['io'])
    with torch.no_grad():
        y = model(io['x'])
    same = torch.allclose(y, io['y'], rtol=1e-4, atol=1e-5)
    print(case['name'], 'OK' if same else 'MISMATCH', float((y - io['y']).abs().max()))
    ok = ok and same
sys.exit(0 if ok else 1)
)PY";
}  // namespace

TEST(Models, PythonRebuildsTheModelAndLoadsTheWeights) {
  torch::set_num_threads(1);
  vigil::test::TempDir dir;
  json cases = json::array();
  const std::vector<std::pair<std::string, vt::ModelSpec>> specs = {
      {"mlp", vt::ModelSpec().with_hidden({32, 16}).with_dropout(0.2)},
      {"cnn",
       vt::ModelSpec().with_kind("cnn").with_channels({4, 8}).with_hidden({16}).with_batch_norm(
           true)}};
  for (const auto& [name, spec] : specs) {
    torch::manual_seed(3);
    auto model = vt::build_model(spec);
    model->train();
    for (int i = 0; i < 3; ++i) model->forward(torch::randn({8, 1, 28, 28}));  // BN statistics
    model->eval();
    auto x = torch::randn({5, 1, 28, 28});
    torch::Tensor y;
    {
      torch::NoGradGuard g;
      y = model->forward(x);
    }
    vt::save_module_state(dir / (name + ".safetensors"), *model);
    vt::NamedTensors io;
    io.add("x", x);
    io.add("y", y);
    vigil::save_safetensors(dir / (name + "_io.safetensors"), io.views());
    cases.push_back({{"name", name},
                     {"code", vt::python_code(spec)},
                     {"model", (dir / (name + ".safetensors")).string()},
                     {"io", (dir / (name + "_io.safetensors")).string()}});
  }
  vigil::test::write_file(dir / "cases.json", cases.dump());
  vigil::test::write_file(dir / "check.py", kPythonCheck);
  auto r = vigil::test::run_process(
      {"/usr/bin/python3", (dir / "check.py").string(), (dir / "cases.json").string()});
  if (r.exit_code == 77) GTEST_SKIP() << "python3-torch is not installed";
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("mlp OK"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("cnn OK"), std::string::npos) << r.out << r.err;
}
