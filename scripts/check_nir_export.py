#!/usr/bin/env python3
"""End-to-end check of `snn export --format nir` against snnTorch and SpikingJelly.

    python3 scripts/check_nir_export.py [--snn .build/release/snn] [--workdir DIR] [--json]

For each network below: a checkpoint of a short synthetic run (`snn train --max-steps 2`), its
weights (`snn convert`) with every batch norm's shift raised so that every layer fires on the
test input (a freshly trained network's deep layers are often silent, and a silent layer proves
nothing), random event frames (`input` [8, 4, 2, 32, 32], 30 % ones), SwiftSNN's per-step readout
of them (`snn forward`, evaluation mode), the NIR file (`snn export`), and then
`scripts/check_nir_simulators.py`, which imports the file into snnTorch and SpikingJelly (and a
NumPy executor of NIR's semantics), runs T steps per sample with batch 1 and compares readouts
and spikes. Every spiking node of the reference must fire on between 0.2 % and 99.8 % of its
values.

Exit status 0 when every network passes in every simulator, 1 otherwise, 2 when a package is
missing (pip install torch snntorch spikingjelly nirtorch==2.6 nir).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

CASES = [
    # (name, topology, export flags)
    ("plain, max pool", "CONV-8-3-1-1_CONVAP-8-3-1-1_FC-16_L-8", ["--portable"]),
    ("padded max pool", "CONV-8-3-1-1-3-2-1_CONVAP-8-3-1-1_L-8", ["--portable"]),
    ("ResNet-19-style blocks", "CONVNP-8-3-1-1_RES-8-3=3-1=1-1=1_RES-16-3=3-2=1-1=1_L-8", []),
    ("SEW ADD", "CONV-8-3-1-1_SEWRES~ADD-8-3=3-1=1-1=1_SEWRES~ADD-8-3=3-1=1-1=1_L-8", ["--portable"]),
    ("SEW AND, IAND", "CONVNP-8-3-1-1_SEWRES~AND-8-3=3-1=1-1=1_SEWRES~IAND-16-3=3-2=1-1=1_L-8", ["--portable"]),
]
SCRIPTS = os.path.dirname(os.path.abspath(__file__))


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def case(snn, work, index, topology, flags, rng):
    folder = os.path.join(work, f"case{index}")
    run([snn, "train", "--synthetic-samples", "64", "--batch_size", "32", "--T", "4", "--topology", topology,
         "--max-steps", "2", "--output", folder])
    result = os.path.join(folder, "result")
    checkpoint = os.path.join(result, os.listdir(result)[0], "weights", "last.safetensors")
    weights = os.path.join(folder, "weights.safetensors")
    run([snn, "convert", checkpoint, weights])
    tensors = load_file(weights)
    for key in list(tensors):
        # Batch norm's shift (β) of every conv: raised so the neuron after it fires now and then.
        if key.endswith(".bias") and key.replace(".bias", ".running_mean") in tensors:
            tensors[key] = (tensors[key] + rng.uniform(0.3, 0.8, tensors[key].shape)).astype(np.float32)
        # FC layers (no batch norm): wider weights, for the same reason.
        if key.endswith("fc.module.weight"):
            tensors[key] = (tensors[key] * 4).astype(np.float32)
    save_file(tensors, weights)
    inputs = os.path.join(folder, "input.safetensors")
    save_file({"input": (rng.random((8, 4, 2, 32, 32)) < 0.3).astype(np.float32)}, inputs)
    expected = os.path.join(folder, "expected.safetensors")
    run([snn, "forward", "--topology", topology, "--T", "4", "--weights", weights, "--input", inputs, "--output", expected])
    graph = os.path.join(folder, "net.nir")
    run([snn, "export", weights, graph, "--topology", topology, "--input-shape", "2,32,32", "--T", "4"] + flags)
    check = subprocess.run([sys.executable, os.path.join(SCRIPTS, "check_nir_simulators.py"), "--nir", graph,
                            "--input", inputs, "--expected", expected, "--json"], capture_output=True, text=True)
    if check.returncode == 2:
        print(check.stderr or check.stdout, file=sys.stderr)
        sys.exit(2)
    try:
        return json.loads(check.stdout)
    except json.JSONDecodeError:
        sys.exit(f"check_nir_simulators.py gave no JSON ({check.returncode}):\n{check.stdout}{check.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snn", default=os.path.join(SCRIPTS, "..", ".build", "release", "snn"))
    parser.add_argument("--workdir")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="snn-nir-check-")
    rng = np.random.default_rng(0)
    rows, ok = [], True
    for index, (name, topology, flags) in enumerate(CASES):
        result = case(args.snn, work, index, topology, flags, rng)
        rates = result["simulators"][result["reference"]].get("spike_rate", {})
        silent = {k: v for k, v in rates.items() if not 0.002 < v < 0.998}
        for simulator, r in result["simulators"].items():
            passed = r.get("pass", False) and not silent
            ok = ok and passed
            rows.append({"network": name, "topology": topology, "flags": flags, "simulator": simulator,
                         "version": r.get("version"), "status": r.get("status"),
                         "readout_max_abs_diff": r.get("readout_max_abs_diff"),
                         "equal_spikes": r.get("spike_agreement_vs_reference"),
                         "rates": [min(rates.values(), default=0), max(rates.values(), default=0)],
                         "silent": sorted(silent), "pass": passed})
    if args.json:
        print(json.dumps({"workdir": work, "rows": rows, "pass": ok}, indent=1))
    else:
        print(f"{'network':24} {'simulator':20} {'max |Δ| readout':>16} {'equal spikes':>13}  rates")
        for r in rows:
            diff = "-" if r["readout_max_abs_diff"] is None else f"{r['readout_max_abs_diff']:.2e}"
            equal = "-" if r["equal_spikes"] is None else f"{100 * r['equal_spikes']:.3f} %"
            simulator = r["simulator"] + (f" {r['version']}" if r["version"] else "")
            note = "" if r["pass"] else ("  FAIL" + (f" silent: {', '.join(r['silent'])}" if r["silent"] else f" ({r['status']})"))
            print(f"{r['network']:24} {simulator:20} {diff:>16} {equal:>13}  {r['rates'][0]:.3f}–{r['rates'][1]:.3f}{note}")
        print(f"work folder: {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
