// CheckpointManager policy: retention rules and their union, best/ and last, save_best_only,
// the every-n policies, repair on open, and that a restarted run rotates like an uninterrupted one.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "test_support.hpp"
#include "vigil/checkpoint_manager.hpp"

namespace vigil {
namespace {

using test::TempDir;
namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Tensors whose content tells which epoch wrote them.
struct Training {
  std::vector<float> weights = std::vector<float>(16);
  std::vector<float> moments = std::vector<float>(8);
  SaveRequest request(std::int64_t epoch, std::optional<double> val_loss,
                      SavePoint at = SavePoint::EpochEnd) {
    std::fill(weights.begin(), weights.end(), static_cast<float>(epoch));
    std::fill(moments.begin(), moments.end(), static_cast<float>(-epoch));
    SaveRequest r;
    r.epoch = epoch;
    r.step = (epoch + 1) * 10;
    r.at = at;
    r.metrics["loss"] = 1.0;
    if (val_loss) r.metrics["val_loss"] = *val_loss;
    r.files["model"] = {TensorView{"w", DType::F32, {4, 4}, std::as_bytes(std::span(weights))}};
    r.files["optimizer"] = {TensorView{"m", DType::F32, {8}, std::as_bytes(std::span(moments))}};
    r.state = {{"epoch", epoch}, {"stopper", {{"wait", 1}}}};
    return r;
  }
};

std::set<std::string> names_on_disk(const fs::path& run) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(CheckpointManager::checkpoints_dir(run)))
    if (e.is_directory()) out.insert(e.path().filename().string());
  return out;
}

std::string last_pointer(const fs::path& run) {
  auto s = test::read_file(CheckpointManager::last_path(run));
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST(Manager, TopKKeepsTheKBestPlusBestAndLast) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_save_top_k(2));
  std::vector<double> losses{0.5, 0.4, 0.6, 0.3, 0.45};
  for (std::size_t e = 0; e < losses.size(); ++e)
    EXPECT_TRUE(m.save(run.request(static_cast<int>(e), losses[e])).saved);
  // Top 2: epochs 3 (0.3) and 1 (0.4); epoch 4 survives as the newest.
  EXPECT_EQ(names_on_disk(tmp.path()),
            (std::set<std::string>{"epoch-0001", "epoch-0003", "epoch-0004"}));
  ASSERT_TRUE(m.best());
  EXPECT_EQ(m.best()->name, "epoch-0003");
  EXPECT_DOUBLE_EQ(*m.best_value(), 0.3);
  EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(tmp.path())), 3.0f);
  EXPECT_EQ(last_pointer(tmp.path()), "epoch-0004");
  EXPECT_EQ(m.latest()->name, "epoch-0004");
  auto manifest =
      nlohmann::json::parse(test::read_file(CheckpointManager::manifest_path(tmp.path())));
  EXPECT_EQ(manifest["best"], "epoch-0003");
  EXPECT_EQ(manifest["last"], "epoch-0004");
  ASSERT_EQ(manifest["checkpoints"].size(), 3u);
  EXPECT_EQ(manifest["checkpoints"][0]["name"], "epoch-0001");
  EXPECT_DOUBLE_EQ(manifest["checkpoints"][0]["metrics"]["val_loss"].get<double>(), 0.4);
}

TEST(Manager, SaveResultReportsRotation) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_keep_last(1));
  EXPECT_TRUE(m.save(run.request(0, 0.5)).saved);
  auto r = m.save(run.request(1, 0.6));
  EXPECT_TRUE(r.saved);
  EXPECT_FALSE(r.is_best);
  EXPECT_TRUE(r.removed.empty());  // epoch 0 is best: never removed
  r = m.save(run.request(2, 0.4));
  EXPECT_TRUE(r.is_best);
  EXPECT_EQ(r.removed, (std::vector<std::string>{"epoch-0000", "epoch-0001"}));
  EXPECT_EQ(names_on_disk(tmp.path()), (std::set<std::string>{"epoch-0002"}));
}

TEST(Manager, TiesInTopKKeepTheNewerButBestStaysTheFirst) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_save_top_k(1));
  for (int e = 0; e < 3; ++e) EXPECT_TRUE(m.save(run.request(e, 0.5)).saved);
  // Keras' strict improvement keeps epoch 0 as best; the rank rule keeps the newest tie.
  EXPECT_EQ(m.best()->name, "epoch-0000");
  EXPECT_EQ(names_on_disk(tmp.path()), (std::set<std::string>{"epoch-0000", "epoch-0002"}));
}

TEST(Manager, KeepLastKeepEveryNEpochsUnion) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(),
                      CheckpointManagerOptions{}.with_keep_last(2).with_keep_every_n_epochs(3));
  for (int e = 0; e < 8; ++e)
    EXPECT_TRUE(m.save(run.request(e, 1.0 + e)).saved);  // epoch 0 is best
  EXPECT_EQ(names_on_disk(tmp.path()),
            (std::set<std::string>{"epoch-0000", "epoch-0002", "epoch-0005", "epoch-0006",
                                   "epoch-0007"}));
}

TEST(Manager, WithoutRetentionRulesEverythingIsKept) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path());
  for (int e = 0; e < 4; ++e) EXPECT_TRUE(m.save(run.request(e, 1.0)).saved);
  EXPECT_EQ(m.checkpoints().size(), 4u);
}

TEST(Manager, MinusOneMeansAll) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_save_top_k(-1).with_keep_last(1));
  for (int e = 0; e < 4; ++e) EXPECT_TRUE(m.save(run.request(e, 1.0 - 0.1 * e)).saved);
  EXPECT_EQ(m.checkpoints().size(), 4u);
}

// A retention policy of the caller's own joins the union: here, keep every checkpoint whose
// loss stayed under 0.5, besides the newest one (keep_last) and the best.
struct KeepLowLoss final : RetentionPolicy {
  std::vector<bool> keep(std::span<const CheckpointRecord> records) const override {
    std::vector<bool> out;
    for (const auto& r : records) out.push_back(r.value && *r.value < 0.5);
    return out;
  }
};

TEST(Manager, ACustomRetentionPolicyJoinsTheUnion) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_keep_last(1).with_retention(
                                      std::make_shared<KeepLowLoss>()));
  std::vector<double> losses{0.6, 0.45, 0.7, 0.4, 0.8, 0.9};
  std::vector<std::string> removed;
  for (std::size_t e = 0; e < losses.size(); ++e) {
    auto r = m.save(run.request(static_cast<int>(e), losses[e]));
    removed.insert(removed.end(), r.removed.begin(), r.removed.end());
  }
  EXPECT_EQ(names_on_disk(tmp.path()),
            (std::set<std::string>{"epoch-0001", "epoch-0003", "epoch-0005"}));
  EXPECT_EQ(removed, (std::vector<std::string>{"epoch-0000", "epoch-0002", "epoch-0004"}));
  EXPECT_EQ(m.best()->name, "epoch-0003");
}

TEST(Manager, SaveBestOnlyAndInitialValueThreshold) {
  TempDir tmp;
  Training run;
  CheckpointManager m(
      tmp.path(),
      CheckpointManagerOptions{}.with_save_best_only(true).with_initial_value_threshold(0.45));
  std::vector<double> losses{0.5, 0.4, 0.6, 0.4, 0.35};
  std::vector<bool> saved;
  for (std::size_t e = 0; e < losses.size(); ++e) {
    auto r = m.save(run.request(static_cast<int>(e), losses[e]));
    saved.push_back(r.saved);
    if (!r.saved) {
      EXPECT_FALSE(r.reason.empty());
    }
  }
  EXPECT_EQ(saved, (std::vector<bool>{false, true, false, false, true}));
  EXPECT_EQ(names_on_disk(tmp.path()), (std::set<std::string>{"epoch-0001", "epoch-0004"}));
  EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(tmp.path())), 4.0f);
  // Without the metric (a mid-epoch save) save_best_only has nothing to compare: skipped.
  auto r = m.save(run.request(5, std::nullopt, SavePoint::Step));
  EXPECT_FALSE(r.saved);
  EXPECT_NE(r.reason.find("val_loss"), std::string::npos);
}

TEST(Manager, ModeAutoMaximisesAccuracy) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(),
                      CheckpointManagerOptions{}.with_monitor("val_accuracy").with_save_top_k(1));
  EXPECT_EQ(m.mode(), Mode::Max);
  std::vector<double> acc{0.5, 0.9, 0.7};
  for (int e = 0; e < 3; ++e) {
    auto r = run.request(e, std::nullopt);
    r.metrics["val_accuracy"] = acc[static_cast<std::size_t>(e)];
    EXPECT_TRUE(m.save(r).saved);
  }
  EXPECT_EQ(m.best()->name, "epoch-0001");
  EXPECT_EQ(names_on_disk(tmp.path()), (std::set<std::string>{"epoch-0001", "epoch-0002"}));
}

TEST(Manager, UnrankedAndNaNCheckpoints) {
  TempDir tmp;
  Training run;
  CheckpointManager m(
      tmp.path(), CheckpointManagerOptions{}.with_save_top_k(1).with_filename("e{epoch}-s{step}"));
  EXPECT_TRUE(m.save(run.request(0, kNaN)).saved);
  EXPECT_FALSE(m.best());  // NaN never improves
  EXPECT_TRUE(m.save(run.request(1, 0.7)).saved);
  EXPECT_TRUE(
      m.save(run.request(2, std::nullopt, SavePoint::Step)).saved);  // no metric: never ranked
  EXPECT_TRUE(m.save(run.request(3, kNaN)).saved);
  EXPECT_EQ(m.best()->name, "e1-s20");
  EXPECT_EQ(names_on_disk(tmp.path()), (std::set<std::string>{"e1-s20", "e3-s40"}));
}

// A typo in a field named folders "none" for a whole run: at an epoch's end every field must
// be epoch, step or a metric; inside an epoch a metric may be missing and renders "none".
TEST(Manager, AFieldThatNamesNoMetricAtAnEpochEndIsAnError) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}.with_filename("e{epoch}-{val_los}"));
  try {
    (void)m.save(run.request(0, 0.5));
    ADD_FAILURE() << "saved";
  } catch (const OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("field {val_los} is neither epoch, step nor one of this "
                                         "epoch's metrics (loss, val_loss)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(names_on_disk(tmp.path()).empty());
  CheckpointManager ok(tmp.path() / "ok",
                       CheckpointManagerOptions{}.with_filename("e{epoch}-{val_loss:.1f}"));
  EXPECT_EQ(ok.save(run.request(1, std::nullopt, SavePoint::Step)).checkpoint->name, "e1-none");
  EXPECT_EQ(ok.save(run.request(2, 0.5)).checkpoint->name, "e2-0.5");
}

TEST(Manager, NameCollisionsGetAVersionSuffix) {
  TempDir tmp;
  Training run;
  CheckpointManager m(tmp.path());
  EXPECT_TRUE(m.save(run.request(2, 0.5)).saved);
  auto r = m.save(run.request(2, 0.4, SavePoint::Step));
  EXPECT_EQ(r.checkpoint->name, "epoch-0002-v1");
  r = m.save(run.request(2, 0.3, SavePoint::Step));
  EXPECT_EQ(r.checkpoint->name, "epoch-0002-v2");
  EXPECT_EQ(m.latest()->name, "epoch-0002-v2");
}

TEST(Manager, ShouldSaveAnswersTheEveryNPolicies) {
  TempDir tmp;
  CheckpointManager m(tmp.path(), CheckpointManagerOptions{}
                                      .with_save_every_n_epochs(2)
                                      .with_save_every_n_steps(100)
                                      .with_save_every_seconds(60));
  auto now = std::chrono::steady_clock::now();
  EXPECT_FALSE(m.should_save(0, 10, now));
  EXPECT_TRUE(m.should_save(1, 10, now));
  EXPECT_FALSE(m.should_save(2, 10, now));
  EXPECT_TRUE(m.should_save(3, 10, now));
  EXPECT_TRUE(m.should_save(0, 200, now, SavePoint::Step));
  EXPECT_FALSE(m.should_save(0, 150, now, SavePoint::Step));
  EXPECT_FALSE(m.should_save(0, 0, now, SavePoint::Step));
  EXPECT_TRUE(m.should_save(0, 150, now + std::chrono::seconds(61), SavePoint::Step));
  EXPECT_TRUE(m.should_save(0, 10, now + std::chrono::seconds(61)));

  TempDir tmp2;
  CheckpointManager never(tmp2.path(), CheckpointManagerOptions{}.with_save_every_n_epochs(0));
  EXPECT_FALSE(never.should_save(0, 1, now));
  EXPECT_FALSE(never.should_save(9, 100, now, SavePoint::Step));
}

TEST(Manager, OptionsAreValidated) {
  TempDir tmp;
  using O = CheckpointManagerOptions;
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_save_top_k(-2)), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_keep_last(-5)), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_mode("up")), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_monitor("").with_save_top_k(1)), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_monitor("").with_save_best_only(true)),
               OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_filename("{epoch")), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_filename("{epoch:.3q}")), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_monitor("weird_thing")), OptionError);
  EXPECT_THROW(CheckpointManager(tmp.path(), O{}.with_save_every_seconds(-1)), OptionError);
  EXPECT_NO_THROW(CheckpointManager(tmp.path(), O{}.with_monitor("weird_thing").with_mode("max")));
}

TEST(Manager, OptionsRoundTripThroughJsonFieldByField) {
  using O = CheckpointManagerOptions;
  const auto fields = checkpoint_manager_option_fields();
  std::vector<std::string> keys;
  for (const auto& f : fields) {
    keys.push_back(f.key);
    EXPECT_FALSE(f.help.empty()) << f.key;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "monitor", "mode", "save_top_k", "keep_last", "keep_every_n_epochs",
                      "save_best_only", "save_every_n_epochs", "save_every_n_steps",
                      "save_every_seconds", "initial_value_threshold", "filename", "async",
                      "async_coalesce", "verify_on_open"}));
  // Every field away from its default, so each one must survive the trip on its own.
  const auto changed = O{}.with_monitor("val_acc")
                           .with_mode("max")
                           .with_save_top_k(3)
                           .with_keep_last(-1)
                           .with_keep_every_n_epochs(5)
                           .with_save_best_only(true)
                           .with_save_every_n_epochs(2)
                           .with_save_every_n_steps(500)
                           .with_save_every_seconds(90.5)
                           .with_initial_value_threshold(0.25)
                           .with_filename("step-{step:08d}")
                           .with_async(true)
                           .with_async_coalesce(true)
                           .with_verify_on_open(false);
  const auto j = changed.to_json();
  const auto defaults = O{}.to_json();
  for (const auto& key : keys) {
    EXPECT_NE(j[key], defaults[key]) << key << " is not changed by the test";
    // One key alone sets exactly that field.
    auto one = O::from_json(nlohmann::json{{key, j[key]}}).to_json();
    for (const auto& other : keys)
      EXPECT_EQ(one[other], other == key ? j[other] : defaults[other]) << key << " / " << other;
  }
  EXPECT_EQ(O::from_json(j).to_json(), j);
  EXPECT_EQ(O::from_json(defaults).to_json(), defaults);
  EXPECT_TRUE(defaults["save_top_k"].is_null());
  EXPECT_TRUE(defaults["initial_value_threshold"].is_null());
  // null unsets an optional over non-default `defaults`.
  EXPECT_FALSE(O::from_json({{"keep_last", nullptr}}, changed).keep_last);
  // ops and a custom policy are not options in JSON; from_json keeps those of `defaults`.
  EXPECT_FALSE(j.contains("ops"));
  EXPECT_FALSE(j.contains("retention"));
  auto ops = std::make_shared<FileOps>();
  EXPECT_EQ(O::from_json(j, O{}.with_ops(ops)).ops, ops);
}

TEST(Manager, OptionsFromJsonNameTheProblem) {
  using O = CheckpointManagerOptions;
  const auto what = test::error_of<OptionError>([] {
    (void)O::from_json({{"save_top_k", 2}, {"keep_lats", 1}});
  });
  EXPECT_NE(what.find("'keep_lats'"), std::string::npos) << what;
  EXPECT_NE(what.find("known: monitor, mode, save_top_k, keep_last,"), std::string::npos) << what;
  EXPECT_NE(what.find("verify_on_open"), std::string::npos) << what;
  EXPECT_THROW((void)O::from_json({{"save_top_k", "three"}}), OptionError);
  EXPECT_THROW((void)O::from_json({{"save_top_k", 2.5}}), OptionError);
  EXPECT_THROW((void)O::from_json({{"async", 1}}), OptionError);
  EXPECT_THROW((void)O::from_json(nlohmann::json::array()), OptionError);
}

// The same sequence of saves, once straight and once with a restart after every save, leaves
// exactly the same files, best and manifest.
TEST(Manager, ARestartedRunRotatesExactlyAsAnUninterruptedOne) {
  std::vector<double> losses{0.9, 0.7, 0.8, 0.6, 0.65, 0.6, 0.75, 0.5, 0.55, 0.58};
  auto options =
      CheckpointManagerOptions{}.with_save_top_k(2).with_keep_last(2).with_keep_every_n_epochs(4);
  TempDir a, b;
  Training run;
  {
    CheckpointManager m(a.path(), options);
    for (std::size_t e = 0; e < losses.size(); ++e)
      EXPECT_TRUE(m.save(run.request(static_cast<int>(e), losses[e])).saved);
  }
  for (std::size_t e = 0; e < losses.size(); ++e) {
    CheckpointManager m(b.path(), options);
    EXPECT_TRUE(m.save(run.request(static_cast<int>(e), losses[e])).saved);
  }
  EXPECT_EQ(names_on_disk(a.path()), names_on_disk(b.path()));
  EXPECT_EQ(test::read_file(CheckpointManager::manifest_path(a.path())),
            test::read_file(CheckpointManager::manifest_path(b.path())));
  EXPECT_EQ(last_pointer(a.path()), last_pointer(b.path()));
  EXPECT_EQ(test::read_file(CheckpointManager::best_model_path(a.path())),
            test::read_file(CheckpointManager::best_model_path(b.path())));
  CheckpointManager m(b.path(), options);
  EXPECT_EQ(m.best()->name, "epoch-0007");
  EXPECT_EQ(m.latest()->name, "epoch-0009");
}

TEST(Manager, OpenRemovesLeftoversAndSkipsDamagedCheckpoints) {
  TempDir tmp;
  Training run;
  {
    CheckpointManager m(tmp.path());
    for (int e = 0; e < 3; ++e) EXPECT_TRUE(m.save(run.request(e, 1.0 - 0.1 * e)).saved);
  }
  auto cdir = CheckpointManager::checkpoints_dir(tmp.path());
  fs::create_directory(cdir / ".epoch-0003.tmp-123-deadbeef");
  test::write_file(cdir / ".epoch-0003.tmp-123-deadbeef" / "model.safetensors", "partial");
  test::write_file(tmp / ".last.tmp-77-0000abcd", "epoch-0003");
  // Damage the newest: resume must fall back to epoch 1, and never delete the damaged folder.
  {
    std::fstream f(cdir / "epoch-0002" / "model.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  fs::remove(CheckpointManager::best_model_path(tmp.path()));
  CheckpointManager m(tmp.path());
  const auto& rep = m.open_report();
  EXPECT_EQ(rep.removed_leftovers.size(), 2u);
  EXPECT_FALSE(fs::exists(cdir / ".epoch-0003.tmp-123-deadbeef"));
  ASSERT_EQ(rep.skipped.size(), 1u);
  EXPECT_EQ(rep.skipped[0].first, "epoch-0002");
  EXPECT_NE(rep.skipped[0].second.find("corrupt"), std::string::npos) << rep.skipped[0].second;
  ASSERT_TRUE(rep.last_problem);
  EXPECT_EQ(m.latest()->name, "epoch-0001");
  EXPECT_EQ(last_pointer(tmp.path()), "epoch-0001");
  EXPECT_TRUE(fs::exists(cdir / "epoch-0002"));
  // best/ is restored from the best intact checkpoint.
  EXPECT_EQ(m.best()->name, "epoch-0001");
  EXPECT_EQ(test::first_f32(CheckpointManager::best_model_path(tmp.path())), 1.0f);
  // The next save does not collide with the damaged folder's name.
  auto r = m.save(run.request(2, 0.1));
  EXPECT_EQ(r.checkpoint->name, "epoch-0002-v1");
}

TEST(Manager, OpenGivesStateAndTensorsBack) {
  TempDir tmp;
  Training run;
  {
    CheckpointManager m(tmp.path());
    EXPECT_TRUE(m.save(run.request(4, 0.2)).saved);
  }
  CheckpointManager m(tmp.path());
  auto latest = m.latest();
  ASSERT_TRUE(latest);
  auto ck = m.open(latest->name);
  EXPECT_EQ(ck.state()["stopper"]["wait"], 1);
  EXPECT_EQ(ck.info().epoch, 4);
  EXPECT_EQ(ck.info().step, 50);
  EXPECT_EQ(test::first_f32(ck.info().path / "model.safetensors"), 4.0f);
  float m0 = 0;
  auto opt = ck.open_file("optimizer");
  std::memcpy(&m0, opt.view("m").data.data(), sizeof m0);
  EXPECT_EQ(m0, -4.0f);
  EXPECT_THROW((void)m.open("epoch-9999"), CheckpointError);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Refuses hard links as a file system without them does.
class NoLinkOps : public FileOps {
 public:
  int link(const char*, const char*) override {
    errno = EPERM;
    return -1;
  }
};

ino_t inode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

TEST(ManagerBest, BestIsTheCommittedFileItselfAndOutlivesItsCheckpoint) {
  test::TempDir tmp;
  const auto options = CheckpointManagerOptions{}.with_keep_last(1).with_save_top_k(1);
  const auto best = CheckpointManager::best_model_path(tmp.path());
  {
    CheckpointManager m(tmp.path(), options);
    Training run;
    ASSERT_TRUE(m.save(run.request(0, 0.5)).is_best);
    // No second write of the model: best/ is a hard link to the committed file.
    EXPECT_EQ(inode_of(best), inode_of(m.checkpoints().back().path / "model.safetensors"));
    EXPECT_EQ(std::filesystem::hard_link_count(best), 2u);
    // A worse epoch leaves best/ alone; a better one takes it over (and epoch 0 rotates out).
    ASSERT_FALSE(m.save(run.request(1, 0.9)).is_best);
    ASSERT_TRUE(m.save(run.request(2, 0.1)).is_best);
    EXPECT_EQ(inode_of(best), inode_of(m.checkpoints().back().path / "model.safetensors"));
    EXPECT_EQ(test::first_f32(best), 2.0f);
    EXPECT_FALSE(std::filesystem::exists(tmp / "checkpoints" / "epoch-0000"));
  }
  // Reopened, the run finds best/ current and keeps it.
  std::filesystem::path newest;
  {
    CheckpointManager again(tmp.path(), options);
    newest = again.checkpoints().back().path;
    EXPECT_EQ(inode_of(best), inode_of(newest / "model.safetensors"));
  }
  // The link keeps the data when the checkpoint folder goes.
  std::filesystem::remove_all(newest);
  EXPECT_EQ(test::first_f32(best), 2.0f);
}

TEST(ManagerBest, WithoutHardLinksBestIsACopy) {
  test::TempDir tmp;
  CheckpointManager m(tmp.path(),
                      CheckpointManagerOptions{}.with_ops(std::make_shared<NoLinkOps>()));
  Training run;
  ASSERT_TRUE(m.save(run.request(0, 0.5)).is_best);
  const auto best = CheckpointManager::best_model_path(tmp.path());
  const auto committed = m.checkpoints().back().path / "model.safetensors";
  EXPECT_NE(inode_of(best), inode_of(committed));
  EXPECT_EQ(test::read_file(best), test::read_file(committed));
  for (const auto& e : std::filesystem::directory_iterator(best.parent_path()))
    EXPECT_FALSE(is_temporary_name(e.path().filename().string())) << e.path();
}

}  // namespace
}  // namespace vigil
