#!/usr/bin/env python3
"""Independent expectations for SwiftSNN's event readers, computed with NumPy from the format
descriptions (not from SwiftSNN's code):

  event_expectations.py atis FILE     N-MNIST / N-Caltech101 40-bit events
  event_expectations.py aedat2 FILE   jAER AEDAT 2.0, DVS128 address layout

Prints {"events", "t_first", "t_last", "x_max", "y_max", "on", "first": [[x, y, p, t], ...]}.
"""
import json
import sys

import numpy as np


def atis(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = y == 240
    t = t + np.cumsum(overflow) * (1 << 13)
    keep = ~overflow
    return x[keep], y[keep], p[keep], t[keep]


def aedat2(path):
    blob = open(path, "rb").read()
    start = 0
    while blob[start:start + 1] == b"#":
        start = blob.index(b"\n", start) + 1
    records = np.frombuffer(blob[start:], dtype=">u4").reshape(-1, 2).astype(np.int64)
    address, t = records[:, 0], records[:, 1]
    keep = (address & 0x8000) == 0
    address, t = address[keep], t[keep]
    return (address >> 1) & 0x7F, (address >> 8) & 0x7F, address & 1, t


def main():
    kind, path = sys.argv[1], sys.argv[2]
    x, y, p, t = {"atis": atis, "aedat2": aedat2}[kind](path)
    first = [[int(a), int(b), int(c), int(d)] for a, b, c, d in zip(x[:3], y[:3], p[:3], t[:3])]
    print(json.dumps({"events": int(len(x)), "t_first": int(t[0]), "t_last": int(t[-1]), "x_max": int(x.max()),
                      "y_max": int(y.max()), "on": int(p.sum()), "first": first}))


if __name__ == "__main__":
    main()
