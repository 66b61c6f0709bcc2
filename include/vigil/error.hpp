// The exception types vigil throws; every message names the problem and what to do about it.
#pragma once

#include <stdexcept>
#include <string>

namespace vigil {

/// Base of every error vigil throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A user-supplied option or argument is invalid (bad value, unknown name, conflicting options).
class OptionError : public Error {
 public:
  using Error::Error;
};

/// Input data (a metrics log, a data set, a configuration) cannot be used as given.
class InputError : public Error {
 public:
  using Error::Error;
};

}  // namespace vigil
