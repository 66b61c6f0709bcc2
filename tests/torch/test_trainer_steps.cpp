// The Trainer beyond one batch per step and one validation per epoch: gradient accumulation
// against one larger batch, clipping against clip_grad_norm_, validation every n steps with
// max_steps, a custom step over a user batch type from an endless source (resumed exactly in
// the middle of a validation period), shape errors reported with their stage, bad options.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.hpp"
#include "trainer_test_helpers.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/dataset_source.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/token_windows.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
using namespace vigil;
using namespace vigil::torch;
using namespace vigil::test;

namespace {

Dataset make_data(std::int64_t n, std::uint64_t seed) {
  ::torch::manual_seed(seed);
  auto x = ::torch::randn({n, 4});
  return Dataset{x, x.sum(1).gt(0).to(::torch::kLong) + x.select(1, 0).gt(1).to(::torch::kLong)};
}

TrainerOptions one_thread() {
  return TrainerOptions{}.with_threads(1).with_seed(5);
}

double max_difference(const NamedTensors& a, const NamedTensors& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, (a.tensors()[i] - b.tensors()[i]).abs().max().item<double>());
  return m;
}

struct BatchLogs : Callback {
  std::vector<Logs> logs;
  std::string name() const override { return "batch_logs"; }
  void on_batch_end(TrainContext&, std::int64_t, const Logs& l) override { logs.push_back(l); }
};

NamedTensors train_weights(const TrainerOptions& o, const Dataset& data) {
  auto model = tiny_mlp(3);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.2}});
  Trainer t(o);
  t.fit(Model::of(model), *opt, data, Dataset{});
  return module_state(*model).clone();
}

}  // namespace

TEST(TrainerSteps, AccumulationIsOneBatchThatManyTimesLarger) {
  // 60 examples: micro-batches of 16 make steps of 16+16 and 16+12, batches of 32 make 32 and 28.
  const auto data = make_data(60, 1);
  const auto base = one_thread().with_epochs(2).with_shuffle(false);
  const auto accumulated =
      train_weights(TrainerOptions(base).with_batch_size(16).with_accumulate(2), data);
  const auto large = train_weights(TrainerOptions(base).with_batch_size(32), data);
  const auto small = train_weights(TrainerOptions(base).with_batch_size(16), data);
  EXPECT_LT(max_difference(accumulated, large), 1e-6);
  EXPECT_GT(max_difference(small, large), 1e-3);  // the comparison can tell them apart
}

TEST(TrainerSteps, ClipsTheGlobalNormAsClipGradNormAndLogsIt) {
  const auto data = make_data(32, 2);
  auto model = tiny_mlp(4);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.5}});
  Trainer t(one_thread().with_epochs(1).with_batch_size(32).with_shuffle(false).with_clip_grad_norm(
      0.05));
  auto logs = std::make_shared<BatchLogs>();
  t.add_callback(logs);
  t.fit(Model::of(model), *opt, data, Dataset{});

  auto ref = tiny_mlp(4);
  auto ref_opt = make_optimizer(OptimizerKind::SGD, ref->parameters(), {{"lr", 0.5}});
  ref_opt->zero_grad();
  ::torch::nn::functional::cross_entropy(ref->forward(data.features), data.targets).backward();
  const double norm = ::torch::nn::utils::clip_grad_norm_(ref->parameters(), 0.05);
  ref_opt->step();

  ASSERT_EQ(logs->logs.size(), 1u);
  EXPECT_GT(norm, 0.05);  // clipping did something
  EXPECT_DOUBLE_EQ(logs->logs[0].at("grad_norm"), norm);
  EXPECT_TRUE(same_weights(module_state(*model), module_state(*ref)));
}

TEST(TrainerSteps, ValidatesEveryNStepsAndEndsAtMaxSteps) {
  const auto data = make_data(100, 3);  // 10 batches of 10 a pass
  auto model = tiny_mlp(5);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(one_thread().with_batch_size(10).with_val_every_n_steps(4).with_max_steps(26));
  const auto r = t.fit(Model::of(model), *opt, data, make_data(20, 4));
  EXPECT_EQ(r.global_step, 26);
  EXPECT_FALSE(r.stopped_early);
  EXPECT_EQ(r.stop_reason, "it reached max_steps (26 steps)");
  ASSERT_EQ(r.history.size(), 7u);  // at steps 4, 8, ..., 24 and the last one at 26
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(r.history[i].epoch, static_cast<int>(i));
    EXPECT_EQ(r.history[i].step, 4 * static_cast<std::int64_t>(i + 1));
    EXPECT_TRUE(r.history[i].logs.count("val_loss"));
  }
  EXPECT_EQ(r.history[6].step, 26);
}

TEST(TrainerSteps, WithoutMaxStepsStepCadenceLastsTheEpochs) {
  const auto data = make_data(50, 3);  // 5 batches a pass
  auto model = tiny_mlp(5);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(one_thread().with_epochs(3).with_batch_size(10).with_val_every_n_steps(6));
  const auto r = t.fit(Model::of(model), *opt, data, make_data(20, 4));
  EXPECT_EQ(r.global_step, 15);
  ASSERT_EQ(r.history.size(), 3u);  // steps 6, 12, 15: periods cross the passes
  EXPECT_EQ(r.history[2].step, 15);
}

TEST(TrainerSteps, MaxStepsEndsAnEpochEarlyAndValidatesIt) {
  const auto data = make_data(100, 3);
  auto model = tiny_mlp(5);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(one_thread().with_epochs(5).with_batch_size(10).with_max_steps(13));
  const auto r = t.fit(Model::of(model), *opt, data, make_data(20, 4));
  EXPECT_EQ(r.global_step, 13);
  ASSERT_EQ(r.history.size(), 2u);
  EXPECT_EQ(r.history[1].step, 13);
  EXPECT_TRUE(r.history[1].logs.count("val_loss"));
}

namespace {

// A user's batch type and a model with two inputs and two outputs.
struct PairBatch {
  ::torch::Tensor a, b, y;
};

struct TwoTowerImpl : ::torch::nn::Module {
  ::torch::nn::Linear left{nullptr}, right{nullptr};
  TwoTowerImpl() {
    left = register_module("left", ::torch::nn::Linear(3, 2));
    right = register_module("right", ::torch::nn::Linear(2, 2));
  }
  std::tuple<::torch::Tensor, ::torch::Tensor> forward(const ::torch::Tensor& a,
                                                       const ::torch::Tensor& b) {
    return {left(a), right(b)};
  }
};
using TwoTower = std::shared_ptr<TwoTowerImpl>;

// Endless: batch i depends only on (seed, i); the state is i.
class PairSource : public DataSource<PairBatch> {
 public:
  explicit PairSource(std::uint64_t seed, std::optional<std::int64_t> length = std::nullopt)
      : seed_(seed), length_(length) {}
  void set_epoch(std::int64_t) override { index_ = 0; }
  std::optional<PairBatch> next() override {
    if (length_ && index_ >= *length_) return std::nullopt;
    auto gen =
        ::at::detail::createCPUGenerator(seed_ * 1000003 + static_cast<std::uint64_t>(index_++));
    auto a = ::torch::randn({8, 3}, gen);
    auto b = ::torch::randn({8, 2}, gen);
    return PairBatch{a, b, a.sum(1, true) - b.sum(1, true)};
  }
  std::optional<std::int64_t> batches_per_epoch() const override { return length_; }
  nlohmann::json state() const override { return {{"index", index_}}; }
  void load_state(const nlohmann::json& s) override { index_ = s.at("index").get<std::int64_t>(); }

 private:
  std::uint64_t seed_;
  std::optional<std::int64_t> length_;
  std::int64_t index_ = 0;
};

StepResult pair_step(TwoTower& net, const PairBatch& batch) {
  auto [p, q] = net->forward(batch.a, batch.b);
  auto pred = p.sum(1, true) + q.sum(1, true);
  StepResult r;
  r.loss = ::torch::mse_loss(pred, batch.y);
  r.logs["mae"] = (pred - batch.y).abs().mean().item<double>();
  r.count = batch.a.size(0);
  return r;
}

struct CustomRun {
  NamedTensors weights;
  NamedTensors optimizer;
  FitResult fit;
  std::string csv;
};

CustomRun run_custom(const fs::path& dir, int interrupt_at_step) {
  ::torch::manual_seed(8);
  auto net = std::make_shared<TwoTowerImpl>();
  auto opt = make_optimizer(OptimizerKind::Adam, net->parameters(), {{"lr", 0.01}});
  auto o = one_thread().with_max_steps(30).with_val_every_n_steps(7).with_accumulate(2);
  if (interrupt_at_step > 0) o.with_interrupt(interrupt_at_poll(interrupt_at_step));
  Trainer t(o);
  auto manager = std::make_shared<CheckpointManager>(
      dir / "run", CheckpointManagerOptions{}.with_monitor("").with_keep_last(1));
  t.add_callback(std::make_shared<BackupAndRestore>(manager));
  t.add_callback(std::make_shared<CSVLogger>(CSVLoggerOptions{}.with_filename(dir / "m.csv")));
  PairSource train(1), validation(2, 3);
  auto fit = t.fit<PairBatch>(
      net, *opt, train, [&net](const PairBatch& b) { return pair_step(net, b); }, &validation);
  auto os = optimizer_state(*opt, *net);
  return CustomRun{module_state(*net).clone(), os.tensors.clone(), fit, read_file(dir / "m.csv")};
}

std::string without_seconds(const std::string& csv) {
  std::string out;
  std::size_t start = 0;
  while (start < csv.size()) {
    auto end = csv.find('\n', start);
    if (end == std::string::npos) end = csv.size();
    const std::string line = csv.substr(start, end - start);
    out += line.substr(0, line.rfind(',')) + "\n";
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST(TrainerSteps, CustomStepOverAnEndlessSourceResumesExactlyMidPeriod) {
  TempDir tmp;
  const auto ref = run_custom(tmp / "ref", 0);
  EXPECT_EQ(ref.fit.global_step, 30);
  ASSERT_EQ(ref.fit.history.size(), 5u);  // steps 7, 14, 21, 28, 30
  EXPECT_TRUE(ref.fit.history[0].logs.count("val_mae"));
  EXPECT_LT(ref.fit.history.back().logs.at("val_loss"), ref.fit.history[0].logs.at("val_loss"));

  const auto first = run_custom(tmp / "resumed", 11);  // inside the second period
  ASSERT_TRUE(first.fit.interrupted);
  EXPECT_EQ(first.fit.global_step, 10);
  const auto second = run_custom(tmp / "resumed", 0);
  ASSERT_TRUE(second.fit.resumed_from.has_value());
  EXPECT_EQ(second.fit.global_step, 30);
  EXPECT_TRUE(same_weights(second.weights, ref.weights));
  EXPECT_TRUE(same_weights(second.optimizer, ref.optimizer));
  EXPECT_EQ(without_seconds(second.csv), without_seconds(ref.csv));
}

TEST(TrainerSteps, AnEndlessSourceNeedsMaxStepsAndStepCadence) {
  ::torch::manual_seed(8);
  auto net = std::make_shared<TwoTowerImpl>();
  auto opt = make_optimizer(OptimizerKind::SGD, net->parameters(), {{"lr", 0.01}});
  PairSource train(1);
  auto step = [&net](const PairBatch& b) { return pair_step(net, b); };
  EXPECT_THROW(Trainer(one_thread()).fit<PairBatch>(net, *opt, train, step), OptionError);
  EXPECT_THROW(
      Trainer(one_thread().with_val_every_n_steps(5)).fit<PairBatch>(net, *opt, train, step),
      OptionError);
}

TEST(TrainerSteps, AShapeMismatchNamesTheStageAndTheShapes) {
  auto data = make_data(32, 1);
  data.targets = data.targets.to(::torch::kFloat);  // [32] against outputs [16, 3]
  auto model = tiny_mlp(1);
  auto opt = make_optimizer(OptimizerKind::SGD, model->parameters(), {{"lr", 0.1}});
  Trainer t(one_thread().with_epochs(1).with_batch_size(16).with_loss(
      [](const ::torch::Tensor& out, const ::torch::Tensor& y) {
        return (out - y).pow(2).mean();
      }));
  const auto msg =
      vigil::test::error_of<InputError>([&] { t.fit(Model::of(model), *opt, data, Dataset{}); });
  EXPECT_NE(msg.find("training, epoch 0, step 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("outputs [16, 3] and targets [16]"), std::string::npos) << msg;
}

TEST(TrainerSteps, RefusesBadOptions) {
  EXPECT_THROW(Trainer(TrainerOptions{}.with_accumulate(0)), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_val_every_n_steps(-1)), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_max_steps(-1)), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_clip_grad_norm(-1)), OptionError);
  EXPECT_THROW(Trainer(TrainerOptions{}.with_clip_grad_norm(std::nan(""))), OptionError);
}

TEST(DatasetSourceState, AfterTheShortLastBatchItStandsAtTheEndOfThePass) {
  const auto data = make_data(10, 1);
  DatasetSource a(data, DatasetSourceOptions{}.with_batch_size(4).with_seed(2));
  a.set_epoch(3);
  ASSERT_TRUE(a.next() && a.next());
  DatasetSource b(data, DatasetSourceOptions{}.with_batch_size(4).with_seed(2));
  b.load_state(a.state());
  const auto from_a = a.next(), from_b = b.next();  // the short batch of 2
  ASSERT_TRUE(from_a && from_b);
  EXPECT_TRUE(::torch::equal(from_a->features, from_b->features));
  EXPECT_EQ(from_b->features.size(0), 2);
  b.load_state(a.state());
  EXPECT_FALSE(b.next().has_value());
  EXPECT_THROW(DatasetSource(data, DatasetSourceOptions{}.with_batch_size(5)).load_state(a.state()),
               InputError);
}

namespace {

// A tiny next-byte model: embedding, then a linear layer over the vocabulary.
struct BytesImpl : ::torch::nn::Module {
  ::torch::nn::Embedding embed{nullptr};
  ::torch::nn::Linear head{nullptr};
  BytesImpl() {
    embed = register_module("embed", ::torch::nn::Embedding(256, 8));
    head = register_module("head", ::torch::nn::Linear(8, 256));
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return head(embed(x)); }
};

struct WindowRun {
  NamedTensors weights, optimizer;
  FitResult fit;
};

WindowRun run_windows(const fs::path& corpus, const fs::path& dir, int interrupt_at_step) {
  ::torch::manual_seed(4);
  auto net = std::make_shared<BytesImpl>();
  auto opt = make_optimizer(OptimizerKind::Adam, net->parameters(), {{"lr", 0.01}});
  auto o = one_thread().with_max_steps(24).with_val_every_n_steps(10);
  if (interrupt_at_step > 0) o.with_interrupt(interrupt_at_poll(interrupt_at_step));
  Trainer t(o);
  auto manager = std::make_shared<CheckpointManager>(
      dir, CheckpointManagerOptions{}.with_monitor("").with_keep_last(1));
  t.add_callback(std::make_shared<BackupAndRestore>(manager));
  const auto options = TokenWindowOptions{}
                           .with_path(corpus)
                           .with_dtype(TokenDType::U8)
                           .with_context(16)
                           .with_batch_size(4)
                           .with_seed(9);
  TokenWindowSource train(TokenWindowOptions(options).with_segments({{0, 3000}}));
  TokenWindowSource validation(TokenWindowOptions(options)
                                   .with_segments({{3000, 4000}})
                                   .with_mode(WindowMode::Sequential)
                                   .with_batches_per_epoch(4));
  auto step = [&net](const TokenBatch& b) {
    auto logits = net->forward(b.x);
    StepResult r;
    r.loss = ::torch::nn::functional::cross_entropy(logits.flatten(0, 1), b.y.flatten());
    r.logs["accuracy"] = token_accuracy()(logits.detach(), b.y);
    r.count = b.x.size(0);
    return r;
  };
  auto fit = t.fit<TokenBatch>(net, *opt, train, step, &validation);
  return WindowRun{module_state(*net).clone(), optimizer_state(*opt, *net).tensors.clone(), fit};
}

}  // namespace

TEST(TrainerSteps, AStreamingWindowSourceResumesExactly) {
  TempDir tmp;
  std::string text;
  for (int i = 0; text.size() < 4000; ++i)
    text += "the quick brown fox " + std::to_string(i) + "\n";
  text.resize(4000);
  vigil::test::write_file(tmp / "corpus.u8", text);
  const auto ref = run_windows(tmp / "corpus.u8", tmp / "ref", 0);
  ASSERT_EQ(ref.fit.history.size(), 3u);  // steps 10, 20, 24
  EXPECT_TRUE(ref.fit.history[0].logs.count("val_accuracy"));
  EXPECT_LT(ref.fit.history.back().logs.at("val_loss"), ref.fit.history[0].logs.at("val_loss"));
  ASSERT_TRUE(run_windows(tmp / "corpus.u8", tmp / "run", 14).fit.interrupted);
  const auto resumed = run_windows(tmp / "corpus.u8", tmp / "run", 0);
  ASSERT_TRUE(resumed.fit.resumed_from.has_value());
  EXPECT_EQ(resumed.fit.global_step, 24);
  EXPECT_TRUE(same_weights(resumed.weights, ref.weights));
  EXPECT_TRUE(same_weights(resumed.optimizer, ref.optimizer));
}
