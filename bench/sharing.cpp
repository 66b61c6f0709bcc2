// Checkpoints that write only what changed: the saved time and the bytes written of a state whose
// backbone is frozen, with and without sharing, and the disk use of a frozen-backbone training run.
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <utility>

#include <fmt/core.h>
#include <torch/torch.h>

#include "suite.hpp"
#include "torch_state.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/tensor_bridge.hpp"

namespace vigil::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes this process has sent to the storage layer so far (page-cache writes and O_DIRECT alike):
// what a save really wrote, links and renames costing nothing here.
std::uint64_t process_write_bytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value)
    if (key == "write_bytes:") return value;
  return 0;
}

// The state's parameters as a module on the shared bytes; parameters whose layout index is at or
// past `first_trainable` train (requires_grad), the rest are frozen.
std::shared_ptr<::torch::nn::Module> state_module(const SharedState& state,
                                                  std::size_t first_trainable) {
  const auto& layout = state.layout();
  auto module = module_tree(layout, [&](const TensorSpec& t) {
    return ::torch::from_blob(
        state.bytes().data() + t.offset, shape_of(t),
        ::torch::TensorOptions().dtype(vigil::torch::to_scalar_type(t.dtype)));
  });
  auto params = module->named_parameters(/*recurse=*/true);
  for (std::size_t i = first_trainable; i < layout.tensors.size(); ++i)
    params[layout.tensors[i].name].requires_grad_(true);
  return module;
}

// The first tensor index from which the rest of the layout is at most (1 - fraction) of its bytes.
std::size_t frozen_prefix(const StateLayout& layout, double fraction) {
  std::uint64_t frozen = 0;
  std::size_t i = 0;
  while (i < layout.tensors.size() &&
         static_cast<double>(frozen) < fraction * static_cast<double>(layout.bytes))
    frozen += layout.tensors[i++].nbytes;
  return i;
}

// One contender: a module on `state` saved as a training checkpoint through its own manager.
// Before every save the trainable tensors change (one byte each), as training changes them.
class SaveRig {
 public:
  SaveRig(const fs::path& run_dir, SharedState& state, std::size_t first_trainable, bool share,
          bool new_best)
      : state_(state), first_trainable_(first_trainable), new_best_(new_best) {
    auto opts = CheckpointManagerOptions{}
                    .with_keep_last(1)
                    .with_verify_on_open(false)
                    .with_share_unchanged_files(share);
    if (new_best)
      opts.with_monitor("val_loss").with_mode("min").with_save_top_k(1);
    else
      opts.with_monitor("");
    manager_ = std::make_unique<CheckpointManager>(run_dir, opts);
    ctx_.model = state_module(state, first_trainable);
    (void)save();  // the steady state: a kept checkpoint to share with, best/ written once
  }

  // Seconds, and the bytes this process sent to storage meanwhile.
  std::pair<double, std::uint64_t> timed_save() {
    ::sync();
    const auto w0 = process_write_bytes();
    const auto t0 = Clock::now();
    const auto result = save();
    const double s = seconds_since(t0);
    if (new_best_ && !result.is_best) throw Error("the benchmark's save did not improve the best");
    return {s, process_write_bytes() - w0};
  }

 private:
  SaveResult save() {
    ctx_.epoch = ++epoch_;
    // The rigs on one state take turns: each sets its own save count, so that no save finds the
    // trainable tensors as its previous one left them.
    for (std::size_t i = first_trainable_; i < state_.layout().tensors.size(); ++i)
      state_.bytes()[state_.layout().tensors[i].offset] =
          static_cast<std::byte>(static_cast<unsigned>(epoch_) & 0xFFu);
    // Decreasing, so that with a monitor every save is a new best.
    const Logs logs{{"val_loss", 1.0 / static_cast<double>(epoch_)}};
    return vigil::torch::save_training_checkpoint(*manager_, ctx_, SavePoint::EpochEnd, logs);
  }

  SharedState& state_;
  std::size_t first_trainable_ = 0;
  std::unique_ptr<CheckpointManager> manager_;
  vigil::torch::TrainContext ctx_;
  bool new_best_ = false;
  int epoch_ = 0;
};

// Every regular file under `dir`: their sizes added up, and each inode's size counted once.
std::pair<std::uint64_t, std::uint64_t> file_bytes(const fs::path& dir) {
  std::uint64_t sum = 0, unique = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    sum += static_cast<std::uint64_t>(st.st_size);
    if (seen.emplace(st.st_dev, st.st_ino).second) unique += static_cast<std::uint64_t>(st.st_size);
  }
  return {sum, unique};
}

}  // namespace

void bench_sharing(const Config& cfg, std::uint64_t bytes, DType dtype, Results& res,
                   Facts& facts) {
  const auto label = state_label(bytes, dtype);
  const auto layout = transformer_layout(bytes, dtype);
  const fs::path work = cfg.dir / ("sharing-" + label);
  const fs::path shm = fmt::format("/dev/shm/vigil-bench-{}", ::getpid());
  remove_all_quietly(work);
  fs::create_directories(work);
  fs::create_directories(shm);
  // Two states of the same bytes: one for the contenders where everything trains, one for those
  // with a frozen backbone (whose frozen part never changes).
  const std::uint64_t seed = 0x5ea40000 + bytes + static_cast<int>(dtype);
  auto full_state = SharedState::create(shm / (label + ".sharing-full.bin"), layout, seed);
  auto frozen_state = SharedState::create(shm / (label + ".sharing-frozen.bin"), layout, seed);
  const std::size_t first_trainable = frozen_prefix(layout, 0.9);
  std::uint64_t frozen_bytes = 0;
  for (std::size_t i = 0; i < first_trainable; ++i) frozen_bytes += layout.tensors[i].nbytes;
  facts.extra["sharing"][label] = {
      {"frozen_bytes", frozen_bytes},
      {"frozen_tensors", first_trainable},
      {"frozen_fraction", static_cast<double>(frozen_bytes) / static_cast<double>(layout.bytes)}};
  fmt::print(stderr, "== {} sharing: {:.1f} % frozen\n", label,
             100.0 * static_cast<double>(frozen_bytes) / static_cast<double>(layout.bytes));

  struct Contender {
    std::string name;
    std::unique_ptr<SaveRig> rig;
  };
  std::vector<Contender> contenders;
  auto add = [&](const std::string& name, bool frozen, bool share, bool best) {
    contenders.push_back(
        {name, std::make_unique<SaveRig>(work / name, frozen ? frozen_state : full_state,
                                         frozen ? first_trainable : 0, share, best)});
  };
  add("full", false, true, false);
  add("frozen_noshare", true, false, false);
  add("frozen_shared", true, true, false);
  add("full_best", false, true, true);
  add("frozen_shared_best", true, true, true);

  const int repeats =
      bytes >= (std::uint64_t{4} << 30) && cfg.repeats_large > 0 ? cfg.repeats_large : cfg.repeats;
  for (int r = 0; r < repeats; ++r) {
    fmt::print(stderr, "   {} sharing repeat {}/{}\n", label, r + 1, repeats);
    for (auto& c : rotated(std::vector<Contender*>{&contenders[0], &contenders[1], &contenders[2],
                                                   &contenders[3], &contenders[4]},
                           r)) {
      const auto [seconds, written] = c->rig->timed_save();
      res.add("sharing." + label + "." + c->name, seconds);
      res.add("sharing." + label + "." + c->name + "_written", static_cast<double>(written));
    }
  }
  contenders.clear();
  remove_all_quietly(work);
}

void bench_sharing_run(const Config& cfg, Results& res, Facts& facts) {
  const fs::path run_dir = cfg.dir / "sharing-run";
  remove_all_quietly(run_dir);
  const std::string epochs = std::to_string(cfg.sharing_epochs);
  const std::string limit = std::to_string(cfg.train_limit > 0 ? cfg.train_limit : 6000);
  const std::vector<std::string> argv = {
      cfg.vigil,       "train",     "--run-dir",   run_dir.string(),
      "--hidden",      "1024,1024", "--freeze",    "^(1|3)\\.",
      "--epochs",      epochs,      "--keep-last", "-1",
      "--limit-train", limit,       "--threads",   std::to_string(cfg.threads)};
  fmt::print(stderr, "== frozen-backbone run: vigil train --hidden 1024,1024 --freeze ...\n");
  const auto out = run(argv, /*quiet_stdout=*/true);
  if (out.exit_code != 0)
    throw Error(fmt::format("vigil train --freeze failed (exit {})", out.exit_code));
  const auto [sum, unique] = file_bytes(run_dir);
  std::size_t checkpoints = 0;
  for (const auto& e : fs::directory_iterator(run_dir / "checkpoints"))
    if (e.is_directory()) ++checkpoints;
  res.add("sharing_run.sum_bytes", static_cast<double>(sum));
  res.add("sharing_run.unique_bytes", static_cast<double>(unique));
  res.add("sharing_run.seconds", out.seconds);
  facts.extra["sharing_run"] = {{"command",
                                 "vigil train --run-dir DIR --hidden 1024,1024 --freeze "
                                 "'^(1|3)\\.' --epochs " +
                                     epochs + " --keep-last -1 --limit-train " + limit},
                                {"checkpoints", checkpoints},
                                {"epochs", std::stoi(epochs)}};
  remove_all_quietly(run_dir);
}

}  // namespace vigil::bench
