#!/usr/bin/env python3
"""Writes the pickles SwiftSNN's unpickler tests read (run by the tests, into a temporary folder):
CIFAR-style batches in protocols 2 and 4, and pickles that must be refused."""
import os
import pickle
import sys

import numpy as np

out = sys.argv[1]
data = (np.arange(3 * 3072) % 251).astype(np.uint8).reshape(3, 3072)
cifar10 = {b"batch_label": b"training batch 1 of 5", b"labels": [6, 9, 0], b"data": data,
           b"filenames": [b"a.png", b"b.png", b"c.png"]}
cifar100 = {"filenames": ["x"] * 3, "batch_label": "training batch 1 of 1", "fine_labels": [99, 0, 42],
            "coarse_labels": [19, 0, 7], "data": data}
for protocol in (2, 4):
    with open(f"{out}/cifar10_p{protocol}", "wb") as f:
        pickle.dump(cifar10, f, protocol=protocol)
    with open(f"{out}/cifar100_p{protocol}", "wb") as f:
        pickle.dump(cifar100, f, protocol=protocol)
with open(f"{out}/labels_i8", "wb") as f:
    pickle.dump({"data": data, "labels": np.array([1, 2, 3], dtype=np.int64)}, f, protocol=2)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


with open(f"{out}/evil", "wb") as f:
    pickle.dump({"data": Evil()}, f, protocol=2)
