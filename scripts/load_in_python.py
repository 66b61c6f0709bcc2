# Loads the best model of a `vigil train` run with plain torch + json (no safetensors package) and
# runs it on the test set: a Fashion-MNIST classifier's accuracy, or a GPT language model's test
# loss on its corpus. python3 load_in_python.py RUN_DIR [PREDICTIONS_FILE]
import gzip, json, math, os, struct, sys
import torch
from torch import nn
from torch.nn import functional as F

def load_safetensors(path, tie=True):  # u64 little-endian header size, JSON header, raw data
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    tensors = {name: torch.frombuffer(bytearray(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]),
                                      dtype=dtypes[t["dtype"]]).reshape(t["shape"])
               for name, t in header.items() if name != "__metadata__"}
    metadata = header.get("__metadata__", {})
    return (tied(tensors, metadata) if tie else tensors), metadata

def tied(tensors, metadata):  # a tied tensor is saved once: the state dict names it twice
    for alias, canonical in json.loads(metadata.get("vigil.tied", "{}")).items():
        tensors[alias] = tensors[canonical]
    return tensors

def load_weights(folder, stem="model"):  # a checkpoint folder: one file, or an index and shards
    index = f"{folder}/{stem}.safetensors.index.json"  # Hugging Face's layout for sharded files
    if not os.path.exists(index):
        return load_safetensors(f"{folder}/{stem}.safetensors")
    tensors, metadata = {}, {}
    for shard in sorted(set(json.load(open(index))["weight_map"].values())):
        part, metadata = load_safetensors(f"{folder}/{shard}", tie=False)
        tensors.update(part)
    return tied(tensors, metadata), metadata

def build_model(run):  # the nn.Sequential `vigil train` builds from run.json (see its output)
    layers, shape = [], (1, 28, 28)
    for c in run["channels"] if run["model"] == "cnn" else []:
        layers += [nn.Conv2d(shape[0], c, 3, padding=1)] + [nn.BatchNorm2d(c)] * run["batch_norm"]
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        shape = (c, shape[1] // 2, shape[2] // 2)
    layers, features = layers + [nn.Flatten()], shape[0] * shape[1] * shape[2]
    for h in run["hidden"]:
        layers += [nn.Linear(features, h), nn.ReLU()] + [nn.Dropout(run["dropout"])] * (run["dropout"] > 0)
        features = h
    return nn.Sequential(*layers, nn.Linear(features, 10))

def read_idx(path):  # Fashion-MNIST's IDX files, gzipped as Debian ships them
    raw = gzip.open(path).read()
    dims = struct.unpack(f">{raw[3]}I", raw[4:4 + 4 * raw[3]])
    return torch.frombuffer(bytearray(raw[4 + 4 * raw[3]:]), dtype=torch.uint8).reshape(dims)

class CausalSelfAttention(nn.Module):  # nanoGPT's, attention written out
    def __init__(self, o):
        super().__init__()
        self.heads = o["heads"]
        self.c_attn, self.c_proj = nn.Linear(o["embed"], 3 * o["embed"]), nn.Linear(o["embed"], o["embed"])
        self.attn_dropout, self.resid_dropout = nn.Dropout(o["dropout"]), nn.Dropout(o["dropout"])

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        y = (self.attn_dropout(att) @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

class MLP(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.c_fc, self.gelu = nn.Linear(o["embed"], 4 * o["embed"]), nn.GELU()
        self.c_proj, self.dropout = nn.Linear(4 * o["embed"], o["embed"]), nn.Dropout(o["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

class Block(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(o["embed"]), CausalSelfAttention(o)
        self.ln_2, self.mlp = nn.LayerNorm(o["embed"]), MLP(o)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class GPT(nn.Module):  # vigil::torch::Gpt: nanoGPT's names, lm_head tied to the token embedding
    def __init__(self, o):  # o: GptOptions::to_json(), the file's "vigil.model" metadata
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(o["vocab_size"], o["embed"]), wpe=nn.Embedding(o["context"], o["embed"]),
            drop=nn.Dropout(o["dropout"]), h=nn.ModuleList(Block(o) for _ in range(o["layers"])),
            ln_f=nn.LayerNorm(o["embed"])))
        self.lm_head = nn.Linear(o["embed"], o["vocab_size"], bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):  # int64 [B, T] -> logits [B, T, vocab_size]
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe(torch.arange(idx.size(1))))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))

def lm_test_loss(run_dir, model, T, batch=64):  # mean cross-entropy (nats) of the test windows
    tokens = torch.frombuffer(bytearray(open(f"{run_dir}/data/tokens.u8", "rb").read()), dtype=torch.uint8).long()
    files = json.load(open(f"{run_dir}/data/corpus.json"))["files"]
    starts = [s for f in files for s in range(f["test"][0], f["test"][1] - T, T)]  # s + T + 1 <= end
    if not starts:
        sys.exit(f"{run_dir}: the test split holds no window of {T + 1} tokens")
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            w = tokens[torch.tensor(starts[i:i + batch])[:, None] + torch.arange(T + 1)]
            logits = model(w[:, :-1])
            total += F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum").item()
    return total / (len(starts) * T), len(starts) * T

def evaluate_gpt(run_dir):
    state, metadata = load_safetensors(f"{run_dir}/best/model.safetensors")
    options = json.loads(metadata["vigil.model"])
    model = GPT(options)
    state.setdefault("lm_head.weight", state["transformer.wte.weight"])  # tied in GPT, noted or not
    model.load_state_dict(state)
    model.eval()
    loss, n = lm_test_loss(run_dir, model, options["context"])
    print(f"test loss {loss:.6f} (perplexity {math.exp(loss):.4f}) on {n} tokens")

def evaluate_classifier(run_dir, run, predictions_file=None):
    model = build_model(run)
    model.load_state_dict(load_safetensors(f"{run_dir}/best/model.safetensors")[0])
    model.eval()
    n = run["limit_test"] or None  # vigil eval uses the run's test subset
    x = read_idx(f"{run['data']}/t10k-images-idx3-ubyte.gz")[:n].unsqueeze(1).float() / 255
    y = read_idx(f"{run['data']}/t10k-labels-idx1-ubyte.gz")[:n].long()
    with torch.no_grad():
        predicted = model((x - 0.2860) / 0.3530).argmax(1)
    print(f"test accuracy: {(predicted == y).float().mean():.4f} on {len(y)} examples")
    if predictions_file:
        open(predictions_file, "w").write("".join(f"{c}\n" for c in predicted.tolist()))

if __name__ == "__main__":
    run_dir = sys.argv[1]
    run = json.load(open(f"{run_dir}/run.json"))
    if run["model"] == "gpt":
        evaluate_gpt(run_dir)
    else:
        evaluate_classifier(run_dir, run, sys.argv[2] if len(sys.argv) > 2 else None)
