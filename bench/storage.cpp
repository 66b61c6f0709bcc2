// Storage contenders: saves (dd, vigil, torch::save, Python torch.save), loads (warm and cold),
// async saves against memcpy, and the peak extra memory of a save (in a child process).
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include <fmt/core.h>
#include <torch/torch.h>

#include "suite.hpp"
#include "torch_state.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::shared_ptr<::torch::nn::Module> module_tree(
    const StateLayout& layout, const std::function<::torch::Tensor(const TensorSpec&)>& make) {
  auto root = std::make_shared<::torch::nn::Module>();
  for (const auto& t : layout.tensors) {
    std::shared_ptr<::torch::nn::Module> m = root;
    std::size_t begin = 0;
    for (;;) {
      auto dot = t.name.find('.', begin);
      if (dot == std::string::npos) break;
      auto part = t.name.substr(begin, dot - begin);
      auto children = m->named_children();
      if (auto* found = children.find(part)) {
        m = *found;
      } else {
        m = m->register_module(part, std::make_shared<::torch::nn::Module>());
      }
      begin = dot + 1;
    }
    m->register_parameter(t.name.substr(begin), make(t), /*requires_grad=*/false);
  }
  return root;
}

std::vector<std::int64_t> shape_of(const TensorSpec& t) {
  return {t.shape.begin(), t.shape.end()};
}

CheckpointContent model_content(const std::vector<TensorView>& views) {
  CheckpointContent c;
  c.files["model"] = views;
  return c;
}

std::string dtype_label(DType dtype) {
  return dtype == DType::BF16 ? "bf16" : dtype == DType::F16 ? "f16" : "f32";
}

std::string state_label(std::uint64_t bytes, DType dtype) {
  return size_label(bytes) + "." + dtype_label(dtype);
}

namespace {

c10::ScalarType scalar_of(DType d) {
  return vigil::torch::to_scalar_type(d);
}

double fsync_path(const fs::path& path) {
  const auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) throw Error(fmt::format("cannot fsync {}", path.string()));
  ::close(fd);
  return seconds_since(t0);
}

nlohmann::json ask(Child& py, const nlohmann::json& request) {
  py.send_line(request.dump());
  auto reply = nlohmann::json::parse(py.read_line());
  if (reply.contains("error"))
    throw Error("torch_harness.py: " + reply["error"].get<std::string>());
  return reply;
}

// Minor page faults of the calling thread so far.
std::uint64_t thread_minor_faults() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return static_cast<std::uint64_t>(u.ru_minflt);
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw Error("cannot find a free loopback port for the sharded-save ranks");
  ::close(fd);
  return ntohs(a.sin_port);
}

// The issue-6 figure: the same module saved as a training checkpoint by one writer
// (save_training_checkpoint, what ModelCheckpoint does) and by two data-parallel ranks, each
// writing its shard in parallel and rank 0 committing (ShardedModelCheckpoint). The ranks are
// two threads of this process with their own Gloo process groups over the loopback: the disk
// sees the same two concurrent writers as with two processes.
class ShardedRig {
 public:
  ShardedRig(const fs::path& dir, std::shared_ptr<::torch::nn::Module> module) {
    // The state never changes between saves: sharing would link every file instead of writing
    // it (section 7 measures sharing; the sharded save does not share).
    const auto opts =
        CheckpointManagerOptions{}.with_monitor("").with_keep_last(1).with_share_unchanged_files(
            false);
    single_ = std::make_shared<CheckpointManager>(dir / "single-run", opts);
    auto sharded = std::make_shared<CheckpointManager>(dir / "sharded-run", opts);
    const int port = free_loopback_port();
    auto group = [port](int rank) {
      return std::make_shared<vigil::torch::ProcessGroup>(
          vigil::torch::DistributedOptions{}.with_rank(rank).with_world_size(2).with_master_port(
              port));
    };
    std::shared_ptr<vigil::torch::ProcessGroup> g1;
    std::thread peer([&] { g1 = group(1); });
    auto g0 = group(0);
    peer.join();
    rank0_ = std::make_unique<vigil::torch::ShardedModelCheckpoint>(g0, sharded);
    rank1_ = std::make_unique<vigil::torch::ShardedModelCheckpoint>(g1, nullptr);
    for (auto* c : {&ctx0_, &ctx1_}) c->model = module;
  }
  double save_single() {
    ctx0_.epoch = ++epoch_;
    const auto t0 = Clock::now();
    (void)vigil::torch::save_training_checkpoint(*single_, ctx0_, SavePoint::EpochEnd, {});
    return seconds_since(t0);
  }
  double save_sharded() {
    ctx0_.epoch = ctx1_.epoch = ++epoch_;
    const auto t0 = Clock::now();
    std::exception_ptr peer_error;
    std::thread peer([&] {
      try {
        (void)rank1_->save(ctx1_, SavePoint::EpochEnd, {});
      } catch (...) {
        peer_error = std::current_exception();
      }
    });
    (void)rank0_->save(ctx0_, SavePoint::EpochEnd, {});
    peer.join();
    if (peer_error) std::rethrow_exception(peer_error);
    return seconds_since(t0);
  }

 private:
  std::shared_ptr<CheckpointManager> single_;
  std::unique_ptr<vigil::torch::ShardedModelCheckpoint> rank0_, rank1_;
  vigil::torch::TrainContext ctx0_, ctx1_;
  int epoch_ = 0;
};

// Zero-copy libtorch tensors on every tensor of a mapped file: what a loader hands to a model.
std::vector<::torch::Tensor> torch_views(const SafetensorsFile& f) {
  std::vector<::torch::Tensor> ts;
  ts.reserve(f.tensors().size());
  for (const auto& info : f.tensors()) {
    auto v = f.view(info.name);
    ts.push_back(::torch::from_blob(const_cast<std::byte*>(v.data.data()),
                                    std::vector<std::int64_t>(v.shape.begin(), v.shape.end()),
                                    ::torch::TensorOptions().dtype(scalar_of(v.dtype))));
  }
  return ts;
}

struct Contender {
  std::string name;
  std::function<void()> run;
};

}  // namespace

void bench_storage(const Config& cfg, std::uint64_t bytes, DType dtype, Results& res,
                   Facts& facts) {
  const auto label = state_label(bytes, dtype);
  const auto layout = transformer_layout(bytes, dtype);
  const fs::path shm = fmt::format("/dev/shm/vigil-bench-{}", ::getpid());
  const fs::path work = cfg.dir / label;
  remove_all_quietly(work);
  fs::create_directories(shm);
  fs::create_directories(work);
  fmt::print(stderr, "== {}: {} tensors, {} layers of width {}, {} bytes\n", label,
             layout.tensors.size(), layout.layers, layout.d_model, layout.bytes);
  facts.extra["states"][label] = {{"bytes", layout.bytes},
                                  {"tensors", layout.tensors.size()},
                                  {"layers", layout.layers},
                                  {"d_model", layout.d_model}};

  const fs::path state_path = shm / (label + ".bin");
  const fs::path layout_path = shm / (label + ".json");
  { std::ofstream(layout_path) << layout.to_json().dump(); }
  auto state =
      SharedState::create(state_path, layout, 0x5eed0000 + bytes + static_cast<int>(dtype));
  auto views = state.views();

  // The libtorch side: a module whose parameters are the shared state itself.
  auto module = module_tree(layout, [&](const TensorSpec& t) {
    return ::torch::from_blob(state.bytes().data() + t.offset, shape_of(t),
                              ::torch::TensorOptions().dtype(scalar_of(t.dtype)));
  });
  auto placeholder_module = [&] {
    return module_tree(layout, [&](const TensorSpec& t) {
      return ::torch::empty({0}, ::torch::TensorOptions().dtype(scalar_of(t.dtype)));
    });
  };

  // Tiny files that warm each contender's code path again after the page cache was dropped.
  const fs::path tiny_vigil = work / "tiny.safetensors";
  const fs::path tiny_ckpt = work / "tiny-ckpt";
  const fs::path tiny_torch = work / "tiny.pt";
  const fs::path tiny_py = work / "tiny-python.pt";  // written by the harness at start
  const std::vector<TensorView> tiny_views(views.end() - 1, views.end());
  save_safetensors(tiny_vigil, tiny_views);
  write_checkpoint(tiny_ckpt, model_content(tiny_views));
  {
    auto tiny = std::make_shared<::torch::nn::Module>();
    tiny->register_parameter("w", ::torch::zeros({16}), false);
    ::torch::save(tiny, tiny_torch.string());
  }

  Child py({cfg.python, (cfg.source_dir / "torch_harness.py").string(), "--layout",
            layout_path.string(), "--state", state_path.string(), "--tiny", tiny_py.string()});
  auto ready = nlohmann::json::parse(py.read_line());
  facts.extra["python_torch"] = ready.value("torch", "");

  // Background saves go through the real CheckpointManager (reused snapshot buffers), sharing
  // off: the state never changes, so every file would be a link.
  CheckpointManager async_mgr(work / "async-run", CheckpointManagerOptions{}
                                                      .with_monitor("")
                                                      .with_share_unchanged_files(false)
                                                      .with_keep_last(1)
                                                      .with_async(true)
                                                      .with_verify_on_open(false));
  SaveRequest request;
  request.files["model"] = views;
  {
    // The cold first call: maps and first-touches the arena on the training thread.
    const auto t0 = Clock::now();
    async_mgr.save_async(request);
    res.add("async." + label + ".first_block", seconds_since(t0));
    async_mgr.wait();
  }
  {
    // What ModelCheckpoint does after the first training step: reserve_async() maps and
    // touches the snapshot on the writer thread while training goes on (here: wait() for it),
    // so the first save_async() only copies. Its own manager, after the cold first call above
    // (an arena just unmapped would make the next first touch cheap: bench/notes.md).
    CheckpointManager reserved(work / "async-reserved", CheckpointManagerOptions{}
                                                            .with_monitor("")
                                                            .with_share_unchanged_files(false)
                                                            .with_keep_last(1)
                                                            .with_async(true)
                                                            .with_verify_on_open(false));
    auto t0 = Clock::now();
    reserved.reserve_async(request);
    reserved.wait();
    res.add("async." + label + ".reserve", seconds_since(t0));
    t0 = Clock::now();
    reserved.save_async(request);
    res.add("async." + label + ".first_block_reserved", seconds_since(t0));
    reserved.wait();
  }

  ShardedRig sharded_rig(work / "sharded", module);
  const fs::path dd_out = work / "dd.bin";
  const fs::path vigil_dir = work / "vigil-ckpt";
  const fs::path vigil_file = vigil_dir / "model.safetensors";
  const fs::path torch_file = work / "torch-save.pt";
  const fs::path py_file = work / "python-save.pt";
  auto key = [&](const std::string& group, const std::string& name) {
    return group + "." + label + "." + name;
  };

  // Allocated like the snapshot arena (2 MiB aligned, transparent huge pages asked for), so that
  // the floor is the best plain memcpy this machine does, not one slowed by 4 KiB TLB misses.
  constexpr std::size_t huge_page = std::size_t{2} << 20;
  const std::size_t floor_bytes = (layout.bytes + huge_page - 1) / huge_page * huge_page;
  std::unique_ptr<std::byte, decltype(&std::free)> copy_floor(
      static_cast<std::byte*>(std::aligned_alloc(huge_page, floor_bytes)), &std::free);
  if (!copy_floor) throw Error("cannot allocate the memcpy baseline's buffer");
  (void)::madvise(copy_floor.get(), floor_bytes, MADV_HUGEPAGE);
  std::memset(copy_floor.get(), 0, floor_bytes);
  const int repeats =
      bytes >= (std::uint64_t{4} << 30) && cfg.repeats_large > 0 ? cfg.repeats_large : cfg.repeats;
  for (int r = 0; r < repeats; ++r) {
    fmt::print(stderr, "   {} repeat {}/{}: saves", label, r + 1, repeats);
    remove_all_quietly(vigil_dir);
    remove_all_quietly(torch_file);
    remove_all_quietly(py_file);
    ::sync();
    // dd copies the state from /dev/shm into the scratch folder, 16 MiB at a time.
    auto timed_dd = [&](const std::string& name, const std::vector<std::string>& flags) {
      std::vector<std::string> argv = {"dd", "if=" + state_path.string(), "of=" + dd_out.string(),
                                       "bs=16M"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.push_back("status=none");
      auto out = run(argv, true);
      if (out.exit_code != 0) throw Error(name + " failed");
      res.add(key("save", name), out.seconds);
      remove_all_quietly(dd_out);
    };
    std::vector<Contender> saves = {
        {"dd", [&] { timed_dd("dd", {"conv=fsync"}); }},
        // The device without the page cache (GNU dd drops O_DIRECT for a short last block).
        {"dd_direct",
         [&] {
           timed_dd("dd_direct", {"oflag=direct", "conv=fsync"});
         }},
        {"vigil",
         [&] {
           const auto t0 = Clock::now();
           write_checkpoint(vigil_dir, model_content(views));
           res.add(key("save", "vigil"), seconds_since(t0));
         }},
        {"checkpoint_single",
         [&] { res.add(key("save", "checkpoint_single"), sharded_rig.save_single()); }},
        {"checkpoint_sharded2",
         [&] { res.add(key("save", "checkpoint_sharded2"), sharded_rig.save_sharded()); }},
        {"torch_save",
         [&] {
           const auto t0 = Clock::now();
           ::torch::save(module, torch_file.string());
           const double write = seconds_since(t0);
           const double sync = fsync_path(torch_file);
           res.add(key("save", "torch_save_nosync"), write);
           res.add(key("save", "torch_save"), write + sync);
         }},
        {"python_save",
         [&] {
           auto reply = ask(py, {{"op", "save"}, {"path", py_file.string()}});
           res.add(key("save", "python_save_nosync"), reply["write_s"].get<double>());
           res.add(key("save", "python_save"), reply["total_s"].get<double>());
         }},
    };
    for (auto& c : rotated(saves, r)) {
      ::sync();
      c.run();
    }

    fmt::print(stderr, ", async");
    // The snapshot and its floor are taken back to back under the same conditions, in turns
    // first and second (like the contenders above), with this thread's page faults counted.
    auto timed_async = [&] {
      ::sync();
      const auto f0 = thread_minor_faults();
      const auto t0 = Clock::now();
      async_mgr.save_async(request);
      res.add(key("async", "block"), seconds_since(t0));
      res.add(key("async", "block_faults"), double(thread_minor_faults() - f0));
      async_mgr.wait();
      res.add(key("async", "total"), seconds_since(t0));
    };
    // A plain memcpy of the state into touched memory that lives as long as the snapshot's
    // arena does: the floor of any snapshot. A buffer allocated afresh for each copy measured
    // anywhere from 0.09 s to 1.2 s for 1 GiB on this VM (first touch; see bench/notes.md).
    auto timed_memcpy = [&] {
      ::sync();
      const auto f0 = thread_minor_faults();
      const auto t0 = Clock::now();
      std::memcpy(copy_floor.get(), state.bytes().data(), layout.bytes);
      res.add(key("async", "memcpy"), seconds_since(t0));
      res.add(key("async", "memcpy_faults"), double(thread_minor_faults() - f0));
    };
    if (r % 2 == 0) {
      timed_async();
      timed_memcpy();
    } else {
      timed_memcpy();
      timed_async();
    }

    // load_module_state into the live module, with or without checking the checksums (a tiny
    // call only maps a small file, to warm the code paths).
    auto module_load = [&](bool tiny, bool verify) {
      if (tiny) {
        (void)SafetensorsFile::open(tiny_vigil);
        return 0.0;
      }
      const auto t0 = Clock::now();
      auto f =
          SafetensorsFile::open(vigil_file, SafetensorsReadOptions{}.with_verify_checksums(verify));
      vigil::torch::load_module_state(*module, f);
      return seconds_since(t0);
    };
    // Loads, warm: every file was just written and is read once more to be sure it is cached.
    fmt::print(stderr, ", warm loads");
    std::vector<std::pair<std::string, std::function<double(bool)>>> loads = {
        {"vigil_mmap_verify",
         [&](bool tiny) {
           const auto t0 = Clock::now();
           auto f = SafetensorsFile::open(tiny ? tiny_vigil : vigil_file);
           const auto tensors = torch_views(f);
           return seconds_since(t0);
         }},
        {"vigil_checkpoint_open",
         [&](bool tiny) {
           const auto t0 = Clock::now();
           auto ck = Checkpoint::open(tiny ? tiny_ckpt : vigil_dir);
           auto f = ck.open_file("model");
           const auto tensors = torch_views(f);
           return seconds_since(t0);
         }},
        {"vigil_module_verify", [&](bool tiny) { return module_load(tiny, true); }},
        {"vigil_module_noverify", [&](bool tiny) { return module_load(tiny, false); }},
        {"torch_load",
         [&](bool tiny) {
           if (tiny) {
             auto m = std::make_shared<::torch::nn::Module>();
             m->register_parameter("w", ::torch::empty({0}), false);
             ::torch::load(m, tiny_torch.string());
             return 0.0;
           }
           // torch::load re-points the module's parameters at freshly read storages (set_);
           // placeholders keep the freeing of old storages out of its time.
           auto m = placeholder_module();
           const auto t0 = Clock::now();
           ::torch::load(m, torch_file.string());
           return seconds_since(t0);
         }},
        {"python_load",
         [&](bool tiny) {
           auto reply = ask(py, {{"op", "load"}, {"path", (tiny ? tiny_py : py_file).string()}});
           return reply["seconds"].get<double>();
         }},
    };
    for (const auto& f : {vigil_file, torch_file, py_file}) warm_file(f);
    for (auto& [name, fn] : rotated(loads, r)) res.add(key("load_warm", name), fn(false));

    if (cfg.cold && facts.cold_cache) {
      fmt::print(stderr, ", cold loads");
      for (auto& [name, fn] : rotated(loads, r)) {
        if (!drop_caches()) break;
        fn(true);  // page the contender's own code back in (libraries were dropped too)
        res.add(key("load_cold", name), fn(false));
      }
    }
    fmt::print(stderr, "\n");
  }
  py.finish();
  async_mgr.wait();

  // Peak extra memory, in fresh processes (one each; the high-water mark is per process).
  for (const char* mode : {"sync", "async"}) {
    auto out = run({cfg.self, "peak-rss", "--state", state_path.string(), "--layout",
                    layout_path.string(), "--mode", mode, "--dir", (work / "peak").string()});
    if (out.exit_code != 0) throw Error(fmt::format("peak-rss {} failed", mode));
    auto j = nlohmann::json::parse(out.out);
    res.add(key("peak_extra", mode), j["extra_bytes"].get<double>());
    facts.peak_reset = j["reset"].get<bool>();
    remove_all_quietly(work / "peak");
  }
  remove_all_quietly(work);
  remove_all_quietly(layout_path);
}

int main_peak_rss(int argc, char** argv) {
  std::string state_path, layout_path, mode, dir;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--state") state_path = argv[i + 1];
    if (a == "--layout") layout_path = argv[i + 1];
    if (a == "--mode") mode = argv[i + 1];
    if (a == "--dir") dir = argv[i + 1];
  }
  std::ifstream in(layout_path);
  auto layout = StateLayout::from_json(nlohmann::json::parse(in));
  auto state = SharedState::open(state_path, layout);
  // The state must count as resident before the baseline: touch every page.
  volatile std::uint64_t sink = 0;
  for (std::uint64_t i = 0; i < layout.bytes; i += 4096)
    sink = sink + static_cast<std::uint64_t>(state.bytes()[i]);
  fs::remove_all(dir);
  fs::create_directories(dir);
  SaveRequest request;
  request.files["model"] = state.views();
  const bool reset = reset_peak_rss();
  const std::uint64_t baseline = rss_bytes();
  if (mode == "sync") {
    write_checkpoint(fs::path(dir) / "sync", model_content(request.files["model"]));
  } else {
    CheckpointManager mgr(
        fs::path(dir) / "async-run",
        CheckpointManagerOptions{}.with_monitor("").with_async(true).with_share_unchanged_files(
            false));
    mgr.save_async(request);
    mgr.wait();
  }
  const std::uint64_t peak = peak_rss_bytes();
  nlohmann::json j = {{"baseline_bytes", baseline},
                      {"peak_bytes", peak},
                      {"extra_bytes", peak > baseline ? peak - baseline : 0},
                      {"reset", reset}};
  fmt::print("{}\n", j.dump());
  fs::remove_all(dir);
  return 0;
}

}  // namespace vigil::bench
