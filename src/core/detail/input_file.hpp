// Reading input files and streams within bounds: what is not a file is refused by name, and no
// line grows without end (a device such as /dev/zero never ends one).
#pragma once

#include <cstddef>
#include <filesystem>
#include <istream>
#include <string>
#include <string_view>

namespace vigil::detail {

/// Longest line getline_bounded() accepts by default (256 MiB).
inline constexpr std::size_t kMaxLineBytes = std::size_t{256} << 20;

/// Throws InputError unless `path` is a regular file or a pipe (a FIFO, or a shell's <(...)):
/// a folder, a device or a socket is named as such. `what` names the input ("metrics log").
void check_input_file(const std::filesystem::path& path, std::string_view what);

/// std::getline that throws InputError for a line longer than `max_bytes` instead of growing.
bool getline_bounded(std::istream& in, std::string& line, std::size_t max_bytes = kMaxLineBytes);

/// All of `in`, or InputError if it holds more than `max_bytes`. `what` names it in the message.
std::string read_bounded(std::istream& in, std::size_t max_bytes, std::string_view what);

}  // namespace vigil::detail
