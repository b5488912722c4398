#!/usr/bin/env python3
"""Golden optimizer steps from PyTorch for Tests/SNNTrainingTests/OptimizersTests.swift.

Runs three steps of SGD (momentum 0.9, with and without weight decay), Adam (with and without
weight decay), AdamW and RMSprop on one fixed [2, 3] float64 parameter with fixed gradients,
and writes the parameter after every step (and the optimizer state after the last) to
Tests/SNNTrainingTests/Fixtures/optimizer/steps.json.

    python3 -m pip install torch && python3 scripts/make_optimizer_fixture.py
"""
import json
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests/SNNTrainingTests/Fixtures/optimizer/steps.json"

INITIAL = [[0.5, -1.25, 2.0], [0.0, 0.75, -0.3]]
# Gradients of mixed sign and magnitude, one zero entry, so moments and momentum differ per element.
GRADIENTS = [
    [[0.1, -0.2, 0.3], [1.5, 0.0, -0.05]],
    [[-0.4, 0.25, 0.3], [1.0, 0.01, 0.2]],
    [[0.05, -0.6, -0.1], [-2.0, 0.02, 0.3]],
]

# (name, SwiftSNN kind, constructor, learning rate, weight decay); SwiftSNN uses PyTorch's
# defaults for the other hyperparameters (betas 0.9/0.999, eps 1e-8, alpha 0.99, momentum 0.9).
CASES = [
    ("sgd", "SGD", lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1, 0.0),
    ("sgd_weight_decay", "SGD", lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd), 0.1, 0.05),
    ("adam", "Adam", lambda p, lr, wd: torch.optim.Adam(p, lr=lr, eps=1e-8, weight_decay=wd), 0.01, 0.0),
    ("adam_weight_decay", "Adam", lambda p, lr, wd: torch.optim.Adam(p, lr=lr, eps=1e-8, weight_decay=wd), 0.01, 0.1),
    ("adamw", "AdamW", lambda p, lr, wd: torch.optim.AdamW(p, lr=lr, eps=1e-8, weight_decay=wd), 0.01, 0.1),
    ("rmsprop", "RMSprop", lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8, weight_decay=wd), 0.01, 0.0),
    ("rmsprop_weight_decay", "RMSprop",
     lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8, weight_decay=wd), 0.01, 0.05),
]


def run(make, lr, wd):
    p = torch.nn.Parameter(torch.tensor(INITIAL, dtype=torch.float64))
    opt = make([p], lr, wd)
    after = []
    for g in GRADIENTS:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        after.append(p.detach().flatten().tolist())
    state = {k: v.flatten().tolist() for k, v in opt.state[p].items() if torch.is_tensor(v) and v.numel() > 1}
    return after, state


def main():
    cases = []
    for name, kind, make, lr, wd in CASES:
        after, state = run(make, lr, wd)
        cases.append({"name": name, "kind": kind, "learning_rate": lr, "weight_decay": wd,
                      "parameters_after_each_step": after, "state_after_last_step": state})
    fixture = {"torch_version": torch.__version__, "shape": [2, 3],
               "initial": sum(INITIAL, []), "gradients": [sum(g, []) for g in GRADIENTS], "cases": cases}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
