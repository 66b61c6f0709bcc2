// A streaming XXH3-64 state owned by a unique_ptr, shared by vigil::core's writers and readers
// (not part of the public API).
#pragma once

#include <xxhash.h>

#include <memory>
#include <new>

namespace vigil::detail {

struct XxhStateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};
using XxhState = std::unique_ptr<XXH3_state_t, XxhStateDeleter>;

/// A fresh state, already reset; throws std::bad_alloc.
inline XxhState new_xxh_state() {
  XxhState s(XXH3_createState());
  if (!s) throw std::bad_alloc();
  XXH3_64bits_reset(s.get());
  return s;
}

}  // namespace vigil::detail
