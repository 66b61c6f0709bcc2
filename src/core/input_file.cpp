// check_input_file, getline_bounded, read_bounded: input read within bounds.
#include "detail/input_file.hpp"

#include <fmt/core.h>

#include <array>
#include <system_error>

#include "vigil/error.hpp"

namespace vigil::detail {

namespace fs = std::filesystem;

void check_input_file(const fs::path& path, std::string_view what) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    // A symlink loop or a dangling link says so, rather than "no such file".
    const auto link = fs::symlink_status(path, ec);
    if (!ec && fs::is_symlink(link))
      throw InputError(fmt::format("{} '{}' is a symbolic link that leads nowhere (or in a loop)",
                                   what, path.string()));
    throw InputError(fmt::format("{} '{}' does not exist", what, path.string()));
  }
  if (fs::is_regular_file(st) || fs::is_fifo(st)) return;
  const char* kind = fs::is_directory(st)                                 ? "a folder"
                     : fs::is_character_file(st) || fs::is_block_file(st) ? "a device"
                     : fs::is_socket(st)                                  ? "a socket"
                                                                          : "not a file";
  throw InputError(fmt::format("{} '{}' is {}, not a file that can be read to its end", what,
                               path.string(), kind));
}

bool getline_bounded(std::istream& in, std::string& line, std::size_t max_bytes) {
  line.clear();
  std::array<char, 65536> buf{};
  bool extracted = false;
  const auto add = [&](std::size_t n) {
    line.append(buf.data(), n);
    if (line.size() > max_bytes)
      throw InputError(fmt::format("a line is longer than {} MiB", max_bytes >> 20));
  };
  for (;;) {
    in.getline(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (in.eof()) {  // the last line, without a newline (or nothing at all)
      add(got);
      return extracted || got > 0;
    }
    if (in.fail()) {
      if (got != buf.size() - 1) return false;
      // The chunk filled up before the newline: the line goes on.
      in.clear(in.rdstate() & ~std::ios::failbit);
      add(got);
      extracted = true;
      continue;
    }
    add(got - 1);  // gcount() counts the newline, which is not stored
    return true;
  }
}

std::string read_bounded(std::istream& in, std::size_t max_bytes, std::string_view what) {
  std::string out;
  std::array<char, 65536> buf{};
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    out.append(buf.data(), static_cast<std::size_t>(in.gcount()));
    if (out.size() > max_bytes)
      throw InputError(fmt::format("{} is larger than {} MiB", what, max_bytes >> 20));
  }
  return out;
}

}  // namespace vigil::detail
