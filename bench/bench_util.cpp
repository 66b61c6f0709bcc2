// Timing statistics, child processes, page cache and memory probes, and the shared state buffer.
#include "bench_util.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/core.h>

#include "vigil/error.hpp"

namespace vigil::bench {

Summary summarize(std::vector<double> values) {
  Summary s;
  s.n = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  const std::size_t n = values.size();
  s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return s;
}

Summary Results::summary(const std::string& key) const {
  auto it = series_.find(key);
  if (it == series_.end()) throw Error(fmt::format("no measurement named {}", key));
  return summarize(it->second);
}

// ---- child processes ----

namespace {

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// posix_spawn, not fork: glibc spawns with CLONE_VM|CLONE_VFORK, so the bench's own memory
// (the state, torch tensors) is not marked copy-on-write, which would make every page of it
// fault again on its next write and skew the figures measured after a child ran.
pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd, bool null_stdout) {
  auto args = c_argv(argv);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  if (null_stdout) posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Child::Child(const std::vector<std::string>& argv) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
    throw Error(fmt::format("pipe: {}", std::strerror(errno)));
  pid_ = spawn(argv, to_child[0], from_child[1], false);
  ::close(to_child[0]);
  ::close(from_child[1]);
  in_ = to_child[1];
  out_ = from_child[0];
}

Child::~Child() {
  if (pid_ > 0) {
    try {
      finish();
    } catch (...) {
    }
  }
}

void Child::send_line(const std::string& line) {
  std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(in_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("a child process stopped reading its input (see its error above)");
    done += static_cast<std::size_t>(n);
  }
}

std::string Child::read_line() {
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      auto line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("a child process exited before answering (see its error above)");
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

int Child::finish() {
  if (pid_ <= 0) return -1;
  if (in_ >= 0) ::close(std::exchange(in_, -1));
  int code = wait_exit(std::exchange(pid_, -1));
  if (out_ >= 0) ::close(std::exchange(out_, -1));
  return code;
}

RunOutput run(const std::vector<std::string>& argv, bool quiet_stdout) {
  int pipefd[2] = {-1, -1};
  if (!quiet_stdout && ::pipe2(pipefd, O_CLOEXEC) != 0)
    throw Error(fmt::format("pipe: {}", std::strerror(errno)));
  const auto started = std::chrono::steady_clock::now();
  pid_t pid = spawn(argv, -1, quiet_stdout ? -1 : pipefd[1], quiet_stdout);
  RunOutput out;
  if (!quiet_stdout) {
    ::close(pipefd[1]);
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out.out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
  }
  out.exit_code = wait_exit(pid);
  out.seconds = seconds_since(started);
  return out;
}

// ---- page cache and memory ----

bool drop_caches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, "3", 1) == 1;
  ::close(fd);
  return ok;
}

void warm_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  std::vector<char> buf(std::size_t{4} << 20);
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
  ::close(fd);
}

namespace {
std::uint64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, len, key) == 0) return std::stoull(line.substr(len)) * 1024;
  }
  return 0;
}
}  // namespace

std::uint64_t rss_bytes() {
  return status_kib("VmRSS:");
}
std::uint64_t peak_rss_bytes() {
  return status_kib("VmHWM:");
}
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// ---- the state ----

nlohmann::json StateLayout::to_json() const {
  nlohmann::json ts = nlohmann::json::array();
  for (const auto& t : tensors)
    ts.push_back({{"name", t.name},
                  {"dtype", dtype_name(t.dtype)},
                  {"shape", t.shape},
                  {"offset", t.offset},
                  {"nbytes", t.nbytes}});
  return {{"bytes", bytes},
          {"dtype", dtype_name(dtype)},
          {"layers", layers},
          {"d_model", d_model},
          {"tensors", ts}};
}

StateLayout StateLayout::from_json(const nlohmann::json& j) {
  StateLayout l;
  l.bytes = j.at("bytes").get<std::uint64_t>();
  l.dtype = *parse_dtype(j.at("dtype").get<std::string>());
  l.layers = j.at("layers").get<int>();
  l.d_model = j.at("d_model").get<int>();
  for (const auto& t : j.at("tensors")) {
    l.tensors.push_back(
        TensorSpec{t.at("name").get<std::string>(), *parse_dtype(t.at("dtype").get<std::string>()),
                   t.at("shape").get<std::vector<std::uint64_t>>(),
                   t.at("offset").get<std::uint64_t>(), t.at("nbytes").get<std::uint64_t>()});
  }
  return l;
}

StateLayout transformer_layout(std::uint64_t target_bytes, DType dtype) {
  StateLayout l;
  l.dtype = dtype;
  const std::uint64_t elem = dtype_size(dtype);
  const std::uint64_t target = target_bytes / elem;
  // Small states (the smoke test) get a small width so that they still have several layers.
  const std::uint64_t d = target >= (std::uint64_t{32} << 20) ? 1024 : 128;
  const std::uint64_t ctx = d * 2;
  const std::uint64_t per_layer = 12 * d * d + 13 * d;
  const std::uint64_t fixed = ctx * d + 2 * d;
  const std::uint64_t min_vocab = 8 * d;
  std::uint64_t layers =
      target > fixed + min_vocab * d ? (target - fixed - min_vocab * d) / per_layer : 0;
  layers = std::max<std::uint64_t>(layers, 1);
  const std::uint64_t rest =
      target > layers * per_layer + fixed ? target - layers * per_layer - fixed : d;
  const std::uint64_t vocab = std::max<std::uint64_t>(rest / d, 1);
  l.layers = static_cast<int>(layers);
  l.d_model = static_cast<int>(d);

  std::uint64_t offset = 0;
  auto add = [&](std::string name, std::vector<std::uint64_t> shape) {
    std::uint64_t n = elem;
    for (auto s : shape) n *= s;
    l.tensors.push_back(TensorSpec{std::move(name), dtype, std::move(shape), offset, n});
    offset += n;
  };
  add("tok_embeddings.weight", {vocab, d});
  add("pos_embeddings.weight", {ctx, d});
  for (std::uint64_t i = 0; i < layers; ++i) {
    const auto p = fmt::format("layers.{}.", i);
    add(p + "ln1.weight", {d});
    add(p + "ln1.bias", {d});
    add(p + "attn.qkv.weight", {3 * d, d});
    add(p + "attn.qkv.bias", {3 * d});
    add(p + "attn.proj.weight", {d, d});
    add(p + "attn.proj.bias", {d});
    add(p + "ln2.weight", {d});
    add(p + "ln2.bias", {d});
    add(p + "mlp.fc.weight", {4 * d, d});
    add(p + "mlp.fc.bias", {4 * d});
    add(p + "mlp.proj.weight", {d, 4 * d});
    add(p + "mlp.proj.bias", {d});
  }
  add("ln_f.weight", {d});
  add("ln_f.bias", {d});
  l.bytes = offset;
  return l;
}

SharedState::SharedState(std::filesystem::path path, StateLayout layout, std::byte* data,
                         bool owner)
    : path_(std::move(path)), layout_(std::move(layout)), data_(data), owner_(owner) {}

SharedState::SharedState(SharedState&& other) noexcept
    : path_(std::move(other.path_)),
      layout_(std::move(other.layout_)),
      data_(std::exchange(other.data_, nullptr)),
      owner_(std::exchange(other.owner_, false)) {}

SharedState::~SharedState() {
  if (data_) ::munmap(data_, layout_.bytes);
  if (owner_) ::unlink(path_.c_str());
}

namespace {
std::byte* map_shared(const std::filesystem::path& path, std::uint64_t bytes, bool create) {
  int fd = ::open(path.c_str(),
                  create ? (O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDWR | O_CLOEXEC), 0600);
  if (fd < 0) throw Error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  if (create && ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(fmt::format("cannot size {}: {}", path.string(), std::strerror(err)));
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED)
    throw Error(fmt::format("cannot map {}: {}", path.string(), std::strerror(errno)));
  return static_cast<std::byte*>(p);
}
}  // namespace

SharedState SharedState::create(const std::filesystem::path& path, const StateLayout& layout,
                                std::uint64_t seed) {
  auto* data = map_shared(path, layout.bytes, /*create=*/true);
  SharedState s(path, layout, data, /*owner=*/true);
  // splitmix64 per 8 bytes on two threads: incompressible, seeded, and fast.
  const std::uint64_t words = layout.bytes / 8;
  auto fill = [&](std::uint64_t begin, std::uint64_t end) {
    auto* w = reinterpret_cast<std::uint64_t*>(data);
    for (std::uint64_t i = begin; i < end; ++i) {
      std::uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w[i] = z ^ (z >> 31);
    }
  };
  std::thread half([&] { fill(0, words / 2); });
  fill(words / 2, words);
  half.join();
  for (std::uint64_t i = words * 8; i < layout.bytes; ++i) data[i] = std::byte(i * 131 + seed);
  return s;
}

SharedState SharedState::open(const std::filesystem::path& path, const StateLayout& layout) {
  return SharedState(path, layout, map_shared(path, layout.bytes, /*create=*/false), false);
}

std::vector<TensorView> SharedState::views() const {
  std::vector<TensorView> out;
  out.reserve(layout_.tensors.size());
  for (const auto& t : layout_.tensors)
    out.push_back(TensorView{t.name, t.dtype, t.shape,
                             std::span<const std::byte>(data_ + t.offset, t.nbytes)});
  return out;
}

std::string size_label(std::uint64_t bytes) {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30, kMiB = std::uint64_t{1} << 20;
  if (bytes >= kGiB && bytes % kGiB == 0) return fmt::format("{}GiB", bytes / kGiB);
  return fmt::format("{}MiB", bytes / kMiB);
}

std::uint64_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  std::uint64_t v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (const std::exception&) {
    throw OptionError(fmt::format("bad size '{}': use e.g. 256M, 1G, 4GiB", text));
  }
  auto unit = text.substr(pos);
  if (unit.empty() || unit == "M" || unit == "MiB") return v << 20;
  if (unit == "G" || unit == "GiB") return v << 30;
  throw OptionError(fmt::format("bad size '{}': use e.g. 256M, 1G, 4GiB", text));
}

}  // namespace vigil::bench
