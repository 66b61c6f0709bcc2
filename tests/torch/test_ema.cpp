// ModelEma: the average against timm's formula (with and without warm-up, every n steps), its
// ema.safetensors file, exact resume, and validating on the averaged weights (swap in and back,
// best weights and best/ being averaged ones). Driven by a hand-written loop through CallbackList
// in the order the Trainer calls the hooks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/ema.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace fs = std::filesystem;
namespace vt = vigil::torch;
using vigil::test::TempDir;

namespace {

// BatchNorm brings floating buffers (averaged) and num_batches_tracked (an int64, copied).
torch::nn::Sequential tiny_model(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 6), torch::nn::BatchNorm1d(6),
                               torch::nn::ReLU(), torch::nn::Linear(6, 3));
}

vt::Dataset make_data(std::int64_t n, std::uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  return {torch::randn({n, 4}, g), torch::randint(0, 3, {n}, g)};
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

void expect_same_bytes(const vt::NamedTensors& a, const vt::NamedTensors& b) {
  ASSERT_EQ(a.names(), b.names());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bytes(a.tensors()[i], b.tensors()[i])) << a.names()[i];
}

// A training loop over `train` in batches of 8 (batch k of the run = rows 8k mod n), SGD with
// momentum so that the optimizer has state to resume.
struct Loop {
  torch::nn::Sequential model;
  std::unique_ptr<torch::optim::SGD> optimizer;
  vt::CallbackList callbacks;
  vt::TrainContext ctx;
  vt::Dataset train = make_data(64, 11);
  vt::Dataset validation = make_data(32, 12);

  explicit Loop(std::uint64_t seed, std::vector<std::shared_ptr<vt::Callback>> cbs)
      : model(tiny_model(seed)), callbacks(std::move(cbs)) {
    optimizer = std::make_unique<torch::optim::SGD>(model->parameters(),
                                                    torch::optim::SGDOptions(0.1).momentum(0.9));
    ctx.model = model.ptr();
    ctx.optimizer = optimizer.get();
    ctx.epochs = 100;
    ctx.steps_per_epoch = 4;
  }

  void step() {
    const std::int64_t at = (ctx.global_step * 8) % train.size();
    callbacks.on_batch_begin(ctx, ctx.batch);
    model->train();
    optimizer->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(
        model->forward(train.features.slice(0, at, at + 8)), train.targets.slice(0, at, at + 8));
    loss.backward();
    optimizer->step();
    ++ctx.batch;
    ++ctx.global_step;
    callbacks.on_batch_end(ctx, ctx.batch - 1, {{"loss", loss.item<double>()}});
  }

  // One epoch of steps_per_epoch steps, then validation in the new Trainer's order.
  vigil::Logs epoch(int e, const std::function<void()>& during_validation = {}) {
    callbacks.on_epoch_begin(ctx, e);
    ctx.batch = 0;
    for (int i = 0; i < ctx.steps_per_epoch; ++i) step();
    callbacks.on_validation_begin(ctx);
    if (during_validation) during_validation();
    const auto m = vt::evaluate(vt::Model::of(model), validation);
    const vigil::Logs val{{"val_loss", m.at("loss")}, {"val_accuracy", m.at("accuracy")}};
    callbacks.on_validation_end(ctx, val);
    callbacks.on_epoch_end(ctx, e, val);
    ctx.batch = 0;
    return val;
  }
};

// The EMA by its definition, in double precision, next to a loop.
struct Reference {
  std::vector<torch::Tensor> avg;
  explicit Reference(const torch::nn::Module& m) {
    const auto state = vt::module_state(m);
    for (const auto& t : state.tensors())
      avg.push_back(t.is_floating_point() ? t.to(torch::kDouble) : t.clone());
  }
  void update(const torch::nn::Module& m, double d) {
    const auto now = vt::module_state(m);
    for (std::size_t i = 0; i < avg.size(); ++i) {
      const auto& w = now.tensors()[i];
      avg[i] = w.is_floating_point() ? d * avg[i] + (1 - d) * w.to(torch::kDouble) : w.clone();
    }
  }
  void expect_matches(const vt::NamedTensors& ema) const {
    ASSERT_EQ(ema.size(), avg.size());
    for (std::size_t i = 0; i < avg.size(); ++i) {
      const auto& e = ema.tensors()[i];
      if (e.is_floating_point())
        EXPECT_TRUE(torch::allclose(e.to(torch::kDouble), avg[i], 1e-5, 1e-6)) << ema.names()[i];
      else
        EXPECT_TRUE(torch::equal(e, avg[i])) << ema.names()[i];
    }
  }
};

// timm ModelEmaV3.get_decay(step), written out again.
double timm_decay(std::int64_t step, double decay, bool warmup) {
  const auto k = std::max<std::int64_t>(0, step - 1);
  if (k <= 0) return 0;
  if (!warmup) return decay;
  return std::clamp(1 - std::pow(1.0 + static_cast<double>(k), -2.0 / 3.0), 0.0, decay);
}

void expect_follows_formula(vt::ModelEmaOptions o, int steps) {
  auto ema = std::make_shared<vt::ModelEma>(o);
  Loop loop(1, {ema});
  loop.callbacks.on_train_begin(loop.ctx);
  Reference ref(*loop.model);
  ref.expect_matches(ema->averaged());  // initialised from the model
  for (int s = 1; s <= steps; ++s) {
    loop.step();
    if (s % o.update_every_n_steps == 0) ref.update(*loop.model, timm_decay(s, o.decay, o.warmup));
    ref.expect_matches(ema->averaged());
  }
  EXPECT_EQ(ema->updates(), steps / o.update_every_n_steps);
  // The average lags behind the weights: it is not just a copy of them.
  EXPECT_FALSE(
      same_bytes(ema->averaged().at("0.weight"), loop.model[0]->named_parameters()["weight"]));
}

}  // namespace

TEST(ModelEma, DecayIsTimmsV3Formula) {
  const vt::ModelEma plain(vt::ModelEmaOptions{}.with_decay(0.9));
  EXPECT_EQ(plain.decay_at(1), 0.0);  // the first update copies the weights, as timm
  EXPECT_EQ(plain.decay_at(2), 0.9);
  EXPECT_EQ(plain.decay_at(1000), 0.9);
  const vt::ModelEma warm(vt::ModelEmaOptions{}.with_decay(0.99).with_warmup(true));
  EXPECT_EQ(warm.decay_at(1), 0.0);
  EXPECT_DOUBLE_EQ(warm.decay_at(2), 1 - std::pow(2.0, -2.0 / 3.0));
  EXPECT_DOUBLE_EQ(warm.decay_at(100), 1 - std::pow(100.0, -2.0 / 3.0));
  EXPECT_EQ(warm.decay_at(10'000'000), 0.99);  // capped at decay
  EXPECT_EQ(vt::ModelEma().options().decay, 0.9999);
}

TEST(ModelEma, FollowsTheFormulaWithoutWarmup) {
  expect_follows_formula(vt::ModelEmaOptions{}.with_decay(0.8), 12);
}

TEST(ModelEma, FollowsTheFormulaWithWarmupEveryThreeSteps) {
  expect_follows_formula(
      vt::ModelEmaOptions{}.with_decay(0.95).with_warmup(true).with_update_every_n_steps(3), 15);
}

TEST(ModelEma, RefusesBadOptions) {
  for (double d : {0.0, 1.0, 1.5, -0.1, std::nan("")})
    EXPECT_THROW(vt::ModelEma(vt::ModelEmaOptions{}.with_decay(d)), vigil::OptionError) << d;
  EXPECT_THROW(vt::ModelEma(vt::ModelEmaOptions{}.with_update_every_n_steps(0)),
               vigil::OptionError);
}

TEST(ModelEma, StateFileNamesAreChecked) {
  struct Named : vt::Callback {
    std::string n, stem;
    Named(std::string a, std::string b) : n(std::move(a)), stem(std::move(b)) {}
    std::string name() const override { return n; }
    std::string state_file() const override { return stem; }
  };
  for (const char* bad : {"model", "optimizer", "callbacks", "a/b", "x.y"}) {
    vt::CallbackList list;
    EXPECT_THROW(list.add(std::make_shared<Named>("c", bad)), vigil::OptionError) << bad;
  }
  vt::CallbackList list;
  list.add(std::make_shared<vt::ModelEma>());
  EXPECT_THROW(list.add(std::make_shared<Named>("other", "ema")), vigil::OptionError);
}

TEST(ModelEma, CheckpointHoldsEmaSafetensorsWithTheModelsNames) {
  TempDir tmp;
  auto manager = std::make_shared<vigil::CheckpointManager>(tmp / "run");
  auto ema = std::make_shared<vt::ModelEma>(vt::ModelEmaOptions{}.with_decay(0.9));
  Loop loop(1, {ema, std::make_shared<vt::ModelCheckpoint>(manager)});
  loop.callbacks.on_train_begin(loop.ctx);
  loop.epoch(0);
  const auto latest = manager->latest();
  ASSERT_TRUE(latest);
  ASSERT_TRUE(latest->has_file("ema"));
  const auto model_file = vigil::SafetensorsFile::open(latest->path / "model.safetensors");
  const auto ema_file = vigil::SafetensorsFile::open(latest->path / "ema.safetensors");
  std::vector<std::string> a, b;
  for (const auto& t : model_file.tensors()) a.push_back(t.name);
  for (const auto& t : ema_file.tensors()) b.push_back(t.name);
  EXPECT_EQ(a, b);
  EXPECT_FALSE(latest->has_file("callbacks"));  // not duplicated under "ema/..."
  const auto state = vigil::Checkpoint::open(latest->path).state();
  EXPECT_EQ(state.at("callback_files"), nlohmann::json({{"ema", "ema"}}));

  auto other = tiny_model(99);
  vt::load_module_state(*other, latest->path / "ema.safetensors");
  expect_same_bytes(vt::module_state(*other), ema->averaged());
  // Either file loads into the model: model.safetensors holds the training weights.
  vt::load_module_state(*other, latest->path / "model.safetensors");
  expect_same_bytes(vt::module_state(*other), vt::module_state(*loop.model));
}

TEST(ModelEma, ResumeIsExact) {
  TempDir tmp;
  const auto opts = vt::ModelEmaOptions{}.with_decay(0.9).with_warmup(true);
  auto manager = std::make_shared<vigil::CheckpointManager>(
      tmp / "run", vigil::CheckpointManagerOptions{}.with_monitor(""));
  auto ema_a = std::make_shared<vt::ModelEma>(opts);
  Loop a(1, {ema_a, std::make_shared<vt::ModelCheckpoint>(manager)});
  a.callbacks.on_train_begin(a.ctx);
  a.epoch(0);
  a.epoch(1);
  const auto at_two = manager->latest();
  ASSERT_TRUE(at_two);
  a.epoch(2);
  a.epoch(3);

  // Fresh objects (another initialisation), resumed from the checkpoint after epoch 1.
  auto ema_b = std::make_shared<vt::ModelEma>(opts);
  Loop b(5, {ema_b});
  b.ctx.pending_restore = vt::RestorePoint::open(at_two->path);
  b.callbacks.on_train_begin(b.ctx);
  EXPECT_EQ(b.ctx.global_step, 8);
  EXPECT_EQ(b.ctx.epoch, 2);
  EXPECT_EQ(ema_b->updates(), 8);
  b.epoch(2);
  b.epoch(3);
  expect_same_bytes(ema_b->averaged(), ema_a->averaged());
  expect_same_bytes(vt::module_state(*b.model), vt::module_state(*a.model));
  EXPECT_EQ(ema_b->updates(), ema_a->updates());
}

TEST(ModelEma, ResumeRefusesAnotherModelsAverage) {
  TempDir tmp;
  auto manager = std::make_shared<vigil::CheckpointManager>(
      tmp / "run", vigil::CheckpointManagerOptions{}.with_monitor(""));
  auto ema = std::make_shared<vt::ModelEma>();
  Loop a(1, {ema, std::make_shared<vt::ModelCheckpoint>(manager)});
  a.callbacks.on_train_begin(a.ctx);
  a.epoch(0);
  // The same model, but an EMA file of another shape: edit a copy of the checkpoint.
  auto point = vt::RestorePoint::open(manager->latest()->path);
  vt::NamedTensors wrong;
  wrong.add("0.weight", torch::zeros({2, 2}));
  vigil::save_safetensors(tmp / "ema.safetensors", wrong.views());
  point.callback_files["ema"].clear();
  point.callback_files["ema"].push_back(vigil::SafetensorsFile::open(tmp / "ema.safetensors"));
  Loop b(1, {std::make_shared<vt::ModelEma>()});
  b.ctx.pending_restore = std::move(point);
  EXPECT_THROW(b.callbacks.on_train_begin(b.ctx), vigil::InputError);
}

TEST(ModelEma, ValidatesOnTheAverageAndPutsTheTrainingWeightsBackExactly) {
  TempDir tmp;
  auto manager = std::make_shared<vigil::CheckpointManager>(
      tmp / "run",
      vigil::CheckpointManagerOptions{}.with_monitor("val_loss").with_best_stem("ema"));
  auto ema =
      std::make_shared<vt::ModelEma>(vt::ModelEmaOptions{}.with_decay(0.7).with_validate(true));
  auto stopping = std::make_shared<vt::EarlyStopping>(
      vt::EarlyStoppingCallbackOptions{}
          .with_stopping(vigil::EarlyStoppingOptions{}.with_monitor("val_loss").with_patience(50))
          .with_restore_best_weights(true));
  Loop loop(1, {ema, stopping, std::make_shared<vt::ModelCheckpoint>(manager)});
  loop.callbacks.on_train_begin(loop.ctx);
  std::vector<vt::NamedTensors> training;  // the training weights of each epoch end
  for (int e = 0; e < 5; ++e) {
    vigil::Logs on_copy;
    const auto val = loop.epoch(e, [&] {
      // on_validation_begin has run: the model holds the average; the training weights are kept.
      expect_same_bytes(vt::module_state(*loop.model), ema->averaged());
      EXPECT_EQ(loop.ctx.validated_weights, &ema->averaged());
      auto copy = tiny_model(42);
      ema->copy_to(*copy);
      on_copy = vt::evaluate(vt::Model::of(copy), loop.validation);
    });
    EXPECT_EQ(val.at("val_loss"), on_copy.at("loss"));
    EXPECT_EQ(val.at("val_accuracy"), on_copy.at("accuracy"));
    training.push_back(vt::module_state(*loop.model).clone());
    EXPECT_FALSE(same_bytes(training.back().at("0.weight"), ema->averaged().at("0.weight")));
  }
  // The checkpoints hold the training weights in model.safetensors and the average beside them;
  // best/ is the best epoch's average.
  const auto best = manager->best();
  ASSERT_TRUE(best);
  ASSERT_TRUE(stopping->stopper().best_epoch());
  EXPECT_EQ(best->epoch, *stopping->stopper().best_epoch());
  auto probe = tiny_model(3);
  vt::load_module_state(*probe, best->path / "model.safetensors");
  expect_same_bytes(vt::module_state(*probe), training.at(static_cast<std::size_t>(best->epoch)));
  EXPECT_EQ(vigil::test::read_file(vigil::CheckpointManager::best_model_path(tmp / "run")),
            vigil::test::read_file(best->path / "ema.safetensors"));
  // restore_best_weights loads that average into the model.
  loop.callbacks.on_train_end(loop.ctx);
  EXPECT_TRUE(stopping->restored());
  vt::load_module_state(*probe, best->path / "ema.safetensors");
  expect_same_bytes(vt::module_state(*loop.model), vt::module_state(*probe));
  EXPECT_EQ(loop.ctx.validated_weights, nullptr);

  // verify compares best/ with the file the manifest names (ema.safetensors), not the model.
  const auto v = vigil::test::run_vigil({"verify", (tmp / "run").string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_EQ(v.out.find("differs"), std::string::npos) << v.out;
  // A manager opening the run brings a lost best/ back from the best checkpoint's average.
  loop.callbacks = vt::CallbackList{};
  manager.reset();
  const auto best_path = vigil::CheckpointManager::best_model_path(tmp / "run");
  fs::remove(best_path);
  const vigil::CheckpointManager reopened(
      tmp / "run",
      vigil::CheckpointManagerOptions{}.with_monitor("val_loss").with_best_stem("ema"));
  EXPECT_EQ(vigil::test::read_file(best_path),
            vigil::test::read_file(best->path / "ema.safetensors"));
}

TEST(ModelEma, BestStemMustBeAStem) {
  EXPECT_THROW(vigil::CheckpointManagerOptions{}.with_best_stem("").validate(), vigil::OptionError);
  EXPECT_THROW(vigil::CheckpointManagerOptions{}.with_best_stem("a/b").validate(),
               vigil::OptionError);
}

TEST(ModelEma, ValidationEndWithoutBeginIsAnError) {
  auto ema = std::make_shared<vt::ModelEma>(vt::ModelEmaOptions{}.with_validate(true));
  Loop loop(1, {ema});
  loop.callbacks.on_train_begin(loop.ctx);
  loop.step();
  // The current Trainer's order: validation without on_validation_begin.
  EXPECT_THROW(loop.callbacks.on_validation_end(loop.ctx, {{"val_loss", 1.0}}), vigil::Error);
  // Without validate, nothing is swapped and nothing is asked.
  auto plain = std::make_shared<vt::ModelEma>();
  Loop other(1, {plain});
  other.callbacks.on_train_begin(other.ctx);
  const auto before = vt::module_state(*other.model).clone();
  other.callbacks.on_validation_begin(other.ctx);
  expect_same_bytes(vt::module_state(*other.model), before);
  EXPECT_NO_THROW(other.callbacks.on_validation_end(other.ctx, {}));
  EXPECT_EQ(other.ctx.validated_weights, nullptr);
}
