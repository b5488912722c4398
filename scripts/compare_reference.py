#!/usr/bin/env python3
"""SwiftSNN against the reference PyTorch code: whole TRT training steps, both sides in one run,
interleaved, several rounds. This is the command behind the README's comparison table.

  python3 scripts/compare_reference.py --reference-dir DIR [--rounds 3] [--models vggsnn resnet19]

Each round runs `snn bench train --json` and `scripts/bench_reference.py` (the reference's own
SNN class and TRT_Loss, Adam, torch threads = cores) once per model, one after the other, each
in a fresh process, on the same shapes and the same kind of input (binary event frames at 20%
density for VGGSNN, normal images for ResNet-19). It prints every round and a table of medians:
samples/s, their ratio, and peak resident memory of each side. Needs PyPI's torch and a checkout
of ZBX05/Temporal-Regularization-Training; `make release` builds the snn binary.
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys

MODELS = {
    "vggsnn": ["--topology", "VGGSNN", "--dataset", "DVSCIFAR10", "--T", "10", "--batch_size", "16"],
    "resnet19": ["--topology", "ResNet-19", "--dataset", "CIFAR10", "--T", "4", "--batch_size", "16"],
}


def run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # Say which side failed and why (a missing torch, a wrong checkout).
        sys.exit(f"compare_reference: {' '.join(command)} exited with {done.returncode}:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_flags():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown"
    return "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference-dir", required=True)
    p.add_argument("--snn", default=".build/release/snn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = p.parse_args()

    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--json"]
    results = {m: {"snn": [], "reference": []} for m in args.models}
    for r in range(args.rounds):
        for m in args.models:
            ours = run([args.snn, "bench", "train", *MODELS[m], *common])
            theirs = run([sys.executable, "scripts/bench_reference.py", "--reference-dir", args.reference_dir,
                          "--snn", args.snn, *MODELS[m], *common[:-1]])
            results[m]["snn"].append(ours)
            results[m]["reference"].append(theirs)
            print(f"round {r + 1} {m}: SwiftSNN {ours['samples_per_second']} samples/s, {ours['peak_rss_mib']} MiB; "
                  f"reference {theirs['samples_per_second']} samples/s, {theirs['peak_rss_mib']} MiB", flush=True)

    print(f"\n{platform.processor() or platform.machine()}, {cpu_flags()}, medians of {args.rounds} interleaved rounds "
          f"({args.steps} timed steps after {args.warmup} warm-up each)")
    print("| model | SwiftSNN samples/s | reference samples/s | ratio | SwiftSNN peak MiB | reference peak MiB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for m in args.models:
        ours = statistics.median(x["samples_per_second"] for x in results[m]["snn"])
        theirs = statistics.median(x["samples_per_second"] for x in results[m]["reference"])
        our_mem = statistics.median(x["peak_rss_mib"] for x in results[m]["snn"])
        their_mem = statistics.median(x["peak_rss_mib"] for x in results[m]["reference"])
        print(f"| {m} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}× | {our_mem:.0f} | {their_mem:.0f} | "
              f"{our_mem / their_mem:.2f}× |")


if __name__ == "__main__":
    main()
