// Shared pieces of vigil-bench: timing, repeated-measurement statistics, child processes, the
// page cache and memory probes, and the model-shaped state every storage contender writes.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vigil/safetensors.hpp"

namespace vigil::bench {

/// Seconds since `start` on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// min / median / max of one figure's repeats.
struct Summary {
  double min = 0, median = 0, max = 0;
  std::size_t n = 0;
};
Summary summarize(std::vector<double> values);

/// Every measured figure by key ("save.1GiB.f32.vigil"), its repeats in order.
class Results {
 public:
  void add(const std::string& key, double value) { series_[key].push_back(value); }
  bool has(const std::string& key) const { return series_.count(key) > 0; }
  Summary summary(const std::string& key) const;
  double median(const std::string& key) const { return summary(key).median; }
  const std::map<std::string, std::vector<double>>& all() const { return series_; }

 private:
  std::map<std::string, std::vector<double>> series_;
};

/// A child process with its stdin and stdout on pipes (stderr inherited).
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  /// Writes one line (a newline is added).
  void send_line(const std::string& line);
  /// Reads one line; throws Error if the child closed its stdout.
  std::string read_line();
  /// Closes stdin and waits; returns the exit code (128 + signal when killed).
  int finish();

 private:
  pid_t pid_ = -1;
  int in_ = -1;   // our end of the child's stdin
  int out_ = -1;  // our end of the child's stdout
  std::string buffer_;
};

/// Runs `argv` to completion (stdout captured unless `quiet_stdout`: then sent to /dev/null).
struct RunOutput {
  int exit_code = -1;
  std::string out;
  double seconds = 0;  ///< wall time from spawn to exit
};
RunOutput run(const std::vector<std::string>& argv, bool quiet_stdout = false);

/// sync(2), then asks the kernel to drop clean page cache; false when it refuses (not root).
bool drop_caches();
/// Reads a whole file once (brings it into the page cache).
void warm_file(const std::filesystem::path& path);
/// Current resident set size and its high-water mark, in bytes (from /proc/self/status).
std::uint64_t rss_bytes();
std::uint64_t peak_rss_bytes();
/// Resets the high-water mark to the current RSS (writes 5 to /proc/self/clear_refs); false if
/// the kernel does not support it.
bool reset_peak_rss();

/// One tensor of the model-shaped state: where its bytes lie in the state buffer.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t offset = 0;
  std::uint64_t nbytes = 0;
};

/// A decoder-only transformer's parameters (embeddings, per layer: two LayerNorms, fused QKV,
/// attention projection, 4x MLP) sized to about `target_bytes` of `dtype` elements.
struct StateLayout {
  std::vector<TensorSpec> tensors;
  std::uint64_t bytes = 0;
  DType dtype = DType::F32;
  int layers = 0;
  int d_model = 0;
  nlohmann::json to_json() const;
  static StateLayout from_json(const nlohmann::json& j);
};
StateLayout transformer_layout(std::uint64_t target_bytes, DType dtype);

/// The state's bytes in a file under /dev/shm mapped shared: the C++ contenders, the Python
/// harness and dd all read the same incompressible bytes from the same memory (one copy in RAM).
class SharedState {
 public:
  /// Creates `path` with `layout.bytes` seeded random bytes.
  static SharedState create(const std::filesystem::path& path, const StateLayout& layout,
                            std::uint64_t seed);
  /// Maps an existing state file (the peak-memory child).
  static SharedState open(const std::filesystem::path& path, const StateLayout& layout);
  SharedState(SharedState&& other) noexcept;
  SharedState& operator=(SharedState&&) = delete;
  SharedState(const SharedState&) = delete;
  ~SharedState();

  const StateLayout& layout() const { return layout_; }
  std::span<std::byte> bytes() const { return {data_, layout_.bytes}; }
  const std::filesystem::path& path() const { return path_; }
  /// safetensors views of every tensor (zero copy).
  std::vector<TensorView> views() const;

 private:
  SharedState(std::filesystem::path path, StateLayout layout, std::byte* data, bool owner);
  std::filesystem::path path_;
  StateLayout layout_;
  std::byte* data_ = nullptr;
  bool owner_ = false;  // removes the file on destruction
};

/// Removes a file or folder tree, ignoring errors (it may not exist).
inline void remove_all_quietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
}

/// `v` rotated left by r: rotating the order every repeat keeps a drift of the disk from always
/// hitting one contender.
template <class T>
std::vector<T> rotated(std::vector<T> v, int r) {
  if (!v.empty()) std::rotate(v.begin(), v.begin() + (r % static_cast<int>(v.size())), v.end());
  return v;
}

/// "256MiB", "1GiB", "4GiB", "4MiB".
std::string size_label(std::uint64_t bytes);
/// Parses "256M", "1G", "4GiB", "512MiB", "4" (MiB).
std::uint64_t parse_size(const std::string& text);

}  // namespace vigil::bench
