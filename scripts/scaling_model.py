#!/usr/bin/env python3
"""Predicts data-parallel training speed on N nodes from one node's measured step.

    python3 scripts/scaling_model.py BENCH.json [BENCH.json ...] [--gbps 25,100] [--latency-us 10]
        [--backward-fraction 0.65] [--nodes 1,2,4,8,16,32,64]

Each BENCH.json is the output of `snn bench train --json` on one node (one process using every
core): its median step time T_c, its batch B and its gradient bytes S (4 bytes per parameter).

Model (a ring all-reduce, the algorithm of Open MPI's and NCCL's large all-reduces): the sum of S
bytes over N nodes takes 2(N-1) rounds, each sending S/N bytes over one link:

    T_ar(N) = 2 (N - 1) (alpha + S / (N beta))

with alpha the per-message latency (--latency-us) and beta the link bandwidth (--gbps, in
gigabits per second). Counted after the backward pass (no overlap), a step takes
T_c + T_ar(N); N nodes process N B samples per step. An all-reduce that overlaps the backward
pass (bucket by bucket, as PyTorch's DDP) would hide T_ar up to the backward pass's share of the
step (--backward-fraction of T_c): the table's last column says whether that would hide it.
"""
import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", nargs="+", help="snn bench train --json outputs")
    parser.add_argument("--gbps", default="25,100", help="link bandwidths in Gb/s")
    parser.add_argument("--latency-us", type=float, default=10.0, help="per-message latency alpha in microseconds")
    parser.add_argument("--backward-fraction", type=float, default=0.65, help="share of the step the backward pass takes")
    parser.add_argument("--nodes", default="1,2,4,8,16,32,64")
    args = parser.parse_args()
    nodes = [int(n) for n in args.nodes.split(",")]
    alpha = args.latency_us * 1e-6
    for path in args.bench:
        with open(path) as f:
            bench = json.load(f)
        step, batch = bench["step_seconds_median"], bench["batch_size"]
        size = bench.get("gradient_bytes") or 4 * bench["parameters"]
        print(f"{bench['topology']} on {bench['dataset']}, T={bench['T']}: one node {step:.3f} s per step of {batch} samples "
              f"({batch / step:.2f} samples/s), {size / 1e6:.1f} MB of gradients")
        for gbps in [float(g) for g in args.gbps.split(",")]:
            beta = gbps * 1e9 / 8
            print(f"  at {gbps:g} Gb/s, latency {args.latency_us:g} us:")
            print(f"  {'nodes':>6} {'all-reduce':>11} {'steps/s':>8} {'samples/s':>10} {'efficiency':>10}  overlap would hide it")
            for n in nodes:
                ar = 2 * (n - 1) * (alpha + size / (n * beta)) if n > 1 else 0.0
                rate = 1 / (step + ar)
                hidden = "yes" if ar <= args.backward_fraction * step else f"no (needs a step of {ar / args.backward_fraction:.3f} s or more)"
                print(f"  {n:>6} {ar * 1e3:>9.1f} ms {rate:>8.3f} {n * batch * rate:>10.1f} {step / (step + ar):>9.1%}  {hidden}")
        for gbps in [float(g) for g in args.gbps.split(",")]:
            n = max(nodes)
            below = 2 * (n - 1) * (alpha + size / (n * gbps * 1e9 / 8)) / args.backward_fraction
            print(f"  at {gbps:g} Gb/s an overlapped all-reduce on {n} nodes stays hidden while a step takes at least "
                  f"{below * 1e3:.0f} ms (this CPU's takes {step * 1e3:.0f} ms; a GPU's can take less)")

if __name__ == "__main__":
    sys.exit(main())
