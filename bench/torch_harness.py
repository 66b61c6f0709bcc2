#!/usr/bin/python3
"""Python PyTorch contender of vigil-bench: torch.save (+ os.fsync) and torch.load.

Started once per state by vigil-bench, it maps the same state buffer (/dev/shm) the C++
contenders write, as one tensor per entry of the layout (each its own storage, like a real
state_dict), then answers one JSON request per stdin line with one JSON line on stdout:
  {"op": "save", "path": P}        -> {"write_s", "fsync_s", "total_s"}
  {"op": "load", "path": P}        -> {"seconds", "bytes"}   (the result is dropped afterwards)
Run with Debian's interpreter (/usr/bin/python3, python3-torch).
"""
import argparse
import collections
import json
import mmap
import os
import sys
import time

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_state(layout_path, state_path):
    with open(layout_path) as f:
        layout = json.load(f)
    fh = open(state_path, "r+b")
    mm = mmap.mmap(fh.fileno(), 0)
    state = collections.OrderedDict()
    for t in layout["tensors"]:
        dtype = DTYPES[t["dtype"]]
        count = t["nbytes"] // torch.tensor([], dtype=dtype).element_size()
        state[t["name"]] = torch.frombuffer(mm, dtype=dtype, count=count,
                                            offset=t["offset"]).view(t["shape"])
    return state, mm, fh


def save(state, path):
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        torch.save(state, f)
        f.flush()
        t1 = time.perf_counter()
        os.fsync(f.fileno())
    t2 = time.perf_counter()
    return {"write_s": t1 - t0, "fsync_s": t2 - t1, "total_s": t2 - t0}


def load(path):
    t0 = time.perf_counter()
    sd = torch.load(path)
    seconds = time.perf_counter() - t0
    nbytes = sum(v.numel() * v.element_size() for v in sd.values())
    del sd
    return {"seconds": seconds, "bytes": nbytes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tiny", help="write a tiny torch.save file here (to warm torch.load)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    state, _mm, _fh = load_state(args.layout, args.state)
    if args.tiny:
        torch.save({"w": torch.zeros(16)}, args.tiny)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "tensors": len(state)}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "save":
            out = save(state, req["path"])
        elif req["op"] == "load":
            out = load(req["path"])
        else:
            out = {"error": "unknown op " + str(req["op"])}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
