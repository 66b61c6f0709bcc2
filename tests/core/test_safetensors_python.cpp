// Interop with Python: torch reads a file vigil wrote (plain json + struct + torch.frombuffer, as
// any safetensors reader would), and writes one in the reference layout that vigil reads and
// reproduces byte for byte. Skipped when /usr/bin/python3 cannot import torch.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "vigil/safetensors.hpp"

using namespace vigil;
using vigil::test::kPython;
using vigil::test::TempDir;

namespace {

// The script's exit status when torch cannot be imported (one interpreter start, not two:
// importing torch is the slow part).
constexpr int kNoTorch = 77;

// Reads argv[1] (written by vigil) and checks every value; writes argv[2] in the reference
// layout: tensors sorted by dtype alignment descending then name, compact JSON, space padding.
const char* kScript = R"PY(
import json, struct, sys
try:
    import torch
except ImportError:
    sys.exit(77)

DT = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
      "U8": torch.uint8, "BOOL": torch.bool}
RANK = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
        "F32", "F64", "I64", "U64"]

def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=DT[info["dtype"]]) if e > b else \
            torch.empty(0, dtype=DT[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return meta, out

meta, t = load(sys.argv[1])
assert meta["source"] == "vigil", meta
assert meta["vigil.format"] == "1", meta
assert len(meta["vigil.xxh3:w"]) == 16
assert torch.equal(t["w"], torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4), t["w"]
assert torch.equal(t["h"], torch.tensor([1.5, -2.0], dtype=torch.float16))
assert torch.equal(t["bf"], torch.tensor([0.5, 3.0, -1.0], dtype=torch.bfloat16))
assert torch.equal(t["step"], torch.tensor(123456789012, dtype=torch.int64))
assert t["step"].shape == torch.Size([])
assert torch.equal(t["mask"], torch.tensor([True, False, True]))
assert t["empty"].shape == torch.Size([0, 5])

tensors = {
    "b.bias": torch.tensor([0.25, -0.75], dtype=torch.float32),
    "a.weight": torch.arange(6, dtype=torch.float64).reshape(2, 3) - 2.5,
    "idx": torch.tensor([7, -8, 9], dtype=torch.int64),
    "half": torch.tensor([1.0, 2.0, 65504.0], dtype=torch.float16),
    "flags": torch.tensor([False, True], dtype=torch.bool),
    "bytes": torch.tensor([0, 255, 17], dtype=torch.uint8),
}
names = sorted(tensors, key=lambda k: (-RANK.index([d for d, v in DT.items()
                                                    if v == tensors[k].dtype][0]), k))
header = {"__metadata__": {"format": "pt"}}
chunks, offset = [], 0
for k in names:
    b = tensors[k].contiguous().numpy().tobytes()
    dtype = [d for d, v in DT.items() if v == tensors[k].dtype][0]
    header[k] = {"dtype": dtype, "shape": list(tensors[k].shape),
                 "data_offsets": [offset, offset + len(b)]}
    chunks.append(b)
    offset += len(b)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
print("ok")
)PY";

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

template <class T>
std::vector<T> values(const SafetensorsFile& f, const std::string& name) {
  auto v = f.view(name);
  std::vector<T> out(v.data.size() / sizeof(T));
  std::memcpy(out.data(), v.data.data(), v.data.size());
  return out;
}

}  // namespace

TEST(SafetensorsPython, TorchReadsOurFileAndWeReadTheReferenceLayout) {
  if (!std::filesystem::exists(kPython)) GTEST_SKIP() << kPython << " is missing";
  std::vector<float> w(12);
  for (int i = 0; i < 12; ++i) w[i] = static_cast<float>(i) / 4;
  std::vector<std::uint16_t> h = {0x3E00, 0xC000};           // 1.5, -2.0 as IEEE half
  std::vector<std::uint16_t> bf = {0x3F00, 0x4040, 0xBF80};  // 0.5, 3.0, -1.0 as bfloat16
  std::vector<std::int64_t> step = {123456789012};
  std::vector<std::uint8_t> mask = {1, 0, 1};
  std::vector<TensorView> tensors = {
      {"w", DType::F32, {3, 4}, bytes_of(w)},     {"h", DType::F16, {2}, bytes_of(h)},
      {"bf", DType::BF16, {3}, bytes_of(bf)},     {"step", DType::I64, {}, bytes_of(step)},
      {"mask", DType::BOOL, {3}, bytes_of(mask)}, {"empty", DType::F32, {0, 5}, {}},
  };
  TempDir dir;
  auto ours = dir / "ours.safetensors";
  auto theirs = dir / "theirs.safetensors";
  save_safetensors(ours, tensors, {{"source", "vigil"}});
  vigil::test::write_file(dir / "check.py", kScript);
  auto r = vigil::test::run_process(
      {kPython, (dir / "check.py").string(), ours.string(), theirs.string()});
  if (r.exit_code == kNoTorch) GTEST_SKIP() << kPython << " cannot import torch (python3-torch)";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out, "ok\n");

  auto f = SafetensorsFile::open(theirs);
  EXPECT_FALSE(f.has_checksums());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(values<float>(f, "b.bias"), (std::vector<float>{0.25f, -0.75f}));
  EXPECT_EQ(values<double>(f, "a.weight"), (std::vector<double>{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}));
  EXPECT_EQ(f.view("a.weight").shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(values<std::int64_t>(f, "idx"), (std::vector<std::int64_t>{7, -8, 9}));
  EXPECT_EQ(values<std::uint16_t>(f, "half"), (std::vector<std::uint16_t>{0x3C00, 0x4000, 0x7BFF}));
  EXPECT_EQ(values<std::uint8_t>(f, "flags"), (std::vector<std::uint8_t>{0, 1}));
  EXPECT_EQ(values<std::uint8_t>(f, "bytes"), (std::vector<std::uint8_t>{0, 255, 17}));

  // Re-saving what we read reproduces Python's reference-layout file byte for byte.
  std::vector<TensorView> again;
  for (const auto& t : f.tensors()) again.push_back(f.view(t.name));
  auto copy = dir / "copy.safetensors";
  save_safetensors(copy, again, f.metadata(), SafetensorsWriteOptions{}.with_checksums(false));
  EXPECT_EQ(vigil::test::read_file(copy), vigil::test::read_file(theirs));
}
