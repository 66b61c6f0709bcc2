// libtorch's CPU generator state and vigil's ShuffleRng.
#include "vigil/torch/rng_state.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <array>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace vigil::torch {

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::uint8_t* data, std::size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < n) v |= std::uint32_t{data[i + 1]} << 8;
    if (i + 2 < n) v |= data[i + 2];
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < n ? kBase64[(v >> 6) & 63] : '=';
    out += i + 2 < n ? kBase64[v & 63] : '=';
  }
  return out;
}

std::vector<std::uint8_t> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) throw InputError("RNG state: base64 text length is not a multiple of 4");
  std::array<int, 256> rev;
  rev.fill(-1);
  for (int i = 0; i < 64; ++i) rev[static_cast<unsigned char>(kBase64[i])] = i;
  std::vector<std::uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i + k];
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      const int d = rev[static_cast<unsigned char>(c)];
      if (d < 0 || pad > 0) throw InputError("RNG state: invalid base64 text");
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(v >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t rotl(std::uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

::torch::Tensor get_torch_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();  // shares the global generator
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();  // a fresh U8 tensor
}

void set_torch_rng_state(const ::torch::Tensor& state) {
  if (!state.defined() || state.scalar_type() != ::torch::kByte || state.dim() != 1)
    throw InputError("torch RNG state must be a 1-D U8 tensor (as get_torch_rng_state returns)");
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(state.to(::torch::kCPU).contiguous());
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    throw InputError(fmt::format("cannot restore the torch RNG state: {}", msg));
  }
}

nlohmann::json torch_rng_state_json() {
  auto state = get_torch_rng_state().contiguous();
  return {{"torch_cpu",
           base64_encode(state.data_ptr<std::uint8_t>(), static_cast<std::size_t>(state.numel()))}};
}

void set_torch_rng_state_json(const nlohmann::json& json) {
  if (!json.is_object() || !json.contains("torch_cpu") || !json["torch_cpu"].is_string())
    throw InputError("torch RNG state JSON must be {\"torch_cpu\": \"<base64>\"}");
  auto bytes = base64_decode(json["torch_cpu"].get<std::string>());
  auto t = ::torch::empty({static_cast<std::int64_t>(bytes.size())}, ::torch::kByte);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  set_torch_rng_state(t);
}

void seed_torch(std::uint64_t seed) {
  ::torch::manual_seed(seed);
}

ShuffleRng::ShuffleRng(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

std::uint64_t ShuffleRng::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

// GCC's and Clang's 128-bit integer (for the multiply-high); __extension__ tells -Wpedantic
// that it is meant.
__extension__ typedef unsigned __int128 Uint128;  // NOLINT(modernize-use-using)

std::uint64_t ShuffleRng::below(std::uint64_t bound) {
  if (bound == 0) throw OptionError("ShuffleRng::below needs a bound > 0");
  // Lemire's nearly divisionless method: multiply-high, reject the biased low slice.
  Uint128 m = static_cast<Uint128>(next()) * bound;
  auto low = static_cast<std::uint64_t>(m);
  if (low < bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      m = static_cast<Uint128>(next()) * bound;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

void ShuffleRng::shuffle(std::span<std::int64_t> values) {
  for (std::size_t i = values.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(below(i));
    std::swap(values[i - 1], values[j]);
  }
}

std::vector<std::int64_t> ShuffleRng::permutation(std::int64_t n) {
  if (n < 0) throw OptionError("permutation size must be >= 0");
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  shuffle(p);
  return p;
}

nlohmann::json ShuffleRng::to_json() const {
  nlohmann::json state = nlohmann::json::array();
  for (auto s : s_) state.push_back(fmt::format("{:016x}", s));
  return {{"algorithm", "xoshiro256**"}, {"state", state}};
}

ShuffleRng ShuffleRng::from_json(const nlohmann::json& json) {
  if (!json.is_object() || json.value("algorithm", std::string()) != "xoshiro256**" ||
      !json.contains("state") || !json["state"].is_array() || json["state"].size() != 4)
    throw InputError(
        "shuffle RNG state must be {\"algorithm\": \"xoshiro256**\", \"state\": [4 hex strings]}");
  ShuffleRng rng;
  bool all_zero = true;
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& v = json["state"][i];
    std::string hex = v.is_string() ? v.get<std::string>() : "";
    if (hex.empty() || hex.size() > 16 ||
        hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      throw InputError(fmt::format("shuffle RNG state word {} is not 1-16 hex digits", i));
    rng.s_[i] = std::stoull(hex, nullptr, 16);
    all_zero = all_zero && rng.s_[i] == 0;
  }
  // xoshiro's all-zero state is a fixed point: it would return 0 forever.
  if (all_zero) throw InputError("shuffle RNG state is all zero, which xoshiro256** cannot use");
  return rng;
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch,
                                      bool shuffle) {
  if (n < 0) throw OptionError("data set size must be >= 0");
  if (!shuffle) {
    std::vector<std::int64_t> p(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
    return p;
  }
  // Mix seed and epoch through splitmix so that neighbouring seeds/epochs are unrelated.
  std::uint64_t x = seed;
  const std::uint64_t a = splitmix64(x);
  x = a ^ static_cast<std::uint64_t>(epoch);
  ShuffleRng rng(splitmix64(x));
  return rng.permutation(n);
}

}  // namespace vigil::torch
