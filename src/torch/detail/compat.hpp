// The few places where libtorch 1.13 (Debian 12) and 2.x (Debian 13) differ in what vigil uses,
// each behind one name, so that the rest of the adapter is written once for both.
#pragma once

#include <torch/torch.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace vigil::torch::compat {

/// The key type of Optimizer::state(): the parameter's TensorImpl address printed as a string in
/// 1.13, the address itself (void*) in 2.x.
using OptimizerStateKey = typename std::remove_cvref_t<
    decltype(std::declval<::torch::optim::Optimizer&>().state())>::key_type;

/// The key under which libtorch keeps the optimizer state of parameter `p`. (A template only so
/// that the branch for the other version's key type is discarded, not compiled.)
template <typename Key = OptimizerStateKey>
Key optimizer_state_key(const ::torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    // What 1.13's c10::guts::to_string(p.unsafeGetTensorImpl()) prints (gone in 2.x).
    std::ostringstream out;
    out << p.unsafeGetTensorImpl();
    return out.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

/// Asks c10d's TCPStore for its classic socket backend. libtorch 2.4+ defaults to a libuv one,
/// which Debian's 2.6 is built without (every rendezvous then fails); 1.13 has only the classic
/// one, and no such option.
template <typename TCPStoreOptions>
void use_classic_tcp_store(TCPStoreOptions& options) {
  if constexpr (requires { options.useLibUV; }) options.useLibUV = false;
}

}  // namespace vigil::torch::compat
