// Restore into an existing model, every contender in a fresh process as a user pays it: vigil's
// one-pass verified load_module_state (a tensor file, and a checkpoint folder checked by its
// file hash), torch::load, and Python's torch.load + load_state_dict; warm and cold page cache.
#include <unistd.h>

#include <fstream>

#include <fmt/core.h>
#include <torch/torch.h>

#include "suite.hpp"
#include "torch_state.hpp"
#include "vigil/checkpoint.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::bench {

namespace fs = std::filesystem;

namespace {

::torch::TensorOptions options_of(DType d) {
  return ::torch::TensorOptions().dtype(vigil::torch::to_scalar_type(d));
}

// The model a restore goes into: the layout's parameters, zero-filled, so that their memory is
// resident before the clock starts, as a constructed model's is.
std::shared_ptr<::torch::nn::Module> resident_model(const StateLayout& layout) {
  return module_tree(
      layout, [](const TensorSpec& t) { return ::torch::zeros(shape_of(t), options_of(t.dtype)); });
}

std::shared_ptr<::torch::nn::Module> tiny_model() {
  auto m = std::make_shared<::torch::nn::Module>();
  m->register_parameter("w", ::torch::zeros({16}), /*requires_grad=*/false);
  return m;
}

// What a resume does with a checkpoint folder its manager already listed: state.json, sizes and
// headers checked, the model's bytes hashed (whole file) while they are read into the model.
// This is RestorePoint::from and the model part of TrainContext::restore.
void restore_checkpoint(::torch::nn::Module& model, const fs::path& dir) {
  const auto point = vigil::torch::RestorePoint::from(
      Checkpoint::open(dir, CheckpointVerifyOptions{}.with_checksums(false)));
  vigil::torch::load_module_state(
      model, *point.model, vigil::torch::LoadStateOptions{}.with_file_xxh3(point.model_xxh3));
}

// The byte sums of the first and last tensors: whether a restore filled the model with the saved
// bytes (the state is random bytes, so its floats include NaNs: no float sum).
std::int64_t check_of(const ::torch::nn::Module& model, const StateLayout& layout) {
  const auto params = model.named_parameters(/*recurse=*/true);
  std::int64_t sum = 0;
  for (const auto* t : {&layout.tensors.front(), &layout.tensors.back()})
    sum += params[t->name].contiguous().view(::torch::kByte).sum().item<std::int64_t>();
  return sum;
}

struct Contender {
  std::string name;
  std::vector<std::string> argv;
  std::vector<fs::path> files;  // what a warm run reads from the page cache
};

}  // namespace

int main_restore_child(int argc, char** argv) {
  std::string layout_path, kind, file, tiny;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--layout") layout_path = argv[i + 1];
    if (a == "--kind") kind = argv[i + 1];
    if (a == "--file") file = argv[i + 1];
    if (a == "--tiny") tiny = argv[i + 1];
  }
  std::ifstream in(layout_path);
  const auto layout = StateLayout::from_json(nlohmann::json::parse(in));
  auto model = resident_model(layout);
  auto small = tiny_model();
  // The tiny restore pages this code path in (after a cache drop), so that only data comes cold.
  std::function<void(std::shared_ptr<::torch::nn::Module>&, const std::string&)> restore;
  if (kind == "vigil")
    restore = [](auto& m, const std::string& f) { vigil::torch::load_module_state(*m, f); };
  else if (kind == "checkpoint")
    restore = [](auto& m, const std::string& f) { restore_checkpoint(*m, f); };
  else if (kind == "torch")
    restore = [](auto& m, const std::string& f) { ::torch::load(m, f); };
  else
    throw Error(fmt::format("restore-child: unknown --kind '{}'", kind));
  restore(small, tiny);
  const auto t0 = std::chrono::steady_clock::now();
  restore(model, file);
  const double seconds = seconds_since(t0);
  fmt::print("{}\n",
             nlohmann::json{{"seconds", seconds}, {"check", check_of(*model, layout)}}.dump());
  return 0;
}

void bench_restore(const Config& cfg, std::uint64_t bytes, DType dtype, Results& res,
                   Facts& facts) {
  const auto label = state_label(bytes, dtype);
  const auto layout = transformer_layout(bytes, dtype);
  const fs::path shm = fmt::format("/dev/shm/vigil-bench-{}", ::getpid());
  const fs::path work = cfg.dir / (label + "-restore");
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(shm);
  fs::create_directories(work);
  fmt::print(stderr, "== {}: restore into a model, fresh processes\n", label);
  const fs::path state_path = shm / (label + "-restore.bin");
  const fs::path layout_path = shm / (label + "-restore.json");
  { std::ofstream(layout_path) << layout.to_json().dump(); }
  std::int64_t expected = 0;
  {
    auto state =
        SharedState::create(state_path, layout, 0x7e57000 + bytes + static_cast<int>(dtype));
    const auto views = state.views();
    save_safetensors(work / "model.safetensors", views);
    write_checkpoint(work / "ckpt", model_content(views));
    auto module = module_tree(layout, [&](const TensorSpec& t) {
      return ::torch::from_blob(state.bytes().data() + t.offset, shape_of(t), options_of(t.dtype));
    });
    ::torch::save(module, (work / "torch.pt").string());
    expected = check_of(*module, layout);
    auto out = run({cfg.python, (cfg.source_dir / "restore_python.py").string(), "save", "--layout",
                    layout_path.string(), "--state", state_path.string(), "--out",
                    (work / "python.pt").string(), "--tiny", (work / "tiny-python.pt").string()});
    if (out.exit_code != 0) throw Error("restore_python.py save failed");
  }
  fs::remove(state_path, ec);
  {
    const auto tiny_state = vigil::torch::module_state(*tiny_model());
    const auto tiny_views = tiny_state.views();
    save_safetensors(work / "tiny.safetensors", tiny_views);
    write_checkpoint(work / "tiny-ckpt", model_content(tiny_views));
    ::torch::save(tiny_model(), (work / "tiny.pt").string());
  }
  auto child = [&](const std::string& kind, const fs::path& file, const fs::path& tiny) {
    return std::vector<std::string>{
        cfg.self, "restore-child", "--layout", layout_path.string(), "--kind", kind,
        "--file", file.string(),   "--tiny",   tiny.string()};
  };
  const std::vector<Contender> contenders = {
      {"vigil",
       child("vigil", work / "model.safetensors", work / "tiny.safetensors"),
       {work / "model.safetensors"}},
      {"vigil_checkpoint",
       child("checkpoint", work / "ckpt", work / "tiny-ckpt"),
       {work / "ckpt" / "model.safetensors", work / "ckpt" / "state.json"}},
      {"torch_load", child("torch", work / "torch.pt", work / "tiny.pt"), {work / "torch.pt"}},
      {"python",
       {cfg.python, (cfg.source_dir / "restore_python.py").string(), "restore", "--layout",
        layout_path.string(), "--file", (work / "python.pt").string(), "--tiny",
        (work / "tiny-python.pt").string()},
       {work / "python.pt"}},
  };
  const int repeats =
      bytes >= (std::uint64_t{4} << 30) && cfg.repeats_large > 0 ? cfg.repeats_large : cfg.repeats;
  const bool cold = cfg.cold && facts.cold_cache;
  for (int r = 0; r < repeats; ++r) {
    for (const char* cache : {"warm", "cold"}) {
      if (std::string(cache) == "cold" && !cold) continue;
      fmt::print(stderr, "   {} restore repeat {}/{}, {}\n", label, r + 1, repeats, cache);
      auto order = contenders;
      std::rotate(order.begin(), order.begin() + (r % static_cast<int>(order.size())), order.end());
      for (const auto& c : order) {
        if (std::string(cache) == "warm")
          for (const auto& f : c.files) warm_file(f);
        else if (!drop_caches())
          throw Error("drop_caches refused in the middle of the run");
        const auto out = run(c.argv);
        if (out.exit_code != 0) throw Error(fmt::format("restore contender {} failed", c.name));
        const auto j = nlohmann::json::parse(out.out);
        // Every contender must have restored the same weights.
        const auto check = j.at("check").get<std::int64_t>();
        if (check != expected)
          throw Error(
              fmt::format("restore contender {} restored other weights (byte sum {}, saved {})",
                          c.name, check, expected));
        const auto key = fmt::format("restore_{}.{}.{}", cache, label, c.name);
        res.add(key, j.at("seconds").get<double>());
        res.add(key + "_process", out.seconds);
      }
    }
  }
  fs::remove_all(work, ec);
  fs::remove(layout_path, ec);
}

}  // namespace vigil::bench
