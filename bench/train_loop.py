#!/usr/bin/python3
"""The Python PyTorch training-loop contender of vigil-bench.

The same work as `vigil train` with its defaults and as `vigil-bench train-bare`: Fashion-MNIST
from Debian's dataset-fashion-mnist (pixels / 255, Normalize(0.2860, 0.3530)), 10% held out for
validation, the mlp nn.Sequential(Flatten, Linear(784, 256), ReLU, Linear(256, 256), ReLU,
Linear(256, 10)), Adam(lr=1e-3), batch 64, a shuffled order every epoch, validation (batch 1000)
after every epoch, the test set once at the end; no checkpoints. Prints one JSON line:
{"loop_seconds", "epochs", "val_accuracy", "test_accuracy"}.
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path, limit=None):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return arr[:limit] if limit else arr


def load(split, limit=None):
    images = read_idx(f"{ROOT}/{split}-images-idx3-ubyte.gz", limit)
    labels = read_idx(f"{ROOT}/{split}-labels-idx1-ubyte.gz", limit)
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = ((x - MEAN) / STD).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += nn.functional.cross_entropy(out, y[i:i + batch]).item() * len(out)
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x, y = load("train", args.limit_train or None)
    perm = torch.randperm(len(x))
    n_val = max(1, round(0.1 * len(x)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    xv, yv, xt, yt = x[val_idx], y[val_idx], x[train_idx], y[train_idx]
    x_test, y_test = load("t10k")

    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                          nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    val_acc = 0.0
    for _ in range(args.epochs):
        order = torch.randperm(len(xt))
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(xt), args.batch_size):
            idx = order[i:i + args.batch_size]
            xb, yb = xt.index_select(0, idx), yt.index_select(0, idx)
            opt.zero_grad()
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.detach().argmax(1) == yb).sum().item()
            seen += len(idx)
        _, val_acc = evaluate(model, xv, yv)
    loop_seconds = time.perf_counter() - started
    _, test_acc = evaluate(model, x_test, y_test)
    print(json.dumps({"loop_seconds": loop_seconds, "epochs": args.epochs,
                      "val_accuracy": val_acc, "test_accuracy": test_acc}))


if __name__ == "__main__":
    main()
