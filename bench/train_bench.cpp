// Training overhead (vigil train vs a bare libtorch loop vs Python) and replay throughput.
#include <algorithm>
#include <fstream>
#include <random>

#include <fmt/core.h>
#include <torch/torch.h>

#include "suite.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/models.hpp"

namespace vigil::bench {

namespace fs = std::filesystem;
namespace vt = vigil::torch;
using Clock = std::chrono::steady_clock;

namespace {

std::pair<double, double> evaluate(::torch::nn::Sequential& model, const vt::Dataset& data,
                                   std::int64_t batch) {
  model->eval();
  ::torch::NoGradGuard no_grad;
  double loss = 0;
  std::int64_t correct = 0;
  const std::int64_t n = data.size();
  for (std::int64_t b = 0; b < n; b += batch) {
    const auto e = std::min(n, b + batch);
    auto out = model->forward(data.features.slice(0, b, e));
    auto y = data.targets.slice(0, b, e);
    loss += ::torch::nn::functional::cross_entropy(out, y).item<double>() * double(e - b);
    correct += out.argmax(1).eq(y).sum().item<std::int64_t>();
  }
  model->train();
  return {loss / double(n), double(correct) / double(n)};
}

}  // namespace

// The plain loop a libtorch user writes without vigil: the same data, split, model, optimizer,
// batch size, threads and per-epoch validation as `vigil train`, and nothing else.
int main_train_bare(int argc, char** argv) {
  int epochs = 3, threads = 1;
  std::int64_t batch = 64, limit = 0;
  std::uint64_t seed = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--epochs") epochs = std::stoi(argv[i + 1]);
    if (a == "--threads") threads = std::stoi(argv[i + 1]);
    if (a == "--batch-size") batch = std::stoll(argv[i + 1]);
    if (a == "--limit-train") limit = std::stoll(argv[i + 1]);
    if (a == "--seed") seed = std::stoull(argv[i + 1]);
  }
  if (threads > 0) ::torch::set_num_threads(threads);
  auto train_all = vt::load_fashion_mnist(
      vt::Split::Train, vt::FashionMnistOptions{}.with_limit(
                            limit > 0 ? std::optional<std::int64_t>(limit) : std::nullopt));
  auto split = vt::train_validation_split(train_all, 0.1, seed);
  auto test = vt::load_fashion_mnist(vt::Split::Test);
  ::torch::manual_seed(seed);
  auto model = vt::build_model(vt::ModelSpec{});
  ::torch::optim::Adam opt(model->parameters(), ::torch::optim::AdamOptions(1e-3));
  auto gen = ::at::detail::createCPUGenerator(seed);

  const auto started = Clock::now();
  const std::int64_t n = split.train.size();
  double val_acc = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    auto order = ::torch::randperm(n, gen, ::torch::kLong);
    double sum_loss = 0;
    std::int64_t correct = 0;
    for (std::int64_t b = 0; b < n; b += batch) {
      auto idx = order.slice(0, b, std::min(n, b + batch));
      auto x = split.train.features.index_select(0, idx);
      auto y = split.train.targets.index_select(0, idx);
      opt.zero_grad();
      auto out = model->forward(x);
      auto loss = ::torch::nn::functional::cross_entropy(out, y);
      loss.backward();
      opt.step();
      sum_loss += loss.item<double>() * double(idx.size(0));
      correct += out.detach().argmax(1).eq(y).sum().item<std::int64_t>();
    }
    val_acc = evaluate(model, split.validation, 1000).second;
  }
  const double loop = seconds_since(started);
  const double test_acc = evaluate(model, test, 1000).second;
  fmt::print("{}\n", nlohmann::json{{"loop_seconds", loop},
                                    {"epochs", epochs},
                                    {"val_accuracy", val_acc},
                                    {"test_accuracy", test_acc}}
                         .dump());
  return 0;
}

void bench_training(const Config& cfg, Results& res, Facts& facts) {
  const fs::path work = cfg.dir / "train";
  remove_all_quietly(work);
  fs::create_directories(work);
  const auto E = std::to_string(cfg.train_epochs);
  const auto T = std::to_string(cfg.threads);
  const auto L = std::to_string(cfg.train_limit);
  auto vigil_train = [&](bool async) {
    const fs::path run_dir = work / (async ? "run-async" : "run-sync");
    remove_all_quietly(run_dir);
    std::vector<std::string> argv = {cfg.vigil,
                                     "train",
                                     "--run-dir",
                                     run_dir.string(),
                                     "--epochs",
                                     E,
                                     "--threads",
                                     T,
                                     "--batch-size",
                                     "64",
                                     "--patience",
                                     "1000",
                                     "--reduce-lr-patience",
                                     "1000",
                                     "--limit-train",
                                     L};
    if (async) argv.push_back("--async-save");
    auto out = run(argv);
    if (out.exit_code != 0)
      throw Error(fmt::format("vigil train failed (exit {}):\n{}", out.exit_code, out.out));
    const std::string name = std::string("train.") + (async ? "vigil_async" : "vigil_sync");
    res.add(name, out.seconds);
    std::ifstream result(run_dir / "result.json");
    res.add(name + "_loop", nlohmann::json::parse(result).at("fit_seconds").get<double>());
    remove_all_quietly(run_dir);
  };
  struct C {
    std::string name;
    std::function<void()> fn;
  };
  std::vector<C> contenders = {
      {"vigil_sync", [&] { vigil_train(false); }},
      {"vigil_async", [&] { vigil_train(true); }},
      {"bare",
       [&] {
         auto out = run({cfg.self, "train-bare", "--epochs", E, "--threads", T, "--batch-size",
                         "64", "--limit-train", L});
         if (out.exit_code != 0) throw Error("train-bare failed");
         res.add("train.bare", out.seconds);
         res.add("train.bare_loop", nlohmann::json::parse(out.out)["loop_seconds"].get<double>());
       }},
      {"python",
       [&] {
         auto out = run({cfg.python, (cfg.source_dir / "train_loop.py").string(), "--epochs", E,
                         "--threads", T, "--batch-size", "64", "--limit-train", L});
         if (out.exit_code != 0) throw Error("train_loop.py failed");
         res.add("train.python", out.seconds);
         res.add("train.python_loop", nlohmann::json::parse(out.out)["loop_seconds"].get<double>());
       }},
  };
  for (int r = 0; r < cfg.train_repeats; ++r) {
    fmt::print(stderr, "== training repeat {}/{}\n", r + 1, cfg.train_repeats);
    // Interleaved, the order rotating by one every repeat.
    if (r > 0) std::rotate(contenders.begin(), contenders.begin() + 1, contenders.end());
    for (auto& c : contenders) c.fn();
  }
  facts.extra["train"] = {{"epochs", cfg.train_epochs},
                          {"threads", cfg.threads},
                          {"limit_train", cfg.train_limit},
                          {"batch_size", 64}};
  remove_all_quietly(work);
}

void bench_replay(const Config& cfg, Results& res, Facts& facts) {
  const fs::path work = cfg.dir / "replay";
  fs::create_directories(work);
  const fs::path file = work / "cases.jsonl";
  {
    std::ofstream out(file);
    std::mt19937_64 rng(42);
    std::normal_distribution<double> noise(0.0, 0.02);
    const char* rules[] = {"patience", "gl:2", "up:3", "robust:6"};
    for (int i = 0; i < cfg.replay_cases; ++i) {
      nlohmann::json values = nlohmann::json::array();
      double v = 1.0;
      for (int e = 0; e < 40; ++e) {
        v = v * 0.93 + 0.05 + noise(rng);
        values.push_back(v);
      }
      nlohmann::json options = {{"patience", 1 + i % 10}, {"min_delta", 0.001 * (i % 3)}};
      options["rule"] = rules[i % 4];
      out << nlohmann::json{{"values", values}, {"options", options}}.dump() << "\n";
    }
  }
  for (int r = 0; r < cfg.replay_repeats; ++r) {
    auto out = run({cfg.vigil, "replay", "--batch", file.string()}, /*quiet_stdout=*/true);
    if (out.exit_code != 0)
      throw Error(fmt::format("vigil replay --batch failed (exit {})", out.exit_code));
    res.add("replay.seconds", out.seconds);
  }
  facts.extra["replay"] = {{"cases", cfg.replay_cases}, {"epochs_per_case", 40}};
  remove_all_quietly(work);
}

}  // namespace vigil::bench
