#!/usr/bin/env python3
"""Writes Tests/SNNDataTests/Fixtures/jpeg.json: what PIL and torchvision make of real ImageNet
JPEGs in ../shared/data/imagenet-sample: decoded pixel sums and samples, the test transform
(Resize(256) + CenterCrop(224)) and resized crops as RandomResizedCrop applies them, as 8-bit
values before ToTensor/Normalize. The golden values for SwiftSNN's JPEG decoding and image
transforms. Needs Pillow and torchvision; run by hand from the repository root, commit the fixture."""
import json
import os

import numpy as np
from PIL import Image
from torchvision import transforms
import torchvision.transforms.functional as F

ROOT = "../shared/data/imagenet-sample"
FILES = [
    "original-resolution/n03417042_garbage_truck.JPEG",  # grayscale (mode L), 613x511
    "original-resolution/n03028079_church.JPEG",         # portrait 348x500
    "original-resolution/n02979186_cassette_player.JPEG",
    "imagenette-224/val/n03394916/ILSVRC2012_val_00011691.JPEG",  # 224x224: Resize(256) upsamples
]
STEP = 7  # sample every 7th row and column


def sample(a):
    return [int(v) for v in np.asarray(a, dtype=np.uint8)[::STEP, ::STEP, :].reshape(-1)]


cases = []
for name in FILES:
    img = Image.open(os.path.join(ROOT, name)).convert("RGB")
    rgb = np.asarray(img)
    w, h = img.size
    test = transforms.CenterCrop(224)(transforms.Resize(256)(img))
    crops = []
    for (top, left, ch, cw) in [(0, 0, h, w), (h // 5, w // 7, h // 2, w // 3), (3, 5, 120, 160)]:
        out = F.resized_crop(img, top, left, ch, cw, [224, 224])
        crops.append({"top": top, "left": left, "height": ch, "width": cw, "sample": sample(out)})
    cases.append({
        "file": name, "width": w, "height": h,
        "channel_sums": [int(v) for v in rgb.reshape(-1, 3).sum(axis=0)],
        "decoded_sample": sample(rgb),
        "test_sample": sample(test),
        "test_channel_sums": [int(v) for v in np.asarray(test).reshape(-1, 3).sum(axis=0)],
        "crops": crops,
    })
with open("Tests/SNNDataTests/Fixtures/jpeg.json", "w") as f:
    json.dump({"step": STEP, "cases": cases}, f)
print("wrote", len(cases), "cases")
