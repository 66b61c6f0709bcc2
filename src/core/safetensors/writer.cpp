// The safetensors writer. It reproduces the reference serializer byte for byte (sort order,
// compact JSON, space padding to 8) and streams tensors from the caller's memory.
#include <xxhash.h>

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include <fmt/core.h>

#include "safetensors/block_writer.hpp"
#include "safetensors/format.hpp"
#include "safetensors/plan.hpp"
#include "vigil/safetensors.hpp"
#include "xxh_state.hpp"

namespace vigil {

namespace {

using detail::printable;

void check_tensor(const TensorView& t, std::unordered_set<std::string_view>& names) {
  if (t.name == "__metadata__") {
    throw OptionError("a tensor cannot be named \"__metadata__\" (the format reserves it)");
  }
  if (!detail::is_utf8(t.name)) {
    throw OptionError(fmt::format("tensor name {} is not valid UTF-8", printable(t.name)));
  }
  if (!names.insert(t.name).second) {
    throw OptionError(
        fmt::format("tensor name {} appears twice; names must be unique", printable(t.name)));
  }
  auto nbytes = detail::checked_nbytes(t.shape, dtype_size(t.dtype));
  if (!nbytes) {
    throw OptionError(fmt::format("tensor {}: shape {} of {} overflows 64 bits", printable(t.name),
                                  detail::shape_text(t.shape), dtype_name(t.dtype)));
  }
  if (*nbytes != t.data.size()) {
    throw OptionError(fmt::format(
        "tensor {}: shape {} of {} needs {} bytes but its data has {} bytes", printable(t.name),
        detail::shape_text(t.shape), dtype_name(t.dtype), *nbytes, t.data.size()));
  }
}

void check_input(std::span<const TensorView> tensors, const Metadata& metadata) {
  std::unordered_set<std::string_view> names;
  names.reserve(tensors.size());
  for (const auto& t : tensors) check_tensor(t, names);
  for (const auto& [key, value] : metadata) {
    if (!detail::is_utf8(key) || !detail::is_utf8(value)) {
      throw OptionError(fmt::format("metadata entry {} is not valid UTF-8", printable(key)));
    }
  }
}

// The reference order: dtype alignment (its enum order) descending, then name ascending,
// comparing names bytewise like Rust's str::cmp.
std::vector<std::size_t> file_order(std::span<const TensorView> tensors) {
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    int ra = detail::dtype_info(tensors[a].dtype).reference_rank;
    int rb = detail::dtype_info(tensors[b].dtype).reference_rank;
    if (ra != rb) return ra > rb;
    return tensors[a].name < tensors[b].name;
  });
  return order;
}

// Stored checksums are vigil's own: stale ones from a file being re-saved are replaced. `known`
// holds each tensor's XXH3-64 when the caller has them (empty: every tensor is hashed).
Metadata file_metadata(std::span<const TensorView> tensors, const Metadata& metadata,
                       const SafetensorsWriteOptions& options,
                       std::span<const std::uint64_t> known) {
  Metadata meta;
  for (const auto& [key, value] : metadata) {
    if (!detail::is_vigil_owned_key(key)) meta.emplace(key, value);
  }
  if (options.checksums) {
    meta.emplace(std::string(kFormatKey), "1");
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      meta.insert_or_assign(
          std::string(kChecksumKeyPrefix) + tensors[i].name,
          detail::checksum_hex(known.empty() ? xxh3_64(tensors[i].data) : known[i]));
    }
  }
  return meta;
}

void append_metadata_json(std::string& json, const Metadata& meta) {
  json += "\"__metadata__\":{";
  bool first_entry = true;
  for (const auto& [key, value] : meta) {
    if (!first_entry) json.push_back(',');
    first_entry = false;
    detail::append_json_string(json, key);
    json.push_back(':');
    detail::append_json_string(json, value);
  }
  json.push_back('}');
}

void append_tensor_json(std::string& json, const TensorView& t, std::uint64_t offset) {
  detail::append_json_string(json, t.name);
  json += ":{\"dtype\":\"";
  json += dtype_name(t.dtype);
  json += "\",\"shape\":[";
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (i) json.push_back(',');
    json += std::to_string(t.shape[i]);
  }
  json += "],\"data_offsets\":[";
  json += std::to_string(offset);
  json.push_back(',');
  json += std::to_string(offset + t.data.size());
  json += "]}";
}

// The JSON header, padded with spaces to a multiple of 8 bytes.
std::string header_json(std::span<const TensorView> tensors, const std::vector<std::size_t>& order,
                        const Metadata& meta) {
  std::string json;
  json.reserve(64 + tensors.size() * 96 + meta.size() * 48);
  json.push_back('{');
  bool first = true;
  if (!meta.empty()) {
    append_metadata_json(json, meta);
    first = false;
  }
  std::uint64_t offset = 0;
  for (std::size_t idx : order) {
    if (!first) json.push_back(',');
    first = false;
    append_tensor_json(json, tensors[idx], offset);
    offset += tensors[idx].data.size();
  }
  json.push_back('}');
  json.append((8 - json.size() % 8) % 8, ' ');
  return json;
}

}  // namespace

namespace {

SafetensorsPlan make_plan(std::span<const TensorView> tensors, const Metadata& metadata,
                          const SafetensorsWriteOptions& options,
                          std::span<const std::uint64_t> known) {
  check_input(tensors, metadata);
  SafetensorsPlan out;
  out.checksums = options.checksums;
  out.order = file_order(tensors);
  const std::string json =
      header_json(tensors, out.order, file_metadata(tensors, metadata, options, known));
  if (json.size() > detail::kMaxHeaderSize) {
    throw OptionError(fmt::format(
        "the header would be {} bytes, above the format's limit of {} (too many tensors or too "
        "much metadata)",
        json.size(), detail::kMaxHeaderSize));
  }
  std::uint64_t n = json.size();
  out.header.resize(8);
  for (int i = 0; i < 8; ++i) out.header[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out.header += json;
  out.file_bytes = out.header.size();
  for (const auto& t : tensors) out.file_bytes += t.data.size();
  return out;
}

}  // namespace

SafetensorsPlan plan_safetensors(std::span<const TensorView> tensors, const Metadata& metadata,
                                 const SafetensorsWriteOptions& options) {
  return make_plan(tensors, metadata, options, {});
}

SafetensorsPlan detail::plan_with_checksums(std::span<const TensorView> tensors,
                                            std::span<const std::uint64_t> xxh3,
                                            const Metadata& metadata) {
  if (xxh3.size() != tensors.size())
    throw OptionError(
        fmt::format("{} checksums given for {} tensors", xxh3.size(), tensors.size()));
  return make_plan(tensors, metadata, SafetensorsWriteOptions{}, xxh3);
}

std::optional<std::uint64_t> write_safetensors(DurableFile& out,
                                               std::span<const TensorView> tensors,
                                               const Metadata& metadata,
                                               const SafetensorsWriteOptions& options) {
  if (options.block_bytes == 0) throw OptionError("block_bytes must be at least 1");
  return write_planned_safetensors(out, tensors, plan_safetensors(tensors, metadata, options),
                                   options);
}

std::optional<std::uint64_t> write_planned_safetensors(DurableFile& out,
                                                       std::span<const TensorView> tensors,
                                                       const SafetensorsPlan& plan,
                                                       const SafetensorsWriteOptions& options) {
  if (options.block_bytes == 0) throw OptionError("block_bytes must be at least 1");
  std::uint64_t total = plan.header.size();
  for (const auto& t : tensors) total += t.data.size();
  if (plan.order.size() != tensors.size() || total != plan.file_bytes)
    throw OptionError(fmt::format(
        "a safetensors plan of {} tensors ({} bytes) cannot write {} tensors ({} bytes): plan "
        "the tensors being written",
        plan.order.size(), plan.file_bytes, tensors.size(), total));
  detail::XxhState hash;
  if (options.file_hash) hash = detail::new_xxh_state();
  auto digest = [&]() -> std::optional<std::uint64_t> {
    if (!hash) return std::nullopt;
    return XXH3_64bits_digest(hash.get());
  };
  // Only with the real file layer: a FileOps given by the caller (fault injection, sparse
  // writes in tests) sees exactly the caller's buffers, as documented for block_bytes.
  if (total >= detail::kDirectMinBytes && options.ops == FileOps::real()) {
    if (detail::write_direct(out, plan.header, tensors, plan.order, options.block_bytes,
                             hash.get()))
      return digest();
    if (hash) XXH3_64bits_reset(hash.get());  // the refused first block was hashed already
  }
  auto write = [&](std::span<const std::byte> bytes) {
    out.write_all(bytes);
    if (hash) XXH3_64bits_update(hash.get(), bytes.data(), bytes.size());
  };
  write(std::as_bytes(std::span<const char>(plan.header.data(), plan.header.size())));
  // Through the page cache straight from the caller's memory: no staging copy.
  for (std::size_t idx : plan.order) {
    auto data = tensors[idx].data;
    for (std::size_t pos = 0; pos < data.size(); pos += options.block_bytes) {
      write(data.subspan(pos, std::min(options.block_bytes, data.size() - pos)));
    }
  }
  return digest();
}

void save_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                      const Metadata& metadata, const SafetensorsWriteOptions& options) {
  // Invalid input must not even create a temporary file.
  if (options.block_bytes == 0) throw OptionError("block_bytes must be at least 1");
  (void)plan_safetensors(tensors, metadata, SafetensorsWriteOptions{}.with_checksums(false));
  atomic_write_file_with(
      path, [&](DurableFile& f) { (void)write_safetensors(f, tensors, metadata, options); },
      options.ops);
}

}  // namespace vigil
