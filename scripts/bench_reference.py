#!/usr/bin/env python3
"""Times full TRT training steps of the reference PyTorch implementation, for comparison with
`snn bench train` on the same machine and shapes.

The reference code is not part of SwiftSNN: fetch ZBX05/Temporal-Regularization-Training and
pass its folder with --reference-dir. Needs PyPI's torch (CPU is fine).

  python3 scripts/bench_reference.py --reference-dir DIR --topology VGGSNN --dataset DVSCIFAR10 --T 10 --batch_size 16

On a GPU, --device cuda times the steps with a synchronisation around each and reports the peak
GPU memory PyTorch allocated (peak_gpu_mib); --amp 1 trains as the reference does by default,
under torch.amp.autocast with a GradScaler (float16 on a GPU), to compare with
`snn bench train --device cuda --amp fp16`. PyTorch lets cuDNN's float32 convolutions use TF32
tensor cores by default (torch.backends.cudnn.allow_tf32); --tf32 0 turns that off, to compare
with `snn bench train --device cuda --amp 0` (and the default, 1, with `... --amp 0 --tf32`).
cuDNN runs as the reference's main.py sets it (deterministic algorithms, no benchmark mode);
--deterministic 0 and --cudnn-benchmark 1 loosen that.

Prints one JSON object with samples_per_second (median over --steps timed steps after
--warmup), like `snn bench train --json`.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def expanded_topology(snn, name, dataset, steps):
    """The full topology string of a named model, as `snn model --json` reports it."""
    out = subprocess.run([snn, "model", "--topology", name, "--dataset", dataset, "--T", str(steps), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def stand_in_for_missing_loggers():
    """The reference's modules import tensorboardX's SummaryWriter and tqdm for their training
    logs, which a benchmark never writes. Where either is missing (the lent GPU machines' Python
    has no tensorboardX), a stand-in module lets the import pass; using it raises."""
    import types

    for module, name in (("tensorboardX", "SummaryWriter"), ("tqdm", "tqdm")):
        try:
            __import__(module)
        except ImportError:
            def missing(*_args, _module=module, **_kwargs):
                raise RuntimeError(f"{_module} is not installed (a stand-in of scripts/bench_reference.py)")
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, missing)
            sys.modules[module] = stand_in
            print(f"bench_reference: {module} is not installed; the reference imports it for logs, a stand-in takes its place",
                  file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reference-dir", required=True)
    p.add_argument("--snn", default=".build/release/snn", help="the snn binary, to expand named models")
    p.add_argument("--topology", default="VGGSNN")
    p.add_argument("--dataset", default="DVSCIFAR10")
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--event-density", type=float, default=0.2,
                   help="event data sets: the fraction of ones in the binary input frames (as snn bench train)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: the cores, as snn uses)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--amp", type=int, default=0, help="1: the reference's mixed precision (autocast and a GradScaler)")
    p.add_argument("--tf32", type=int, default=1, help="0: no TF32 in cuDNN's float32 convolutions (1: PyTorch's default)")
    p.add_argument("--deterministic", type=int, default=1,
                   help="cuDNN's deterministic algorithms only (1: as the reference's main.py sets them; SwiftSNN "
                        "keeps the fastest deterministic one too)")
    p.add_argument("--cudnn-benchmark", type=int, default=0,
                   help="1: let cuDNN time its algorithms for each shape (0: as the reference's main.py)")
    args = p.parse_args()
    torch.backends.cudnn.allow_tf32 = bool(args.tf32)
    torch.backends.cudnn.deterministic = bool(args.deterministic)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    torch.set_num_threads(args.threads or len(__import__("os").sched_getaffinity(0)))

    sys.path.insert(0, args.reference_dir)
    stand_in_for_missing_loggers()
    from function import TRT_Loss  # noqa: E402  (the reference's own code)
    from model import SNN  # noqa: E402

    info = expanded_topology(args.snn, args.topology, args.dataset, args.T)
    shape = tuple(info["input_shape"])
    classes = info["classes"]
    event = shape[0] == 2
    torch.manual_seed(0)
    model = SNN(info["topology"], args.T, shape, 0.0, "tdBN", 1.0, 0.0, 2.0, "triangle", 1.0,
                expend_time=not event, init=True)
    model.to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device=device.type) if args.amp else None
    criterion = torch.nn.CrossEntropyLoss()
    n = args.batch_size
    # Binary event frames at the given density, or normalised images.
    x = ((torch.rand(n, args.T, *shape) < args.event_density).float() if event else torch.randn(n, *shape)).to(device)
    y = torch.randint(0, classes, (n,)).to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            outputs = model(x, True)  # [N, T, K]
            loss = TRT_Loss(model, outputs, y, criterion, 0.5, 5e-5, 1e-5, 0.05)
            loss.backward()
            optimizer.step()
        else:
            with torch.amp.autocast(device_type=device.type):
                outputs = model(x, True)
                loss = TRT_Loss(model, outputs, y, criterion, 0.5, 5e-5, 1e-5, 0.05)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if on_gpu:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"samples_per_second": round(n / median, 2), "step_seconds_median": round(median, 4),
              "peak_rss_mib": round(peak), "event_density": args.event_density if event else 0,
              "topology": args.topology, "dataset": args.dataset, "T": args.T, "batch_size": n,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "implementation": "reference",
              "device": str(device), "amp": bool(args.amp), "tf32": bool(args.tf32) and on_gpu,
              "cudnn_deterministic": bool(args.deterministic) and on_gpu, "cudnn_benchmark": bool(args.cudnn_benchmark) and on_gpu}
    if on_gpu:
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        result["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
