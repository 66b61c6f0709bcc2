# Loads the best model of a `vigil train` Fashion-MNIST run with plain torch + json (no safetensors
# package) and runs it on the test set: python3 load_in_python.py RUN_DIR [PREDICTIONS_FILE]
import gzip, json, struct, sys
import torch
from torch import nn

def load_safetensors(path):  # u64 little-endian header size, JSON header, raw little-endian data
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    return {name: torch.frombuffer(bytearray(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]),
                                   dtype=dtypes[t["dtype"]]).reshape(t["shape"])
            for name, t in json.loads(raw[8:8 + n]).items() if name != "__metadata__"}

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

run_dir = sys.argv[1]
run = json.load(open(f"{run_dir}/run.json"))
model = build_model(run)
model.load_state_dict(load_safetensors(f"{run_dir}/best/model.safetensors"))
model.eval()
n = run["limit_test"] or None  # vigil eval uses the run's test subset
x = read_idx(f"{run['data']}/t10k-images-idx3-ubyte.gz")[:n].unsqueeze(1).float() / 255
y = read_idx(f"{run['data']}/t10k-labels-idx1-ubyte.gz")[:n].long()
with torch.no_grad():
    predicted = model((x - 0.2860) / 0.3530).argmax(1)
print(f"test accuracy: {(predicted == y).float().mean():.4f} on {len(y)} examples")
if len(sys.argv) > 2:
    open(sys.argv[2], "w").write("".join(f"{c}\n" for c in predicted.tolist()))
