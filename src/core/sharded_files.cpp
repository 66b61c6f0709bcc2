// Sharded tensor files: names, the shard plan, the index, and opening a set again.
#include "vigil/sharded_files.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "safetensors/format.hpp"
#include "safetensors/plan.hpp"
#include "vigil/checkpoint.hpp"

namespace vigil {

namespace fs = std::filesystem;

std::string shard_file_name(std::string_view stem, int k, int n) {
  return fmt::format("{}-{:05d}-of-{:05d}{}", stem, k + 1, n, kTensorFileSuffix);
}

std::string shard_index_file_name(std::string_view stem) {
  return fmt::format("{}{}", stem, kShardIndexSuffix);
}

std::vector<int> plan_shards(std::span<const TensorView> tensors, int n) {
  if (n < 1) throw OptionError(fmt::format("plan_shards: {} shards", n));
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return tensors[a].data.size() > tensors[b].data.size();
  });
  std::vector<std::uint64_t> load(static_cast<std::size_t>(n), 0);
  std::vector<int> plan(tensors.size(), 0);
  for (auto i : order) {
    const auto k =
        static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    plan[i] = static_cast<int>(k);
    load[k] += tensors[i].data.size();
  }
  return plan;
}

nlohmann::json shard_index(std::string_view stem, std::span<const TensorView> tensors,
                           const std::vector<int>& plan, int n) {
  std::uint64_t total = 0;
  auto map = nlohmann::json::object();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    total += tensors[i].data.size();
    map[tensors[i].name] = shard_file_name(stem, plan[i], n);
  }
  return {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
}

std::vector<TensorView> ShardedTensors::views() const {
  std::vector<TensorView> out;
  for (const auto& f : shards)
    for (const auto& t : f.tensors()) out.push_back(f.view(t.name));
  std::sort(out.begin(), out.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  return out;
}

std::vector<std::string> shard_index_stems(const fs::path& dir) {
  const std::string suffix(kShardIndexSuffix);
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.size() > suffix.size() && name.ends_with(suffix) && name.front() != '.')
      out.push_back(name.substr(0, name.size() - suffix.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<SafetensorsPlan> merged_plan(const ShardedTensors& set) {
  std::map<std::string_view, std::uint64_t> sums;
  for (const auto& shard : set.shards)
    for (const auto& [key, value] : shard.metadata())
      if (std::string_view(key).starts_with(kChecksumKeyPrefix))
        if (auto h = detail::parse_checksum_hex(value))
          sums.emplace(std::string_view(key).substr(kChecksumKeyPrefix.size()), *h);
  const auto views = set.views();
  std::vector<std::uint64_t> ordered;
  ordered.reserve(views.size());
  for (const auto& v : views) {
    auto it = sums.find(v.name);
    if (it == sums.end()) return std::nullopt;
    ordered.push_back(it->second);
  }
  const Metadata meta = set.shards.empty() ? Metadata{} : set.shards.front().metadata();
  return detail::plan_with_checksums(views, ordered, meta);
}

std::optional<ShardedTensors> open_sharded(const fs::path& dir, std::string_view stem,
                                           const SafetensorsReadOptions& options) {
  const fs::path index_path = dir / shard_index_file_name(stem);
  std::error_code ec;
  if (!fs::exists(index_path, ec)) return std::nullopt;
  auto fail = [&](const std::string& problem) {
    return CheckpointError(fmt::format("{}: {}", index_path.string(), problem));
  };
  nlohmann::json index;
  try {
    std::ifstream in(index_path, std::ios::binary);
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("not valid JSON ({})", e.what()));
  }
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
    throw fail("no \"weight_map\" object");
  std::map<std::string, std::string> where;  // tensor -> shard file
  std::set<std::string> files;
  for (const auto& [name, file] : index.at("weight_map").items()) {
    if (!file.is_string()) throw fail(fmt::format("the shard of \"{}\" is not a string", name));
    const auto f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.front() == '.')
      throw fail(fmt::format("shard name \"{}\" is not a plain file name", f));
    where[name] = f;
    files.insert(f);
  }
  ShardedTensors out;
  std::size_t seen = 0;
  for (const auto& f : files) {
    if (!fs::exists(dir / f, ec)) throw fail(fmt::format("its shard {} is missing", f));
    auto file = SafetensorsFile::open(dir / f, options);
    for (const auto& t : file.tensors()) {
      auto it = where.find(t.name);
      if (it == where.end() || it->second != f)
        throw fail(fmt::format("{} holds \"{}\", which the index places elsewhere", f, t.name));
      ++seen;
    }
    out.shards.push_back(std::move(file));
    out.files.push_back(f);
  }
  if (seen != where.size())
    throw fail(
        fmt::format("the index names {} tensors but its shards hold {}", where.size(), seen));
  return out;
}

}  // namespace vigil
