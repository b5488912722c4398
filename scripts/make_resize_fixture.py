#!/usr/bin/env python3
"""Writes Tests/SNNDataTests/Fixtures/resize.json: PyTorch's antialiased bilinear resize of seeded
event-count planes, with the scale factors of CIFAR10-DVS (128→48, here 32→12) and
N-Caltech101 (180×240→48, here 45×60→12), plus an upscale: the golden values for SwiftSNN's
Resize. Needs torch; run by hand, commit the fixture."""
import json

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(0)
cases = []
for (h, w, oh, ow) in [(32, 32, 12, 12), (45, 60, 12, 12), (7, 5, 11, 9), (10, 10, 3, 4)]:
    # Sparse, event-like planes of small counts.
    x = (rng.random((1, 2, h, w)) ** 6 * 4).astype(np.int64).astype(np.float32)
    y = F.interpolate(torch.from_numpy(x), size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    cases.append({"height": h, "width": w, "out_height": oh, "out_width": ow,
                  "input": [int(v) for v in x.reshape(-1)], "output": [round(float(v), 7) for v in y.numpy().reshape(-1)]})
with open("Tests/SNNDataTests/Fixtures/resize.json", "w") as f:
    json.dump(cases, f)
