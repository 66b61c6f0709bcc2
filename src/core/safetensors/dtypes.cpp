// The dtype table of the safetensors format, in the reference's order.
#include <algorithm>
#include <array>

#include <fmt/core.h>

#include "safetensors/format.hpp"

namespace vigil {

namespace {

constexpr std::array<detail::DTypeInfo, 15> kDTypes = {{
    {DType::BOOL, "BOOL", 1, 0},
    {DType::U8, "U8", 1, 1},
    {DType::I8, "I8", 1, 2},
    {DType::F8_E5M2, "F8_E5M2", 1, 3},
    {DType::F8_E4M3, "F8_E4M3", 1, 4},
    {DType::I16, "I16", 2, 5},
    {DType::U16, "U16", 2, 6},
    {DType::F16, "F16", 2, 7},
    {DType::BF16, "BF16", 2, 8},
    {DType::I32, "I32", 4, 9},
    {DType::U32, "U32", 4, 10},
    {DType::F32, "F32", 4, 11},
    {DType::F64, "F64", 8, 12},
    {DType::I64, "I64", 8, 13},
    {DType::U64, "U64", 8, 14},
}};

// Dtypes the reference added after the 15 above (sub-byte floats, complex); named so the error
// can say "not supported" instead of "unknown".
constexpr std::array<std::string_view, 5> kUnsupportedDTypes = {"F4", "F6_E2M3", "F6_E3M2",
                                                                "F8_E8M0", "C64"};

}  // namespace

namespace detail {

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d;
  }
  throw OptionError(fmt::format("invalid dtype value {}", static_cast<int>(dtype)));
}

bool is_later_reference_dtype(std::string_view name) {
  return std::find(kUnsupportedDTypes.begin(), kUnsupportedDTypes.end(), name) !=
         kUnsupportedDTypes.end();
}

}  // namespace detail

std::string_view dtype_name(DType dtype) {
  return detail::dtype_info(dtype).name;
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& d : kDTypes) {
    if (d.name == name) return d.dtype;
  }
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  return detail::dtype_info(dtype).size;
}

}  // namespace vigil
