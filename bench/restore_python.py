#!/usr/bin/python3
"""Python contender of vigil-bench's restore benchmark (one fresh process per measurement).

  save    --layout L --state S --out F --tiny T : torch.save the state (mapped from /dev/shm, one
                                                  tensor per entry of the layout) as a state_dict
                                                  into F, and a one-tensor state_dict into T
  restore --layout L --file F --tiny T          : build a module with the layout's parameter
                                                  names (zero-filled, so resident), restore T
                                                  once to page the code in, then time
                                                  torch.load(F) + model.load_state_dict(...)
The restore prints one JSON line: {"seconds": ..., "check": byte sum of the first and last tensors}.
Run with Debian's interpreter (/usr/bin/python3, python3-torch).
"""
import argparse
import json
import time

import torch

from torch_harness import DTYPES, load_state


def read_layout(path):
    with open(path) as f:
        return json.load(f)


def module_tree(layout):
    """A module whose state_dict names are the layout's ("layers.3.attn.qkv.weight")."""
    root = torch.nn.Module()
    for t in layout["tensors"]:
        *path, leaf = t["name"].split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, torch.nn.Module())
            m = getattr(m, part)
        data = torch.zeros(t["shape"], dtype=DTYPES[t["dtype"]])
        m.register_parameter(leaf, torch.nn.Parameter(data, requires_grad=False))
    return root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["save", "restore"])
    ap.add_argument("--layout", required=True)
    ap.add_argument("--state")
    ap.add_argument("--out")
    ap.add_argument("--file")
    ap.add_argument("--tiny", required=True)
    args = ap.parse_args()
    layout = read_layout(args.layout)
    if args.mode == "save":
        state, _mm, _fh = load_state(args.layout, args.state)
        torch.save(state, args.out)
        torch.save({"w": torch.zeros(16)}, args.tiny)
        return
    model = module_tree(layout)
    tiny = torch.nn.Module()
    tiny.register_parameter("w", torch.nn.Parameter(torch.zeros(16), requires_grad=False))
    tiny.load_state_dict(torch.load(args.tiny))
    t0 = time.perf_counter()
    model.load_state_dict(torch.load(args.file))
    seconds = time.perf_counter() - t0
    # The byte sums of the first and last tensors (the state is random bytes: its floats include
    # NaNs, so no float sum).
    sd = model.state_dict()
    check = sum(int(sd[t["name"]].contiguous().view(torch.uint8).sum())
                for t in (layout["tensors"][0], layout["tensors"][-1]))
    print(json.dumps({"seconds": seconds, "check": check}), flush=True)


if __name__ == "__main__":
    main()
