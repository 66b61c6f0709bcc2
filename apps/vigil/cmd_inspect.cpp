// `vigil inspect FILE [--json]`: lists a tensor file's tensors and metadata after validating it
// (format and, unless --no-verify, checksums); any malformed file is a one-line error, exit 1.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "format.hpp"
#include "vigil/error.hpp"
#include "vigil/safetensors.hpp"
#include "vigil/sharded_files.hpp"

namespace vigil::cli {

namespace {

struct InspectOptions {
  std::string file;
  bool json = false;
  bool no_verify = false;
};

// Tensor names may hold control characters; never let them reach a terminal raw.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void print_json(const SafetensorsFile& f) {
  nlohmann::ordered_json out;
  out["metadata"] = nlohmann::ordered_json::object();
  for (const auto& [k, v] : f.metadata()) out["metadata"][k] = v;
  out["tensors"] = nlohmann::ordered_json::array();
  for (const auto& t : f.tensors()) {
    nlohmann::ordered_json e;
    e["name"] = t.name;
    e["dtype"] = std::string(dtype_name(t.dtype));
    e["shape"] = t.shape;
    e["data_offsets"] = {t.begin, t.end};
    out["tensors"].push_back(std::move(e));
  }
  fmt::print("{}\n", out.dump());
}

void print_table(const SafetensorsFile& f, const InspectOptions& opts) {
  std::size_t name_w = 4, dtype_w = 5, shape_w = 5, bytes_w = 5;
  std::uint64_t total = 0;
  for (const auto& t : f.tensors()) {
    name_w = std::max(name_w, printable(t.name).size());
    dtype_w = std::max(dtype_w, dtype_name(t.dtype).size());
    shape_w = std::max(shape_w, shape_text(t.shape).size());
    bytes_w = std::max(bytes_w, std::to_string(t.size()).size());
    total += t.size();
  }
  std::string checks = !f.has_checksums() ? "no vigil checksums"
                       : opts.no_verify   ? "checksums not verified (--no-verify)"
                                          : "checksums verified";
  fmt::print("{}: {} tensor{}, {} of data, {}\n", opts.file, f.tensors().size(),
             f.tensors().size() == 1 ? "" : "s", human_bytes(total), checks);
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}\n", "name", name_w, "dtype", dtype_w, "shape", shape_w,
             "bytes", bytes_w);
  for (const auto& t : f.tensors()) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}\n", printable(t.name), name_w, dtype_name(t.dtype),
               dtype_w, shape_text(t.shape), shape_w, t.size(), bytes_w);
  }
  fmt::print("{:<{}}  {:>{}}\n", "total", name_w + dtype_w + shape_w + 4, total, bytes_w);
  bool header = false;
  for (const auto& [k, v] : f.metadata()) {
    // Checksums are summarized above; listing one per tensor would drown the user's metadata.
    if (k.starts_with(kChecksumKeyPrefix)) continue;
    if (!header) fmt::print("metadata:\n");
    header = true;
    fmt::print("  {} = {}\n", printable(k), printable(v));
  }
}

// A sharded set (an index and its shards): every tensor with the shard holding it.
void inspect_sharded(const std::filesystem::path& dir, const std::string& stem,
                     const InspectOptions& opts) {
  auto set =
      open_sharded(dir, stem, SafetensorsReadOptions{}.with_verify_checksums(!opts.no_verify));
  if (!set) throw InputError(fmt::format("{}: no {}", dir.string(), shard_index_file_name(stem)));
  std::uint64_t total = 0;
  for (const auto& f : set->shards)
    for (const auto& t : f.tensors()) total += t.size();
  if (opts.json) {
    nlohmann::ordered_json out;
    out["metadata"] = {{"total_size", std::to_string(total)}};
    out["tensors"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < set->shards.size(); ++i)
      for (const auto& t : set->shards[i].tensors())
        out["tensors"].push_back({{"name", t.name},
                                  {"dtype", std::string(dtype_name(t.dtype))},
                                  {"shape", t.shape},
                                  {"data_offsets", {t.begin, t.end}},
                                  {"file", set->files[i]}});
    fmt::print("{}\n", out.dump());
    return;
  }
  fmt::print("{}: {} sharded in {} file{}, {} of data, {}\n",
             (dir / shard_index_file_name(stem)).string(), stem, set->shards.size(),
             set->shards.size() == 1 ? "" : "s", human_bytes(total),
             opts.no_verify ? "checksums not verified (--no-verify)" : "checksums verified");
  for (std::size_t i = 0; i < set->shards.size(); ++i)
    for (const auto& t : set->shards[i].tensors())
      fmt::print("{}  {}  {}  {}  {}\n", printable(t.name), dtype_name(t.dtype),
                 shape_text(t.shape), t.size(), set->files[i]);
}

}  // namespace

void add_inspect_command(CLI::App& app, Context& ctx) {
  auto opts = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand(
      "inspect", "List a tensor file's tensors (name, dtype, shape, bytes) and metadata");
  cmd->add_option("FILE", opts->file,
                  "a safetensors file, or a sharded set: its .safetensors.index.json or the "
                  "folder holding it")
      ->required();
  cmd->add_flag("--json", opts->json,
                "print one JSON object: {\"metadata\": {...}, \"tensors\": [{\"name\", "
                "\"dtype\", \"shape\", \"data_offsets\"}]}");
  cmd->add_flag("--no-verify", opts->no_verify,
                "do not check the stored checksums (list a file whose data is damaged)");
  cmd->callback([opts, &ctx] {
    namespace fs = std::filesystem;
    const fs::path path(opts->file);
    const std::string index_suffix = ".safetensors.index.json";
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      const auto stems = shard_index_stems(path);
      if (stems.empty())
        throw InputError(fmt::format(
            "{} is not a regular file (a folder must hold a sharded set's .safetensors.index.json)",
            opts->file));
      for (const auto& stem : stems) inspect_sharded(path, stem, *opts);
      ctx.exit_code = 0;
      return;
    }
    if (const auto name = path.filename().string();
        name.size() > index_suffix.size() && name.ends_with(index_suffix)) {
      inspect_sharded(path.parent_path().empty() ? fs::path(".") : path.parent_path(),
                      name.substr(0, name.size() - index_suffix.size()), *opts);
      ctx.exit_code = 0;
      return;
    }
    auto file = SafetensorsFile::open(
        opts->file, SafetensorsReadOptions{}.with_verify_checksums(!opts->no_verify));
    if (opts->json) {
      print_json(file);
    } else {
      print_table(file, *opts);
    }
    ctx.exit_code = 0;
  });
}

}  // namespace vigil::cli
