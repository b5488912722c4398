#!/usr/bin/env python3
"""Golden Fisher information per timestep, computed by the TRT reference code's own FI_Observation.

Usage:
    python3 scripts/make_fisher_fixture.py [OUT.json] [--reference /tmp/trt-ref]

Takes the committed interop case `convnp` (Tests/SNNTrainingTests/Fixtures/interop/convnp: the
reference's SNN with trained-looking BatchNorm statistics, 4 static 3x8x8 images, T=3), builds the
reference's SNN with those weights and runs, in batches of 2 samples in order:
  - the reference's `function.FI_Observation` (eval mode, loss = NLL of the log-softmax of the mean
    output over the first t steps, squared gradient of each batch's mean loss / 100, summed), with a
    writer that keeps what it logs: FI_t for t = 1..T;
  - the per-sample empirical Fisher (mean over samples of each sample's squared gradient norm), with
    a loop of this script's own.
Writes {"reference": [...], "per_sample": [...], "batch_size": 2, "case": "convnp"} to OUT.json
(default: Tests/SNNAnalysisTests/Fixtures/fisher_convnp.json). The reference code is imported, not copied.
"""
import argparse
import json
import logging
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_interop_fixtures import build, import_reference  # noqa: E402


class KeepingWriter:
    """Stands in for tensorboardX's SummaryWriter: keeps every scalar."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars.setdefault(tag, {})[step] = float(value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=os.path.join(HERE, "..", "Tests", "SNNAnalysisTests", "Fixtures", "fisher_convnp.json"))
    parser.add_argument("--reference", default="/tmp/trt-ref")
    args = parser.parse_args()
    from safetensors.torch import load_file

    SNN, function, _ = import_reference(args.reference)
    case_dir = os.path.join(HERE, "..", "Tests", "SNNTrainingTests", "Fixtures", "interop", "convnp")
    case = json.load(open(os.path.join(case_dir, "case.json")))
    expected = load_file(os.path.join(case_dir, "expected.safetensors"))
    x, y = expected["input"], expected["labels"].long()
    T = case["T"]
    model = build(SNN, case["topology"], T, case["frame"], case["neuron"], static=True)
    model.load_state_dict(load_file(os.path.join(case_dir, "weights.safetensors")), strict=True)

    batch_size = 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)
    writer = KeepingWriter()
    logging.basicConfig(level=logging.WARNING)
    function.FI_Observation(model, loader, 0, T, torch.device("cpu"), logging, writer)
    curve = writer.scalars["fisher_trace_info_curve_0"]
    reference = [curve[t] for t in range(1, T + 1)]

    model.eval()
    per_sample = [0.0] * T
    for i in range(x.shape[0]):
        output = model(x[i:i + 1], True)  # [1, T, K]
        for t in range(1, T + 1):
            model.zero_grad()
            loss = F.nll_loss(F.log_softmax(output[:, :t].sum(dim=1) / t, dim=1), y[i:i + 1])
            loss.backward(retain_graph=True)
            per_sample[t - 1] += sum(float((p.grad ** 2).sum()) for p in model.parameters() if p.grad is not None)
    per_sample = [v / x.shape[0] for v in per_sample]

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"case": "convnp", "batch_size": batch_size, "reference": reference, "per_sample": per_sample}, f, indent=1)
        f.write("\n")
    print(f"{args.out}: reference {reference}, per-sample {per_sample}")


if __name__ == "__main__":
    main()
