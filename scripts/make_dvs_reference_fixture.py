#!/usr/bin/env python3
"""Writes Tests/SNNDataTests/Fixtures/dvs_reference_frames.json: CIFAR10-DVS frames made the way
the TRT reference makes them, from a real DVS128 AEDAT 2.0 recording in ../shared/data. The
golden values for `--dvs-frames reference`.

The steps follow the reference's pipeline (re-implemented here, not copied): its MATLAB reader
(dat2mat.m: x = 127 - bits 1-7, y = bits 8-14, polarity = 1 - 2 * bit 0, special events kept),
its frame builder (dvscifar_dataloader.py: frame i takes events [i*(n//10), (i+1)*(n//10)) and
does `frames[i, p, x, y] += 1` with NumPy fancy indexing, so repeats count once and p = -1
lands in channel 1; then each frame is divided by its maximum), and its loader (dataset.py:
ToPILImage on each [2, 128, 128] frame, a two-channel "LA" image, Resize((48, 48)), ToTensor).
Needs NumPy, Pillow, torch and torchvision; run by hand from the repository root, commit the
fixture."""
import json

import numpy as np
import torch
from torchvision import transforms

SOURCE = "../shared/data/dvs128-aedat2/DVS128DataAnalysis/alex_walking_again.aedat"
T = 10


def read_aedat2(path):
    data = open(path, "rb").read()
    start = 0
    while data[start:start + 1] == b"#":
        start = data.index(b"\n", start) + 1
    body = np.frombuffer(data[start:start + (len(data) - start) // 8 * 8], dtype=">u4").reshape(-1, 2)
    return body[:, 0].astype(np.int64), body[:, 1].astype(np.int64)


addr, _ = read_aedat2(SOURCE)
x = 127 - ((addr & 0xFE) >> 1)
y = (addr & 0x7F00) >> 8
p = 1 - 2 * (addr & 1)
frames = np.zeros((T, 2, 128, 128))
d = len(addr) // T
for i in range(T):
    r = slice(i * d, (i + 1) * d)
    frames[i, p[r], x[r], y[r]] += 1
for i in range(T):
    frames[i] = frames[i] / np.max(frames[i])
to_image, resize, to_tensor = transforms.ToPILImage(), transforms.Resize(size=(48, 48)), transforms.ToTensor()
out = torch.stack([to_tensor(resize(to_image(torch.Tensor(frames[t])))) for t in range(T)])
levels = torch.round(out * 255).to(torch.int64)
assert torch.equal(levels.float() / 255, out), "values are multiples of 1/255"
with open("Tests/SNNDataTests/Fixtures/dvs_reference_frames.json", "w") as f:
    json.dump({"source": SOURCE.split("shared/data/")[1], "events": int(len(addr)), "T": T,
               "levels": levels.reshape(-1).tolist()}, f)
print("wrote", T, "frames;", int((levels[:, 0] != 0).sum()), "nonzero values in channel 0")
