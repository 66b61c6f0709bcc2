// Checkpoint name templates such as "epoch-{epoch:04d}-{val_loss:.4f}": fields from the epoch,
// step and metrics, rendered with fmt format specs and sanitized into a safe folder name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/error.hpp"
#include "vigil/monitor.hpp"

namespace vigil {

/// A template split into literal text and fields.
struct NameTemplate {
  struct Part {
    bool is_field = false;
    std::string text;  ///< literal text, or the field's name
    std::string spec;  ///< the format spec after ':' ("04d", ".4f"), may be empty
  };
  std::vector<Part> parts;

  /// Parses `text`: "{name}" or "{name:spec}" fields, "{{" and "}}" for literal braces. Field
  /// names are [A-Za-z0-9_./-]. Throws OptionError on unbalanced braces or a bad field name.
  static NameTemplate parse(std::string_view text);
  /// Names of the fields in order (with repeats).
  std::vector<std::string> fields() const;
  /// Renders it: {epoch} and {step} are integers, any other field a metric (a double); a metric
  /// absent from `metrics` renders as "none". A spec that does not fit the value ({val_loss:04d})
  /// throws OptionError. The result is sanitized with sanitize_name().
  std::string render(std::int64_t epoch, std::int64_t step, const Logs& metrics) const;
};

/// Turns any text into a safe single folder name: characters outside [A-Za-z0-9._=+-] become
/// '_', a leading '.' becomes '_' (so no hidden, temporary, "." or ".." name can come out), and
/// the result is cut to 128 bytes. Empty text becomes "_".
std::string sanitize_name(std::string_view text);

}  // namespace vigil
