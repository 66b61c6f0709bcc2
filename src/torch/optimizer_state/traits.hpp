// One traits table per supported optimizer: its libtorch types, its param-group options and its
// per-parameter state tensors. Everything else in optimizer_state.cpp is written once over these
// tables, so supporting another optimizer means an OptimizerKind, a table here and its case in
// visit_traits().
#pragma once

#include <array>
#include <string_view>
#include <tuple>

#include <torch/torch.h>

#include "vigil/error.hpp"
#include "vigil/torch/optimizer_state.hpp"

namespace vigil::torch::optimizer_traits {

namespace optim = ::torch::optim;

using Betas = std::tuple<double, double>;

/// A TORCH_ARG member `name` of C, by the two accessors TORCH_ARG declares under that name; both
/// pointers are spelled `&C::name` and the declared type picks the overload.
template <typename C, typename T>
struct Field {
  using Value = T;
  std::string_view name;
  const T& (C::*get)() const noexcept;
  C& (C::*set)(const T&);
};

/// A per-parameter state tensor, saved as `state.<param>.<name>`. step() reads it once `needed`
/// holds for the group's options, so a restored state lacking it is refused up front.
template <typename Options, typename State>
struct StateTensor {
  std::string_view name;
  const ::torch::Tensor& (State::*get)() const noexcept;
  State& (State::*set)(const ::torch::Tensor&);
  bool (*needed)(const Options&);
};

template <typename Options>
constexpr bool always(const Options&) {
  return true;
}

// The names, defaults and state of each optimizer are PyTorch's (torch/optim/*.py), which
// libtorch mirrors; the option order is the order error messages list them in.

struct SgdTraits {
  using Optimizer = optim::SGD;
  using Options = optim::SGDOptions;
  using State = optim::SGDParamState;
  static constexpr OptimizerKind kind = OptimizerKind::SGD;
  static constexpr std::string_view name = "sgd";
  static constexpr bool has_step = false;
  // PyTorch's SGD has no default lr; --optimizer sgd without one gets 0.01.
  static Options default_options() { return Options(0.01); }
  static constexpr std::tuple options{
      Field<Options, double>{"lr", &Options::lr, &Options::lr},
      Field<Options, double>{"momentum", &Options::momentum, &Options::momentum},
      Field<Options, double>{"dampening", &Options::dampening, &Options::dampening},
      Field<Options, double>{"weight_decay", &Options::weight_decay, &Options::weight_decay},
      Field<Options, bool>{"nesterov", &Options::nesterov, &Options::nesterov},
  };
  static constexpr std::array tensors{
      StateTensor<Options, State>{"momentum_buffer", &State::momentum_buffer,
                                  &State::momentum_buffer, &always<Options>},
  };
};

// Adam and AdamW are unrelated types in libtorch with the same fields.
template <typename OptimizerT, typename OptionsT, typename StateT>
struct AdamFamilyTraits {
  using Optimizer = OptimizerT;
  using Options = OptionsT;
  using State = StateT;
  static constexpr bool has_step = true;
  static Options default_options() { return Options(); }
  static constexpr std::tuple options{
      Field<Options, double>{"lr", &Options::lr, &Options::lr},
      Field<Options, Betas>{"betas", &Options::betas, &Options::betas},
      Field<Options, double>{"eps", &Options::eps, &Options::eps},
      Field<Options, double>{"weight_decay", &Options::weight_decay, &Options::weight_decay},
      Field<Options, bool>{"amsgrad", &Options::amsgrad, &Options::amsgrad},
  };
  static constexpr std::array tensors{
      StateTensor<Options, State>{"exp_avg", &State::exp_avg, &State::exp_avg, &always<Options>},
      StateTensor<Options, State>{"exp_avg_sq", &State::exp_avg_sq, &State::exp_avg_sq,
                                  &always<Options>},
      StateTensor<Options, State>{"max_exp_avg_sq", &State::max_exp_avg_sq, &State::max_exp_avg_sq,
                                  [](const Options& o) { return o.amsgrad(); }},
  };
};

struct AdamTraits : AdamFamilyTraits<optim::Adam, optim::AdamOptions, optim::AdamParamState> {
  static constexpr OptimizerKind kind = OptimizerKind::Adam;
  static constexpr std::string_view name = "adam";
};

struct AdamWTraits : AdamFamilyTraits<optim::AdamW, optim::AdamWOptions, optim::AdamWParamState> {
  static constexpr OptimizerKind kind = OptimizerKind::AdamW;
  static constexpr std::string_view name = "adamw";
};

struct RmspropTraits {
  using Optimizer = optim::RMSprop;
  using Options = optim::RMSpropOptions;
  using State = optim::RMSpropParamState;
  static constexpr OptimizerKind kind = OptimizerKind::RMSprop;
  static constexpr std::string_view name = "rmsprop";
  static constexpr bool has_step = true;
  static Options default_options() { return Options(); }
  static constexpr std::tuple options{
      Field<Options, double>{"lr", &Options::lr, &Options::lr},
      Field<Options, double>{"alpha", &Options::alpha, &Options::alpha},
      Field<Options, double>{"eps", &Options::eps, &Options::eps},
      Field<Options, double>{"weight_decay", &Options::weight_decay, &Options::weight_decay},
      Field<Options, double>{"momentum", &Options::momentum, &Options::momentum},
      Field<Options, bool>{"centered", &Options::centered, &Options::centered},
  };
  static constexpr std::array tensors{
      StateTensor<Options, State>{"square_avg", &State::square_avg, &State::square_avg,
                                  &always<Options>},
      StateTensor<Options, State>{"momentum_buffer", &State::momentum_buffer,
                                  &State::momentum_buffer,
                                  [](const Options& o) { return o.momentum() > 0; }},
      StateTensor<Options, State>{"grad_avg", &State::grad_avg, &State::grad_avg,
                                  [](const Options& o) { return o.centered(); }},
  };
};

struct AdagradTraits {
  using Optimizer = optim::Adagrad;
  using Options = optim::AdagradOptions;
  using State = optim::AdagradParamState;
  static constexpr OptimizerKind kind = OptimizerKind::Adagrad;
  static constexpr std::string_view name = "adagrad";
  static constexpr bool has_step = true;
  static Options default_options() { return Options(); }
  static constexpr std::tuple options{
      Field<Options, double>{"lr", &Options::lr, &Options::lr},
      Field<Options, double>{"lr_decay", &Options::lr_decay, &Options::lr_decay},
      Field<Options, double>{"weight_decay", &Options::weight_decay, &Options::weight_decay},
      Field<Options, double>{"initial_accumulator_value", &Options::initial_accumulator_value,
                             &Options::initial_accumulator_value},
      Field<Options, double>{"eps", &Options::eps, &Options::eps},
  };
  static constexpr std::array tensors{
      StateTensor<Options, State>{"sum", &State::sum, &State::sum, &always<Options>},
  };
};

/// Every kind, in the order names are listed to the user.
inline constexpr std::array kAllKinds{OptimizerKind::SGD, OptimizerKind::Adam, OptimizerKind::AdamW,
                                      OptimizerKind::RMSprop, OptimizerKind::Adagrad};

/// f(Traits{}) for the traits of `kind`; every call must return the same type.
template <typename F>
decltype(auto) visit_traits(OptimizerKind kind, F&& f) {
  switch (kind) {
    case OptimizerKind::SGD:
      return f(SgdTraits{});
    case OptimizerKind::Adam:
      return f(AdamTraits{});
    case OptimizerKind::AdamW:
      return f(AdamWTraits{});
    case OptimizerKind::RMSprop:
      return f(RmspropTraits{});
    case OptimizerKind::Adagrad:
      return f(AdagradTraits{});
  }
  throw OptionError("unknown optimizer kind");
}

/// f(field) for each option field of T, in table order.
template <typename T, typename F>
void for_each_option(F&& f) {
  std::apply([&](const auto&... field) { (f(field), ...); }, T::options);
}

}  // namespace vigil::torch::optimizer_traits
