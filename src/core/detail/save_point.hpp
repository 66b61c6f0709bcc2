// What a save request, a checkpoint's content and a checkpoint's record share: where training
// stood when it was taken (epoch, step, save point) and the metrics there (not public API).
#pragma once

namespace vigil::detail {

/// Copies the epoch, step, save point and metrics of `from` into `to`.
template <class To, class From>
void copy_save_point(To& to, const From& from) {
  to.epoch = from.epoch;
  to.step = from.step;
  to.at = from.at;
  to.metrics = from.metrics;
}

}  // namespace vigil::detail
