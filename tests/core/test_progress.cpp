// ProgressDisplay with a hand-driven clock: plain lines off a terminal, the live bar's
// redraws, rate, ETA, throttling, padding and messages.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.hpp"
#include "vigil/progress.hpp"

namespace {

using vigil::ProgressDisplay;
using vigil::ProgressOptions;

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// Each test's output and a clock it moves by hand.
class Progress : public ::testing::Test {
 protected:
  ProgressDisplay::Clock clock() {
    return [this] { return now; };
  }
  // The live bar, redrawn at most every `min_redraw_seconds`.
  static ProgressOptions live_bar(double min_redraw_seconds = 0) {
    return ProgressOptions{}.with_live(true).with_min_redraw_seconds(min_redraw_seconds);
  }

  std::ostringstream out;
  double now = 0.0;
};

TEST_F(Progress, PlainModeWritesOneLinePerEpoch) {
  now = 100.0;
  ProgressDisplay p(out, {}, clock());
  EXPECT_FALSE(p.live());  // an ostream is not a terminal
  for (long epoch = 0; epoch < 2; ++epoch) {
    p.on_epoch_begin(epoch, 30, 50);
    for (long b = 0; b < 50; ++b) {
      now += 0.2;
      p.on_batch_end(b, {{"loss", 0.5}});
    }
    p.on_epoch_end(epoch, {{"loss", 0.41234567},
                           {"accuracy", 0.875},
                           {"val_loss", 0.45},
                           {"lr", 0.001},
                           {"seconds", 10.0}});
  }
  EXPECT_EQ(out.str(),
            "epoch 0 (1 of 30): 50 batches in 10.0s (5.0 batch/s)  loss 0.4123  accuracy 0.875"
            "  val_loss 0.45  lr 0.001\n"
            "epoch 1 (2 of 30): 50 batches in 10.0s (5.0 batch/s)  loss 0.4123  accuracy 0.875"
            "  val_loss 0.45  lr 0.001\n");
}

TEST_F(Progress, LiveBarRedrawsInPlaceWithRateAndEta) {
  ProgressDisplay p(out, live_bar().with_bar_width(10), clock());
  ASSERT_TRUE(p.live());
  p.on_epoch_begin(2, 10, 100);
  for (long b = 0; b < 50; ++b) {
    now += 0.1;  // 10 batches a second
    p.on_batch_end(b, {{"loss", 1.0 / (b + 1)}});
  }
  const std::string mid = out.str();
  EXPECT_EQ(mid.find('\n'), std::string::npos) << "the bar must stay on one line";
  const auto last = mid.substr(mid.rfind('\r'));
  EXPECT_EQ(
      last.rfind("\repoch 2 (3 of 10) [=====>    ] 50/100  10.0 batch/s  ETA 0:05  loss 0.02", 0),
      0u)
      << last;
  for (long b = 50; b < 100; ++b) {
    now += 0.1;
    p.on_batch_end(b, {{"loss", 0.01}});
  }
  p.on_epoch_end(2, {{"loss", 0.01}, {"val_loss", 0.03}});
  const std::string all = out.str();
  EXPECT_EQ(count(all, "\n"), 1u);
  const auto final_line = all.substr(all.rfind('\r'));
  EXPECT_EQ(final_line.rfind("\repoch 2 (3 of 10) [==========] 100/100  10.0 batch/s  10.0s"
                             "  loss 0.01  val_loss 0.03",
                             0),
            0u)
      << final_line;
  EXPECT_EQ(final_line.back(), '\n');
}

TEST_F(Progress, RedrawsAreThrottled) {
  ProgressDisplay p(out, live_bar(0.5), clock());
  p.on_epoch_begin(0, std::nullopt, 1000);
  for (long b = 0; b < 1000; ++b) {
    now += 0.01;  // 10 s in all: about 20 redraws, not 1000
    p.on_batch_end(b, {{"loss", 1.0}});
  }
  const auto draws = count(out.str(), "\r");
  EXPECT_GE(draws, 19u);
  EXPECT_LE(draws, 22u);
  EXPECT_NE(out.str().find("1000/1000"), std::string::npos);  // the last batch is always drawn
}

TEST_F(Progress, ShorterLinesWipeLongerOnesAndMessagesKeepTheBar) {
  ProgressDisplay p(out, live_bar(), clock());
  p.on_epoch_begin(0);
  now = 1;
  p.on_batch_end(0, {{"loss", 0.123456}, {"accuracy", 0.5}});
  const auto first = out.str().size();
  now = 2;
  p.on_batch_end(1, {{"loss", 0.5}});
  const auto second = out.str().substr(first);
  // Same start, shorter content, padded with spaces up to the previous width.
  EXPECT_EQ(second.size(), first) << second;
  EXPECT_EQ(second.back(), ' ');
  p.message("saved checkpoint epoch-0000");
  const auto after = out.str();
  EXPECT_NE(after.find("\rsaved checkpoint epoch-0000\n\repoch 0 2 batches"), std::string::npos)
      << after;
}

TEST_F(Progress, UnknownTotalsAndNonFiniteMetrics) {
  ProgressDisplay p(out, {}, clock());
  p.on_epoch_begin(4);
  now = 3;
  p.on_epoch_end(4, {{"loss", std::numeric_limits<double>::quiet_NaN()},
                     {"val_loss", std::numeric_limits<double>::infinity()}});
  EXPECT_EQ(out.str(), "epoch 4: 3.0s  loss nan  val_loss inf\n");
  p.message("stopping early");
  EXPECT_EQ(out.str().substr(out.str().size() - 15), "stopping early\n");
}

TEST_F(Progress, Durations) {
  EXPECT_EQ(ProgressDisplay::format_duration(7.4), "0:07");
  EXPECT_EQ(ProgressDisplay::format_duration(725), "12:05");
  EXPECT_EQ(ProgressDisplay::format_duration(3723), "1:02:03");
  EXPECT_EQ(ProgressDisplay::format_duration(-1), "?");
  EXPECT_EQ(ProgressDisplay::format_duration(1.0 / 0.0), "?");
}

TEST_F(Progress, FileOutputThatIsNotATerminalIsPlain) {
  vigil::test::TempDir dir;
  const auto path = dir / "log.txt";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    ProgressDisplay p(f, {}, clock());
    EXPECT_FALSE(p.live());
    p.on_epoch_begin(0, 1, 2);
    now = 1;
    p.on_batch_end(0, {{"loss", 1}});
    p.on_batch_end(1, {{"loss", 1}});
    p.on_epoch_end(0, {{"loss", 0.5}});
  }
  std::fclose(f);
  EXPECT_EQ(vigil::test::read_file(path),
            "epoch 0 (1 of 1): 2 batches in 1.0s (2.0 batch/s)  loss 0.5\n");
}

}  // namespace

namespace {

TEST_F(Progress, EpochNoteEndsTheEpochLineInBothModes) {
  std::ostringstream plain;
  ProgressDisplay p(plain, {}, clock());
  p.on_epoch_begin(0, 2, 1);
  now += 1.0;
  p.on_batch_end(0, {{"loss", 0.5}});
  p.on_epoch_end(0, {{"loss", 0.5}}, "saved epoch-0000 (best)");
  EXPECT_EQ(
      plain.str(),
      "epoch 0 (1 of 2): 1 batches in 1.0s (1.0 batch/s)  loss 0.5  saved epoch-0000 (best)\n");

  std::ostringstream live;
  ProgressDisplay l(live, live_bar(), clock());
  l.on_epoch_begin(0, 2, 1);
  now += 1.0;
  l.on_batch_end(0, {{"loss", 0.5}});
  l.on_epoch_end(0, {{"loss", 0.5}}, "saved epoch-0000");
  EXPECT_NE(live.str().find("loss 0.5  saved epoch-0000\n"), std::string::npos) << live.str();
}

TEST_F(Progress, ResumedEpochStartsTheBarWhereItWasAndRatesOnlyNewBatches) {
  ProgressDisplay p(out, live_bar().with_bar_width(10), clock());
  p.on_epoch_begin(3, 10, 100, /*first_batch=*/50);
  for (long b = 50; b < 60; ++b) {
    now += 0.5;  // 2 batches a second since the resume
    p.on_batch_end(b, {});
  }
  const auto last = out.str().substr(out.str().rfind('\r'));
  EXPECT_EQ(last.rfind("\repoch 3 (4 of 10) [======>   ] 60/100  2.0 batch/s  ETA 0:20", 0), 0u)
      << last;
  // Plain lines count the batches run now.
  std::ostringstream plain;
  ProgressDisplay q(plain, {}, clock());
  q.on_epoch_begin(3, 10, 100, 98);
  now += 1.0;
  q.on_batch_end(98, {});
  q.on_batch_end(99, {});
  q.on_epoch_end(3, {});
  EXPECT_EQ(plain.str(), "epoch 3 (4 of 10): 2 batches in 1.0s (2.0 batch/s)\n");
}

TEST_F(Progress, FinishEndsAnUnfinishedBarOnce) {
  ProgressDisplay p(out, live_bar(), clock());
  p.finish();
  EXPECT_EQ(out.str(), "");  // nothing drawn, nothing to end
  p.on_epoch_begin(0, 1, 10);
  now += 1;
  p.on_batch_end(0, {});
  p.finish();
  p.finish();
  EXPECT_EQ(count(out.str(), "\n"), 1u);
  EXPECT_EQ(out.str().back(), '\n');
}

}  // namespace
