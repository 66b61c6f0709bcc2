// libFuzzer target for the safetensors reader: any input must end in a valid file or a
// vigil::Error, never a crash, a sanitizer report, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "vigil/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  for (bool verify : {true, false}) {
    try {
      auto file = vigil::SafetensorsFile::from_bytes(
          bytes, vigil::SafetensorsReadOptions{}.with_verify_checksums(verify));
      // Touch everything the file hands out: the views must lie inside the input.
      std::vector<std::byte> copy;
      for (const auto& t : file.tensors()) {
        auto view = file.view(t.name);
        if (view.data.size() != t.size()) __builtin_trap();
        if (!view.data.empty() &&
            (view.data.data() < bytes.data() ||
             view.data.data() + view.data.size() > bytes.data() + bytes.size())) {
          __builtin_trap();
        }
        copy.resize(t.size());
        file.copy_to(t.name, copy);
        if (!copy.empty() && std::memcmp(copy.data(), view.data.data(), copy.size()) != 0) {
          __builtin_trap();
        }
        if (file.find(t.name) != &t) __builtin_trap();
      }
      // The whole header range was read: no NUL byte (where nlohmann would stop) and no
      // byte-order mark (which it would skip) in a header that was accepted.
      std::uint64_t n = 0;
      std::memcpy(&n, data, sizeof n);
      const auto* header = reinterpret_cast<const char*>(data) + 8;
      if (std::memchr(header, 0, static_cast<std::size_t>(n)) != nullptr) __builtin_trap();
      if (n >= 3 && std::memcmp(header, "\xEF\xBB\xBF", 3) == 0) __builtin_trap();
      file.verify_checksums();
      (void)file.metadata().size();
    } catch (const vigil::Error&) {
      // Rejecting malformed input with a named error is the expected outcome.
    }
  }
  return 0;
}
