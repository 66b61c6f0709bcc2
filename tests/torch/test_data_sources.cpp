// Resumable data sources: token windows over a mapped file (random and sequential, segments,
// dtypes, errors, resume), the libtorch data set adapter and the generator source.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "test_support.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/generator_source.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/token_windows.hpp"
#include "vigil/torch/torch_data_source.hpp"

namespace vt = vigil::torch;
namespace fs = std::filesystem;
using vigil::test::TempDir;
using vigil::test::write_file;

namespace {

// Tokens little-endian, `width` bytes each.
std::string token_bytes(const std::vector<std::uint32_t>& tokens, int width) {
  std::string s;
  for (auto t : tokens)
    for (int b = 0; b < width; ++b) s += static_cast<char>((t >> (8 * b)) & 0xff);
  return s;
}

// A u16 file whose token at position i is i: a window's first token is its start.
fs::path counting_file(const TempDir& dir, std::uint32_t n, const std::string& name = "tok.bin") {
  std::vector<std::uint32_t> tokens(n);
  for (std::uint32_t i = 0; i < n; ++i) tokens[i] = i;
  write_file(dir / name, token_bytes(tokens, 2));
  return dir / name;
}

std::vector<std::int64_t> row(const torch::Tensor& t, std::int64_t r) {
  auto c = t[r].contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

// The first token (= start position, in a counting file) of every row.
std::vector<std::int64_t> starts(const vt::TokenBatch& b) {
  std::vector<std::int64_t> out;
  for (std::int64_t r = 0; r < b.x.size(0); ++r) out.push_back(b.x[r][0].item<std::int64_t>());
  return out;
}

bool same(const vt::TokenBatch& a, const vt::TokenBatch& b) {
  return torch::equal(a.x, b.x) && torch::equal(a.y, b.y);
}

template <class Error, class F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

vt::TokenWindowOptions opts(const fs::path& path) {
  return vt::TokenWindowOptions{}.with_path(path).with_context(8).with_batch_size(4).with_seed(7);
}

// ---- TokenWindowSource: windows ----

TEST(TokenWindows, RandomWindowsAreShiftedByOneAndStayInsideTheirSegment) {
  TempDir dir;
  const auto path = counting_file(dir, 5000);
  const std::vector<vt::TokenSegment> segs{{0, 1000}, {1000, 1005}, {2000, 4000}};
  vt::TokenWindowSource src(opts(path).with_segments(segs));
  // The 5-token segment holds no 9-token window and is dropped.
  EXPECT_EQ(src.segments(), (std::vector<vt::TokenSegment>{{0, 1000}, {2000, 4000}}));
  EXPECT_EQ(src.num_windows(), (1000 - 8) + (2000 - 8));
  EXPECT_FALSE(src.batches_per_epoch().has_value());
  src.set_epoch(0);
  std::int64_t in_second = 0, total = 0;
  for (int b = 0; b < 500; ++b) {
    auto batch = src.next();
    ASSERT_TRUE(batch);
    ASSERT_EQ(batch->x.sizes(), (std::vector<std::int64_t>{4, 8}));
    ASSERT_EQ(batch->y.sizes(), (std::vector<std::int64_t>{4, 8}));
    ASSERT_EQ(batch->x.scalar_type(), torch::kLong);
    for (std::int64_t r = 0; r < 4; ++r) {
      const auto x = row(batch->x, r);
      const auto y = row(batch->y, r);
      const auto s = x[0];
      for (int t = 0; t < 8; ++t) {
        ASSERT_EQ(x[t], s + t);
        ASSERT_EQ(y[t], s + t + 1);
      }
      const bool first = s >= 0 && s + 9 <= 1000;
      const bool second = s >= 2000 && s + 9 <= 4000;
      ASSERT_TRUE(first || second) << "window at " << s << " crosses or leaves its segment";
      in_second += second;
      ++total;
    }
  }
  // Drawn uniformly over start positions: the second segment has 1992 of the 2984 starts.
  EXPECT_NEAR(static_cast<double>(in_second) / static_cast<double>(total), 1992.0 / 2984.0, 0.04);
}

TEST(TokenWindows, WindowsReachTheLastValidStartOfEachSegment) {
  TempDir dir;
  const auto path = counting_file(dir, 40);
  // Segments of 10 and 11 tokens with context 8: starts {0, 1} and {20, 21, 22}.
  vt::TokenWindowSource src(opts(path).with_segments({{0, 10}, {20, 31}}).with_batch_size(16));
  src.set_epoch(0);
  std::set<std::int64_t> seen;
  for (int b = 0; b < 20; ++b)
    for (auto s : starts(*src.next())) seen.insert(s);
  EXPECT_EQ(seen, (std::set<std::int64_t>{0, 1, 20, 21, 22}));
}

TEST(TokenWindows, SameSeedSameBatchesOtherSeedOrEpochOtherBatches) {
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  vt::TokenWindowSource a(opts(path)), b(opts(path)), c(opts(path).with_seed(8));
  a.set_epoch(0);
  b.set_epoch(0);
  c.set_epoch(0);
  std::vector<vt::TokenBatch> first;
  for (int i = 0; i < 5; ++i) {
    auto x = a.next(), y = b.next(), z = c.next();
    EXPECT_TRUE(same(*x, *y));
    EXPECT_FALSE(same(*x, *z));
    first.push_back(*x);
  }
  a.set_epoch(1);
  EXPECT_FALSE(same(*a.next(), first[0]));
  a.set_epoch(0);  // a pass depends only on (seed, epoch)
  EXPECT_TRUE(same(*a.next(), first[0]));
}

TEST(TokenWindows, RandomStartsAreTheSameOnEveryMachine) {
  // Pinned values: a change in the generator or the placement would silently change every run's
  // data; this must fail instead.
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  vt::TokenWindowSource src(opts(path).with_seed(1337));
  src.set_epoch(0);
  const auto got = starts(*src.next());
  vt::TokenWindowSource again(opts(path).with_seed(1337));
  again.set_epoch(0);
  EXPECT_EQ(starts(*again.next()), got);
  EXPECT_EQ(got, (std::vector<std::int64_t>{2445, 189, 1567, 1299}));
}

TEST(TokenWindows, ReadsU8AndLittleEndianU32) {
  TempDir dir;
  write_file(dir / "bytes.txt", "hello world, hello tokens");
  vt::TokenWindowSource bytes(opts(dir / "bytes.txt")
                                  .with_dtype(vt::TokenDType::U8)
                                  .with_mode(vt::WindowMode::Sequential)
                                  .with_context(5)
                                  .with_vocab_size(256));
  bytes.set_epoch(0);
  auto b = bytes.next();
  EXPECT_EQ(row(b->x, 0), (std::vector<std::int64_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(row(b->y, 0), (std::vector<std::int64_t>{'e', 'l', 'l', 'o', ' '}));
  EXPECT_EQ(row(b->x, 1), (std::vector<std::int64_t>{' ', 'w', 'o', 'r', 'l'}));

  std::vector<std::uint32_t> big;
  for (std::uint32_t i = 0; i < 20; ++i) big.push_back(70000 + i * 65536);
  write_file(dir / "u32.bin", token_bytes(big, 4));
  vt::TokenWindowSource wide(opts(dir / "u32.bin")
                                 .with_dtype(vt::TokenDType::U32)
                                 .with_mode(vt::WindowMode::Sequential)
                                 .with_context(3));
  EXPECT_EQ(wide.num_tokens(), 20);
  wide.set_epoch(0);
  auto w = wide.next();
  EXPECT_EQ(row(w->x, 1),
            (std::vector<std::int64_t>{70000 + 3 * 65536, 70000 + 4 * 65536, 70000 + 5 * 65536}));
  EXPECT_EQ(vt::parse_token_dtype("uint16"), vt::TokenDType::U16);
  EXPECT_THROW(vt::parse_token_dtype("int16"), vigil::OptionError);
}

// ---- Sequential ----

TEST(TokenWindows, SequentialServesEveryFullWindowOnceAndKeepsTheShortLastBatch) {
  TempDir dir;
  const auto path = counting_file(dir, 300);
  // Context 8, stride 8: [0, 100) has (100 - 1) / 8 = 12 windows, [100, 137) has 4, [200, 205)
  // none. 16 windows in batches of 5: 5, 5, 5, 1.
  vt::TokenWindowSource src(opts(path)
                                .with_mode(vt::WindowMode::Sequential)
                                .with_batch_size(5)
                                .with_segments({{0, 100}, {100, 137}, {200, 205}}));
  EXPECT_EQ(src.num_windows(), 16);
  ASSERT_EQ(src.batches_per_epoch(), 4);
  for (int epoch = 0; epoch < 2; ++epoch) {
    src.set_epoch(epoch);
    std::vector<std::int64_t> got, sizes;
    std::map<std::int64_t, int> targets;  // how often each position is a target
    while (auto b = src.next()) {
      sizes.push_back(b->x.size(0));
      for (auto s : starts(*b)) got.push_back(s);
      auto y = b->y.flatten();
      for (std::int64_t i = 0; i < y.numel(); ++i) ++targets[y[i].item<std::int64_t>()];
    }
    EXPECT_EQ(sizes, (std::vector<std::int64_t>{5, 5, 5, 1}));
    std::vector<std::int64_t> expected;
    for (std::int64_t s = 0; s + 9 <= 100; s += 8) expected.push_back(s);
    for (std::int64_t s = 100; s + 9 <= 137; s += 8) expected.push_back(s);
    EXPECT_EQ(got, expected);
    // Each of positions 1..96 and 101..132 is predicted exactly once.
    EXPECT_EQ(targets.size(), 96u + 32u);
    for (auto [pos, n] : targets) {
      EXPECT_EQ(n, 1) << pos;
      EXPECT_TRUE((pos >= 1 && pos <= 96) || (pos >= 101 && pos <= 132)) << pos;
    }
    EXPECT_FALSE(src.next().has_value());  // stays ended
  }
}

TEST(TokenWindows, SequentialBatchesPerEpochServesAPrefix) {
  TempDir dir;
  vt::TokenWindowSource src(opts(counting_file(dir, 300))
                                .with_mode(vt::WindowMode::Sequential)
                                .with_batches_per_epoch(2));
  EXPECT_EQ(src.batches_per_epoch(), 2);
  src.set_epoch(0);
  EXPECT_EQ(starts(*src.next()), (std::vector<std::int64_t>{0, 8, 16, 24}));
  EXPECT_EQ(starts(*src.next()), (std::vector<std::int64_t>{32, 40, 48, 56}));
  EXPECT_FALSE(src.next().has_value());
}

// ---- resume ----

TEST(TokenWindows, LoadStateInAFreshSourceGivesTheSameNextBatches) {
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  for (auto mode : {vt::WindowMode::Random, vt::WindowMode::Sequential}) {
    vt::TokenWindowSource a(opts(path).with_mode(mode));
    a.set_epoch(3);
    for (int i = 0; i < 5; ++i) a.next();
    // Through text, as state.json carries it.
    const auto saved = nlohmann::json::parse(a.state().dump());
    EXPECT_EQ(saved["epoch"], 3);
    EXPECT_EQ(saved["position"], 5);
    EXPECT_EQ(saved["windows"], 20);
    vt::TokenWindowSource b(opts(path).with_mode(mode));
    b.load_state(saved);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(same(*a.next(), *b.next()));
  }
}

TEST(TokenWindows, ResumesAcrossAPassBoundary) {
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  auto o = opts(path).with_batches_per_epoch(3);
  vt::TokenWindowSource a(o);
  a.set_epoch(0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.next());
  const auto at_end = a.state();  // the pass is used up, not yet ended by nullopt
  EXPECT_FALSE(a.next().has_value());
  a.set_epoch(1);
  auto a1 = *a.next();
  const auto in_second = a.state();

  vt::TokenWindowSource b(o);
  b.load_state(at_end);
  EXPECT_FALSE(b.next().has_value());
  b.set_epoch(1);
  EXPECT_TRUE(same(*b.next(), a1));

  vt::TokenWindowSource c(o);
  c.load_state(in_second);
  EXPECT_TRUE(same(*c.next(), *a.next()));
}

TEST(TokenWindows, TheTrainContextSnapshotCarriesTheDataState) {
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  vt::TokenWindowSource a(opts(path));
  a.set_epoch(0);
  a.next();
  a.next();
  vt::TrainContext ctx;
  ctx.model = std::make_shared<torch::nn::LinearImpl>(2, 1);
  ctx.data = &a;
  const auto saved = nlohmann::json::parse(ctx.snapshot().state.dump());
  vt::TokenWindowSource b(opts(path));
  b.load_state(saved.at("data"));
  EXPECT_TRUE(same(*a.next(), *b.next()));
}

TEST(TokenWindows, LoadStateRefusesAnotherFileOrOptions) {
  TempDir dir;
  const auto path = counting_file(dir, 3000);
  const auto other = counting_file(dir, 2000, "other.bin");
  const auto same_name = counting_file(dir, 2000, "sub/tok.bin");
  vt::TokenWindowSource a(opts(path));
  a.set_epoch(0);
  a.next();
  const auto saved = a.state();
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(other)).load_state(saved); },
                                  {"other.bin", "file"});
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(same_name)).load_state(saved); },
                                  {"tokens = 3000", "2000"});
  expect_error<vigil::InputError>(
      [&] { vt::TokenWindowSource(opts(path).with_context(16)).load_state(saved); },
      {"context = 8", "16"});
  expect_error<vigil::InputError>(
      [&] { vt::TokenWindowSource(opts(path).with_seed(9)).load_state(saved); }, {"seed"});
  expect_error<vigil::InputError>(
      [&] {
        vt::TokenWindowSource(opts(path).with_segments({{0, 2999}})).load_state(saved);
      },
      {"segments_digest"});
  expect_error<vigil::InputError>(
      [&] {
        vt::TokenWindowSource(opts(path)).load_state({{"kind", "torch_data"}});
      },
      {"not a token-window state"});
  auto bad = saved;
  bad["position"] = -1;
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(path)).load_state(bad); },
                                  {"position >= 0"});
  // Sequential windows do not depend on the seed, so a validation source may change it.
  vt::TokenWindowSource v(opts(path).with_mode(vt::WindowMode::Sequential));
  EXPECT_NO_THROW(
      vt::TokenWindowSource(opts(path).with_mode(vt::WindowMode::Sequential).with_seed(99))
          .load_state(v.state()));
}

// ---- errors ----

TEST(TokenWindows, EachBadFileOrOptionGetsItsOwnMessage) {
  TempDir dir;
  const auto path = counting_file(dir, 100);
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(dir / "missing.bin")); },
                                  {"missing.bin", "no such file"});
  write_file(dir / "odd.bin", "abc");
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(dir / "odd.bin")); },
                                  {"odd.bin", "3 bytes", "2-byte tokens", "u16"});
  expect_error<vigil::InputError>(
      [&] {
        vt::TokenWindowSource(opts(path).with_segments({{0, 50}, {50, 101}}));
      },
      {"tok.bin", "segment 1", "[50, 101)", "only 100 tokens"});
  expect_error<vigil::OptionError>(
      [&] {
        vt::TokenWindowSource(opts(path).with_segments({{60, 50}}));
      },
      {"segment 0", "begin <= end"});
  expect_error<vigil::InputError>(
      [&] {
        vt::TokenWindowSource(opts(path).with_segments({{0, 5}, {10, 18}}));
      },
      {"tok.bin", "context + 1 = 9", "longest has 8"});
  write_file(dir / "empty.bin", "");
  expect_error<vigil::InputError>([&] { vt::TokenWindowSource(opts(dir / "empty.bin")); },
                                  {"empty.bin", "longest has 0"});
  expect_error<vigil::OptionError>([&] { vt::TokenWindowSource(opts(path).with_context(0)); },
                                   {"context 0"});
  expect_error<vigil::OptionError>([&] { vt::TokenWindowSource(opts(path).with_batch_size(0)); },
                                   {"batch_size 0"});
  expect_error<vigil::OptionError>([&] { vt::TokenWindowSource(opts("")); }, {"path"});
  // Tokens 0..99 with vocab_size 50: the first windows are fine, the one reaching 50 is not.
  vt::TokenWindowSource src(opts(path).with_mode(vt::WindowMode::Sequential).with_vocab_size(50));
  src.set_epoch(0);
  EXPECT_TRUE(src.next());  // starts 0..24: tokens up to 32
  expect_error<vigil::InputError>([&] { src.next(); },
                                  {"tok.bin", "token 50 at position 50", "vocab_size 50"});
}

// ---- TorchDataSource ----

// Example i has data [i, i] and target i.
struct Numbers : torch::data::datasets::Dataset<Numbers> {
  std::int64_t n;
  explicit Numbers(std::int64_t count) : n(count) {}
  torch::data::Example<> get(size_t index) override {
    const auto i = static_cast<float>(index);
    return {torch::tensor({i, i}), torch::tensor(static_cast<std::int64_t>(index))};
  }
  torch::optional<size_t> size() const override { return static_cast<size_t>(n); }
};

std::vector<std::int64_t> targets(const torch::data::Example<>& b) {
  auto t = b.target.contiguous();
  return {t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel()};
}

TEST(TorchDataSource, StacksExamplesInIndexOrderWithoutShuffle) {
  vt::TorchDataSource src(Numbers(10),
                          vt::TorchDataOptions{}.with_batch_size(4).with_shuffle(false));
  EXPECT_EQ(src.batches_per_epoch(), 3);
  src.set_epoch(0);
  auto b = src.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->data.sizes(), (std::vector<std::int64_t>{4, 2}));
  EXPECT_EQ(targets(*b), (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(b->data[3][1].item<float>(), 3.0f);
  EXPECT_EQ(targets(*src.next()), (std::vector<std::int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(targets(*src.next()), (std::vector<std::int64_t>{8, 9}));  // short last batch kept
  EXPECT_FALSE(src.next().has_value());
}

TEST(TorchDataSource, ShufflesEachPassByEpochOrderAndDropsTheShortBatchOnRequest) {
  const auto o = vt::TorchDataOptions{}.with_batch_size(3).with_seed(5).with_drop_last(true);
  vt::TorchDataSource src(Numbers(10), o);
  EXPECT_EQ(src.batches_per_epoch(), 3);
  std::vector<std::vector<std::int64_t>> passes;
  for (int epoch = 0; epoch < 2; ++epoch) {
    src.set_epoch(epoch);
    std::vector<std::int64_t> seen;
    while (auto b = src.next())
      for (auto t : targets(*b)) seen.push_back(t);
    auto order = vt::epoch_order(10, 5, epoch);
    order.resize(9);
    EXPECT_EQ(seen, order);
    passes.push_back(seen);
  }
  EXPECT_NE(passes[0], passes[1]);
}

TEST(TorchDataSource, ResumesFromEpochAndPositionAndRefusesOtherOptions) {
  const auto o = vt::TorchDataOptions{}.with_batch_size(3).with_seed(5);
  vt::TorchDataSource a(Numbers(10), o);
  a.set_epoch(2);
  a.next();
  const auto saved = nlohmann::json::parse(a.state().dump());
  vt::TorchDataSource b(Numbers(10), o);
  b.load_state(saved);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(targets(*a.next()), targets(*b.next()));
  EXPECT_FALSE(b.next().has_value());

  expect_error<vigil::InputError>([&] { vt::TorchDataSource(Numbers(11), o).load_state(saved); },
                                  {"examples = 10", "11"});
  expect_error<vigil::InputError>(
      [&] {
        vt::TorchDataSource(Numbers(10), o).load_state({{"kind", "token_windows"}});
      },
      {"not one"});
  auto past = saved;
  past["position"] = 5;
  expect_error<vigil::InputError>([&] { vt::TorchDataSource(Numbers(10), o).load_state(past); },
                                  {"pass of 4 batches"});
  expect_error<vigil::OptionError>(
      [] { vt::TorchDataSource(Numbers(10), vt::TorchDataOptions{}.with_batch_size(0)); },
      {"batch_size 0"});
}

TEST(TorchDataSource, TakesMappedDataSetsAndACustomCollate) {
  // Mapped with Stack<>(): get_batch already returns one Example<>, passed on as it is.
  auto stacked = Numbers(6).map(torch::data::transforms::Stack<>());
  vt::TorchDataSource mapped(std::move(stacked),
                             vt::TorchDataOptions{}.with_batch_size(4).with_shuffle(false));
  mapped.set_epoch(0);
  EXPECT_EQ(targets(*mapped.next()), (std::vector<std::int64_t>{0, 1, 2, 3}));

  // An example transform (as in the header's MNIST example): still a vector of examples, stacked.
  auto normalized = Numbers(6).map(torch::data::transforms::Normalize<>(1.0, 2.0));
  vt::TorchDataSource norm(std::move(normalized),
                           vt::TorchDataOptions{}.with_batch_size(4).with_shuffle(false));
  static_assert(std::is_same_v<decltype(norm)::batch_type, torch::data::Example<>>);
  norm.set_epoch(0);
  auto b = *norm.next();
  EXPECT_FLOAT_EQ(b.data[3].flatten()[0].item<float>(), (3.0f - 1.0f) / 2.0f);
  static_assert(std::is_same_v<vt::TorchDataSource<torch::data::datasets::MNIST>::batch_type,
                               torch::data::Example<>>);

  // A collate of one's own: the sum of the targets.
  using Sum = vt::TorchDataSource<Numbers, std::int64_t>;
  Sum sums(Numbers(6), vt::TorchDataOptions{}.with_batch_size(4).with_shuffle(false),
           [](std::vector<torch::data::Example<>> examples) {
             std::int64_t s = 0;
             for (const auto& e : examples) s += e.target.item<std::int64_t>();
             return s;
           });
  sums.set_epoch(0);
  EXPECT_EQ(sums.next(), 0 + 1 + 2 + 3);
  EXPECT_EQ(sums.next(), 4 + 5);
  expect_error<vigil::OptionError>([] { Sum(Numbers(6)); }, {"collate"});
}

// ---- GeneratorSource ----

TEST(GeneratorSource, CallsTheFunctionWithStepAndSeedAndResumesFromTheStep) {
  auto make = [](std::int64_t step, std::uint64_t seed) {
    return step * 1000 + static_cast<std::int64_t>(seed);
  };
  const auto o = vt::GeneratorOptions{}.with_seed(7).with_batches_per_epoch(3);
  vt::GeneratorSource<std::int64_t> a(make, o);
  a.set_epoch(0);
  EXPECT_EQ(a.next(), 7);
  EXPECT_EQ(a.next(), 1007);
  EXPECT_EQ(a.next(), 2007);
  EXPECT_FALSE(a.next().has_value());
  a.set_epoch(1);
  EXPECT_EQ(a.next(), 3007);  // steps go on across passes
  vt::GeneratorSource<std::int64_t> b(make, o);
  b.load_state(nlohmann::json::parse(a.state().dump()));
  EXPECT_EQ(b.step(), 4);
  EXPECT_EQ(b.next(), a.next());
  EXPECT_EQ(b.next(), a.next());
  EXPECT_FALSE(b.next().has_value());
  expect_error<vigil::InputError>(
      [&] {
        vt::GeneratorSource<std::int64_t>(make, vt::GeneratorOptions{}).load_state(a.state());
      },
      {"seed"});

  vt::GeneratorSource<std::int64_t> endless(make);
  EXPECT_FALSE(endless.batches_per_epoch().has_value());
  endless.set_epoch(0);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(endless.next());
}

TEST(GeneratorSource, TheHeaderExampleMakesReproducibleTokenBatches) {
  vt::GeneratorSource<vt::TokenBatch> data([](std::int64_t step, std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003 + step);
    auto x = ::torch::randint(10, {32, 16}, gen, ::torch::kLong);
    return vt::TokenBatch{x, x.flip(1)};
  });
  data.set_epoch(0);
  auto first = *data.next();
  EXPECT_EQ(first.x.sizes(), (std::vector<std::int64_t>{32, 16}));
  vt::GeneratorSource<vt::TokenBatch> again([](std::int64_t step, std::uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003 + step);
    auto x = ::torch::randint(10, {32, 16}, gen, ::torch::kLong);
    return vt::TokenBatch{x, x.flip(1)};
  });
  again.set_epoch(0);
  EXPECT_TRUE(same(*again.next(), first));
}

}  // namespace
