// Data-parallel training on c10d/Gloo over the loopback, one thread per rank: the collectives,
// 2-rank vs 1-rank agreement, an agreed stop, and a hung or vanished rank failing the others.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "distributed_test_helpers.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/trainer.hpp"

namespace vt = vigil::torch;
using namespace std::chrono_literals;
using namespace vigil::test;

namespace {

struct Outcome {
  vt::FitResult fit;
  vt::NamedTensors weights;
};

// Trains the MLP for `epochs` with SGD; `group` null = alone. `seed` seeds the initial weights
// (ranks other than 0 get rank 0's through the broadcast).
Outcome train(std::shared_ptr<vt::ProcessGroup> group, std::uint64_t seed, int epochs,
              std::int64_t batch, std::vector<std::shared_ptr<vt::Callback>> callbacks = {},
              std::function<std::optional<std::string>()> interrupt = {}) {
  auto net = make_mlp(seed);
  ::torch::optim::SGD opt(net->parameters(), ::torch::optim::SGDOptions(0.1).momentum(0.9));
  vt::Trainer trainer(vt::TrainerOptions{}
                          .with_epochs(epochs)
                          .with_batch_size(batch)
                          .with_eval_batch_size(7)
                          .with_seed(3)
                          .with_interrupt(std::move(interrupt))
                          .with_distributed(group));
  for (auto& c : callbacks) trainer.add_callback(c);
  const auto train_data = make_data(101, 1);
  const auto val_data = make_data(37, 2);
  Outcome o;
  o.fit = trainer.fit(vt::Model::of(net), opt, train_data, val_data);
  o.weights = vt::module_state(*net).clone();
  return o;
}

// Asks to stop at the end of epoch `at`, like a rule only this rank's callback knows.
class StopAt : public vt::Callback {
 public:
  explicit StopAt(int at) : at_(at) {}
  std::string name() const override { return "stop_at"; }
  void on_epoch_end(vt::TrainContext& ctx, int epoch, const vigil::Logs&) override {
    if (epoch == at_) ctx.request_stop("rank-local rule fired");
  }

 private:
  int at_;
};

// Calls `hook` at a given global step, before the batch runs.
class AtStep : public vt::Callback {
 public:
  AtStep(std::int64_t step, std::function<void()> hook) : step_(step), hook_(std::move(hook)) {}
  std::string name() const override { return "at_step"; }
  void on_batch_begin(vt::TrainContext& ctx, std::int64_t, const vigil::Logs&) override {
    if (ctx.global_step == step_) hook_();
  }

 private:
  std::int64_t step_;
  std::function<void()> hook_;
};

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override { ::torch::set_num_threads(1); }
};

}  // namespace

TEST(ShardRange, SplitsContiguouslyWithSizesWithinOne) {
  for (std::int64_t n : {0, 1, 2, 7, 64, 101})
    for (int w : {1, 2, 3, 8}) {
      std::int64_t next = 0;
      for (int r = 0; r < w; ++r) {
        const auto s = vt::shard_range(n, r, w);
        EXPECT_EQ(s.begin, next);
        EXPECT_LE(s.size(), n / w + 1);
        EXPECT_GE(s.size(), n / w);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  EXPECT_THROW(vt::shard_range(10, 2, 2), vigil::OptionError);
}

TEST(DistributedOptions, ReadsTheTorchrunEnvironment) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "4242", 1);
  ::setenv("VIGIL_DIST_TIMEOUT", "12", 1);
  EXPECT_TRUE(vt::DistributedOptions::env_present());
  const auto o = vt::DistributedOptions::from_env();
  EXPECT_EQ(o.rank, 1);
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.master_addr, "10.1.2.3");
  EXPECT_EQ(o.master_port, 4242);
  EXPECT_EQ(o.timeout, 12s);
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(vt::DistributedOptions::from_env(), vigil::OptionError);
  ::setenv("RANK", "x", 1);
  EXPECT_THROW(vt::DistributedOptions::from_env(), vigil::OptionError);
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "VIGIL_DIST_TIMEOUT"})
    ::unsetenv(v);
  EXPECT_FALSE(vt::DistributedOptions::env_present());
}

TEST_F(Distributed, CollectivesAgreeOnEveryRank) {
  const int world = 3;
  std::vector<std::vector<double>> sums(world), maxes(world);
  std::vector<int> any_false(world, -1), any_true(world, -1);
  std::vector<std::string> strings(world);
  auto errors = run_ranks(world, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    EXPECT_EQ(g->rank(), r);
    EXPECT_EQ(g->world_size(), world);
    sums[r] = g->all_reduce_sum({1.0 * r, 0.5, 0.25});
    maxes[r] = g->all_reduce_max({1.0 * r, -1.0 * r});
    any_false[r] = g->any(false);
    any_true[r] = g->any(r == 2);
    strings[r] = g->broadcast_string(r == 1 ? "from rank one" : "", 1);
    g->barrier();
  });
  expect_no_errors(errors);
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(sums[r], (std::vector<double>{3.0, 1.5, 0.75}));
    EXPECT_EQ(maxes[r], (std::vector<double>{2.0, 0.0}));
    EXPECT_EQ(any_false[r], 0);
    EXPECT_EQ(any_true[r], 1);
    EXPECT_EQ(strings[r], "from rank one");
  }
}

TEST_F(Distributed, BroadcastsRankZerosWeightsAndAveragesGradientsInBuckets) {
  const int world = 2;
  std::vector<vt::NamedTensors> weights(world), grads(world);
  std::vector<::torch::Tensor> expected(world);
  auto errors = run_ranks(world, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    auto net = make_mlp(100 + r);  // different initial weights on each rank
    g->broadcast_module(*net);
    weights[r] = vt::module_state(*net).clone();
    // Rank r's gradient of every parameter is r + 1 (rank 0 has none for the last bias: zeros).
    auto params = net->parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
      if (!(r == 0 && i + 1 == params.size()))
        params[i].mutable_grad() = ::torch::full_like(params[i], r + 1.0);
    g->all_reduce_gradients(*net, r == 0 ? 0.25 : 0.75);
    vt::NamedTensors out;
    for (std::size_t i = 0; i < params.size(); ++i)
      out.add(std::to_string(i), params[i].grad().clone());
    grads[r] = out;
  });
  expect_no_errors(errors);
  expect_equal(weights[0], weights[1]);
  {
    // And rank 0's weights are the ones a model built with rank 0's seed has.
    auto net0 = make_mlp(100);
    expect_equal(weights[0], vt::module_state(*net0).clone());
  }
  ASSERT_EQ(grads[0].size(), 4u);
  for (int r = 0; r < world; ++r)
    for (std::size_t i = 0; i < 4; ++i) {
      const double want = (i == 3 ? 0.0 : 0.25 * 1.0) + 0.75 * 2.0;
      EXPECT_TRUE(
          ::torch::allclose(grads[r].tensors()[i], ::torch::full_like(grads[r].tensors()[i], want)))
          << "rank " << r << " parameter " << i;
    }
}

TEST_F(Distributed, SmallBucketsGiveTheSameGradientsAsOneBucket) {
  std::vector<vt::NamedTensors> got(2);
  for (std::int64_t bucket : {std::int64_t{64}, std::int64_t{25} << 20}) {
    const int port = free_port();
    std::vector<std::thread> threads;
    std::vector<std::exception_ptr> errors(2);
    std::vector<vt::NamedTensors> grads(2);
    for (int r = 0; r < 2; ++r)
      threads.emplace_back([&, r] {
        try {
          vt::ProcessGroup g(options(r, 2, port).with_bucket_bytes(bucket));
          auto gen = at::detail::createCPUGenerator(50 + r);
          auto net = make_mlp(7);
          for (auto& p : net->parameters()) p.mutable_grad() = ::torch::randn(p.sizes(), gen);
          g.all_reduce_gradients(*net, 0.5);
          vt::NamedTensors out;
          int i = 0;
          for (auto& p : net->parameters()) out.add(std::to_string(i++), p.grad().clone());
          grads[r] = out;
        } catch (...) {
          errors[r] = std::current_exception();
        }
      });
    for (auto& t : threads) t.join();
    expect_no_errors(errors);
    expect_equal(grads[0], grads[1]);
    got[bucket == 64 ? 0 : 1] = grads[0];
  }
  expect_equal(got[0], got[1]);
}

TEST_F(Distributed, TwoRanksReachTheWeightsOfOneRankWithTheSameGlobalBatch) {
  // 101 examples in global batches of 15: the last batch has 11, split 5/6, and validation
  // (37 examples, eval batches of 7) is split 18/19: shard weighting must be exact.
  const Outcome alone = train(nullptr, 11, 4, 15);
  std::vector<Outcome> ranks(2);
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    ranks[r] = train(g, 11 + static_cast<std::uint64_t>(r) * 1000, 4, 15);
  });
  expect_no_errors(errors);
  ASSERT_EQ(ranks[0].fit.history.size(), 4u);
  // Every rank holds the same weights, bit for bit (same all-reduced gradients).
  expect_equal(ranks[0].weights, ranks[1].weights);
  // And they match the single process up to the order of floating-point sums.
  expect_close(ranks[0].weights, alone.weights, 1e-4);
  EXPECT_EQ(ranks[0].fit.global_step, alone.fit.global_step);
  for (std::size_t e = 0; e < 4; ++e) {
    const auto& a = alone.fit.history[e].logs;
    for (int r = 0; r < 2; ++r) {
      const auto& d = ranks[r].fit.history[e].logs;
      for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"})
        EXPECT_NEAR(d.at(k), a.at(k), 1e-4) << "epoch " << e << " " << k << " rank " << r;
      // Identical logs on every rank, seconds included (the slowest rank's).
      EXPECT_EQ(d, ranks[0].fit.history[e].logs);
    }
  }
}

TEST_F(Distributed, AStopRequestedOnOneRankStopsEveryRankAtTheSameEpoch) {
  std::vector<Outcome> ranks(2);
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    std::vector<std::shared_ptr<vt::Callback>> cbs;
    if (r == 1) cbs.push_back(std::make_shared<StopAt>(2));
    ranks[r] = train(g, 5, 10, 16, cbs);
  });
  expect_no_errors(errors);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(ranks[r].fit.stopped_early) << r;
    EXPECT_EQ(ranks[r].fit.epochs_run, 3) << r;
    EXPECT_EQ(ranks[r].fit.stop_reason, "rank-local rule fired") << r;
  }
  expect_equal(ranks[0].weights, ranks[1].weights);
}

// A signal reaches the ranks one after the other: whichever saw it, every rank reports the
// reason it gave, never "another rank".
TEST_F(Distributed, AnInterruptSeenByOneRankIsReportedWithItsReasonOnEveryRank) {
  std::vector<Outcome> ranks(2);
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    auto polls = std::make_shared<int>(0);
    auto interrupt = [polls, r]() -> std::optional<std::string> {
      if (r == 1 && ++*polls == 3) return "interrupted by SIGINT";
      return std::nullopt;
    };
    ranks[r] = train(g, 5, 10, 16, {}, interrupt);
  });
  expect_no_errors(errors);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(ranks[r].fit.interrupted) << r;
    EXPECT_EQ(ranks[r].fit.stop_reason, "interrupted by SIGINT") << r;
    EXPECT_EQ(ranks[r].fit.global_step, 3) << r;
  }
  expect_equal(ranks[0].weights, ranks[1].weights);
}

TEST_F(Distributed, EarlyStoppingDecidesTheSameOnEveryRankFromTheSharedValLoss) {
  std::vector<Outcome> ranks(2);
  std::vector<std::shared_ptr<vt::EarlyStopping>> stoppers(2);
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    // A min_delta no epoch can beat: stops after `patience` epochs without improvement.
    stoppers[r] = std::make_shared<vt::EarlyStopping>(
        vt::EarlyStoppingCallbackOptions{}
            .with_stopping(vigil::EarlyStoppingOptions{}.with_patience(2).with_min_delta(10.0))
            .with_restore_best_weights(true));
    ranks[r] = train(g, 5, 20, 16, {stoppers[r]});
  });
  expect_no_errors(errors);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(ranks[r].fit.stopped_early);
    EXPECT_EQ(ranks[r].fit.epochs_run, 3);
    EXPECT_TRUE(stoppers[r]->restored());
    EXPECT_EQ(ranks[r].fit.history.back().logs.at("val_loss"),
              ranks[0].fit.history.back().logs.at("val_loss"));
  }
  EXPECT_EQ(ranks[0].fit.stop_reason, ranks[1].fit.stop_reason);
  expect_equal(ranks[0].weights, ranks[1].weights);
}

TEST_F(Distributed, AHungRankMakesTheOthersFailWithinTheTimeout) {
  // Rank 1 stops answering at step 3 until rank 0 has given up: no timing guesswork.
  std::mutex m;
  std::condition_variable cv;
  bool rank0_done = false;
  auto errors = run_ranks(
      2,
      [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
        std::vector<std::shared_ptr<vt::Callback>> cbs;
        if (r == 1)
          cbs.push_back(std::make_shared<AtStep>(3, [&] {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return rank0_done; });
          }));
        try {
          train(g, 5, 5, 16, cbs);
        } catch (...) {
          if (r == 0) {
            std::lock_guard lock(m);
            rank0_done = true;
            cv.notify_all();
          }
          throw;
        }
        if (r == 0) {
          std::lock_guard lock(m);
          rank0_done = true;
          cv.notify_all();
        }
      },
      3000ms);
  // Normally the gradients' all-reduce of step 3 is where rank 0 waits; on a badly overloaded
  // machine an earlier collective may already time out, so the operation is not pinned.
  const std::string e0 = message(errors[0]);
  EXPECT_EQ(e0.rfind("rank 0 of 2: ", 0), 0u) << e0;
  EXPECT_NE(e0.find("failed: another rank died, hung for longer than the timeout (3 s)"),
            std::string::npos)
      << e0;
  // Rank 1 comes back to a group rank 0 has left: it fails too instead of waiting forever.
  EXPECT_TRUE(errors[1]);
  try {
    std::rethrow_exception(errors[0]);
  } catch (const vt::DistributedError&) {
  } catch (...) {
    ADD_FAILURE() << "rank 0's error is not a DistributedError";
  }
}

TEST_F(Distributed, ARankThatLeavesMidEpochMakesTheOthersFail) {
  auto errors = run_ranks(2, [&](int r, std::shared_ptr<vt::ProcessGroup> g) {
    std::vector<std::shared_ptr<vt::Callback>> cbs;
    if (r == 1)
      cbs.push_back(
          std::make_shared<AtStep>(4, [] { throw std::runtime_error("rank 1 crashed"); }));
    train(std::move(g), 5, 5, 16, cbs);
  });
  EXPECT_EQ(message(errors[1]), "rank 1 crashed");
  const std::string e0 = message(errors[0]);
  EXPECT_NE(e0.find("rank 0 of 2"), std::string::npos) << e0;
  EXPECT_NE(e0.find("failed"), std::string::npos) << e0;
}

TEST(DistributedSetup, NoPeerAtTheRendezvousFailsWithinTheTimeout) {
  // Rank 1 of 2 with nobody listening on the port.
  try {
    vt::ProcessGroup g(options(1, 2, free_port(), 1500ms));
    FAIL() << "joined a group that does not exist";
  } catch (const vt::DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot form the process group"), std::string::npos)
        << e.what();
  }
}
