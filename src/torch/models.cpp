// ModelSpec <-> JSON and build_model(): nn.Sequential models with Python-identical names.
#include "vigil/torch/models.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "detail/json_fields.hpp"

namespace vigil::torch {

namespace nn = ::torch::nn;
using nlohmann::json;

const std::vector<std::string>& model_kinds() {
  static const std::vector<std::string> kinds{"mlp", "cnn"};
  return kinds;
}

namespace {

std::int64_t product(const std::vector<std::int64_t>& v) {
  std::int64_t p = 1;
  for (auto x : v) p *= x;
  return p;
}

// Spatial size after the conv blocks: 3x3 convs with padding 1 keep it, each MaxPool2d(2) halves.
std::pair<std::int64_t, std::int64_t> pooled_size(const ModelSpec& s) {
  std::int64_t h = s.input_shape[1], w = s.input_shape[2];
  for (std::size_t i = 0; i < s.channels.size(); ++i) {
    h /= 2;
    w /= 2;
  }
  return {h, w};
}

void check_sizes(const char* what, const std::vector<std::int64_t>& v, bool allow_empty) {
  if (!allow_empty && v.empty()) throw OptionError(fmt::format("model {} must not be empty", what));
  for (auto x : v)
    if (x < 1)
      throw OptionError(
          fmt::format("model {} must all be >= 1, got [{}]", what, fmt::join(v, ", ")));
}

// One "layer" in a form both builders (C++ and the Python text) share.
struct Layer {
  enum Kind { Flatten, Linear, ReLU, Dropout, Conv, BatchNorm, MaxPool } kind;
  std::int64_t a = 0, b = 0;
  double p = 0;
};

std::vector<Layer> layers_of(const ModelSpec& s) {
  s.validate();
  std::vector<Layer> L;
  std::int64_t features = 0;
  if (s.kind == "mlp") {
    L.push_back({Layer::Flatten});
    features = product(s.input_shape);
  } else {  // cnn
    std::int64_t in = s.input_shape[0];
    for (auto c : s.channels) {
      L.push_back({Layer::Conv, in, c});
      if (s.batch_norm) L.push_back({Layer::BatchNorm, c});
      L.push_back({Layer::ReLU});
      L.push_back({Layer::MaxPool});
      in = c;
    }
    L.push_back({Layer::Flatten});
    auto [h, w] = pooled_size(s);
    features = in * h * w;
  }
  for (auto h : s.hidden) {
    L.push_back({Layer::Linear, features, h});
    L.push_back({Layer::ReLU});
    if (s.dropout > 0) L.push_back({Layer::Dropout, 0, 0, s.dropout});
    features = h;
  }
  L.push_back({Layer::Linear, features, s.outputs});
  return L;
}

}  // namespace

void ModelSpec::validate() const {
  const auto& kinds = model_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    throw OptionError(
        fmt::format("unknown model '{}' (known models: {})", kind, fmt::join(kinds, ", ")));
  check_sizes("input_shape", input_shape, false);
  check_sizes("hidden sizes", hidden, true);
  if (outputs < 1) throw OptionError(fmt::format("model outputs must be >= 1, got {}", outputs));
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw OptionError(fmt::format("dropout must be in [0, 1), got {}", dropout));
  if (kind == "cnn") {
    if (input_shape.size() != 3)
      throw OptionError(
          fmt::format("the cnn model needs an input shape [channels, height, width], got [{}]",
                      fmt::join(input_shape, ", ")));
    check_sizes("channels", channels, false);
    auto [h, w] = pooled_size(*this);
    if (h < 1 || w < 1)
      throw OptionError(fmt::format(
          "input {}x{} is too small for {} pooling steps (each halves it); use fewer channels",
          input_shape[1], input_shape[2], channels.size()));
  }
}

json ModelSpec::to_json() const {
  return {{"kind", kind},
          {"input_shape", input_shape},
          {"hidden", hidden},
          {"channels", channels},
          {"outputs", outputs},
          {"dropout", dropout},
          {"batch_norm", batch_norm}};
}

ModelSpec ModelSpec::from_json(const json& j) {
  if (!j.is_object()) throw InputError("a model spec must be a JSON object");
  static const std::set<std::string> known{"kind",    "input_shape", "hidden",    "channels",
                                           "outputs", "dropout",     "batch_norm"};
  detail::refuse_unknown_fields(j, known, "model spec");
  ModelSpec s;
  auto sizes = [&](const char* key, std::vector<std::int64_t>& out) {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    if (!v.is_array())
      throw InputError(fmt::format("model spec '{}' must be a list of integers", key));
    out.clear();
    for (const auto& x : v) {
      if (!x.is_number_integer())
        throw InputError(fmt::format("model spec '{}' must be a list of integers", key));
      out.push_back(x.get<std::int64_t>());
    }
  };
  if (j.contains("kind")) {
    if (!j["kind"].is_string()) throw InputError("model spec 'kind' must be a string");
    s.kind = j["kind"].get<std::string>();
  }
  sizes("input_shape", s.input_shape);
  sizes("hidden", s.hidden);
  sizes("channels", s.channels);
  if (j.contains("outputs")) {
    if (!j["outputs"].is_number_integer())
      throw InputError("model spec 'outputs' must be an integer");
    s.outputs = j["outputs"].get<std::int64_t>();
  }
  if (j.contains("dropout")) {
    if (!j["dropout"].is_number()) throw InputError("model spec 'dropout' must be a number");
    s.dropout = j["dropout"].get<double>();
  }
  if (j.contains("batch_norm")) {
    if (!j["batch_norm"].is_boolean())
      throw InputError("model spec 'batch_norm' must be true or false");
    s.batch_norm = j["batch_norm"].get<bool>();
  }
  return s;
}

nn::Sequential build_model(const ModelSpec& spec) {
  nn::Sequential seq;
  for (const auto& l : layers_of(spec)) {
    switch (l.kind) {
      case Layer::Flatten:
        seq->push_back(nn::Flatten());
        break;
      case Layer::Linear:
        seq->push_back(nn::Linear(l.a, l.b));
        break;
      case Layer::ReLU:
        seq->push_back(nn::ReLU());
        break;
      case Layer::Dropout:
        seq->push_back(nn::Dropout(l.p));
        break;
      case Layer::Conv:
        seq->push_back(nn::Conv2d(nn::Conv2dOptions(l.a, l.b, 3).padding(1)));
        break;
      case Layer::BatchNorm:
        seq->push_back(nn::BatchNorm2d(l.a));
        break;
      case Layer::MaxPool:
        seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
        break;
    }
  }
  return seq;
}

std::string python_code(const ModelSpec& spec) {
  std::vector<std::string> parts;
  for (const auto& l : layers_of(spec)) {
    switch (l.kind) {
      case Layer::Flatten:
        parts.push_back("nn.Flatten()");
        break;
      case Layer::Linear:
        parts.push_back(fmt::format("nn.Linear({}, {})", l.a, l.b));
        break;
      case Layer::ReLU:
        parts.push_back("nn.ReLU()");
        break;
      case Layer::Dropout:
        parts.push_back(fmt::format("nn.Dropout({})", l.p));
        break;
      case Layer::Conv:
        parts.push_back(fmt::format("nn.Conv2d({}, {}, 3, padding=1)", l.a, l.b));
        break;
      case Layer::BatchNorm:
        parts.push_back(fmt::format("nn.BatchNorm2d({})", l.a));
        break;
      case Layer::MaxPool:
        parts.push_back("nn.MaxPool2d(2)");
        break;
    }
  }
  return fmt::format("nn.Sequential(\n    {},\n)", fmt::join(parts, ",\n    "));
}

}  // namespace vigil::torch
