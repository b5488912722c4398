#!/usr/bin/env python3
"""Writes small NIR graphs that follow `snn export`'s mapping, with inputs and expected readouts,
for scripts/check_nir_simulators.py.

Usage:

  python3 scripts/make_nir_examples.py OUTDIR [--tau 2.0] [--dt 1e-4] [--v_threshold 1] [--v_reset 0]
      [--seed 0] [--portable] [--only NAME,...]

For each example NAME it writes OUTDIR/NAME.nir, OUTDIR/NAME_input.safetensors ('input') and
OUTDIR/NAME_expected.safetensors ('output': [N,T,classes]). The expected readout comes from a
hand-written torch loop with SwiftSNN's semantics, written from the layer list, not from the NIR
file: per step h = v*beta + x (beta = float32(1/tau)), s = h > v_th, v = s ? v_reset : h, from
v = 0; max pooling of spikes is torch's max_pool2d; SEW ADD/AND/IAND are s + x, s*x, (1-s)*x.

--portable writes what snnTorch 1.0.0 and SpikingJelly 2.0.0 can import: each Threshold(theta)
becomes a LIF (beta = 2^-10, v_threshold half-way between two spike sums, v_reset 0), Scale(-1) a
1x1 Conv2d with weight -I, and a padded SumPool2d a Conv2d with a ones kernel per channel.

Examples (input 2x8x8, T = 4, 4 samples, 10 classes):
  conv_pool   Input -> Conv2d -> LIF -> SumPool2d -> Threshold(0) -> Flatten -> Affine -> Output
  resnet      conv -> LIF (x); conv -> LIF -> conv -> LIF with x as a second edge (fan-in) into the
              last conv's LIF; AvgPool2d -> Flatten -> Affine
  sew_add     SEW block: x + LIF(conv(LIF(conv x))) as two edges into the next conv
  sew_and     SEW AND (Threshold(1.5), two edges) and SEW IAND (Scale(-1) on s, plus x, into
              Threshold(0.5))
  if_neuron   conv_pool with tau = 1 (NIR IF, r = 1/dt)
  if_as_lif   the same neurons written as NIR LIF with tau = 2^26 dt, r = 2^26: the leak
              dt/tau = 2^-26 is below half an ulp, so in float32 it is the IF neuron exactly
  ties        conv_pool on binary inputs with weights in multiples of 1/8: many h == v_th exactly
  stem_pool   a stride-2 conv and a 3x3 stride-2 max pool with padding 1 (SumPool2d padding 1)
  grouped     a grouped convolution (groups = 2)
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

C, H, W, T, N, CLASSES = 2, 8, 8, 4, 4, 10


def layers_for(name, rng, ties=False):
    """A list of (node, op, params, inputs); the first input is 'input'."""
    def conv(ci, co, scale, stride=1, groups=1):
        w = rng.normal(0, scale, (co, ci // groups, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, co).astype(np.float32)
        if ties:
            w, b = np.round(w * 8) / 8, np.round(b * 8) / 8
        return dict(weight=w.astype(np.float32), bias=b.astype(np.float32), stride=stride, padding=1,
                    groups=groups)

    def affine(n):
        return dict(weight=rng.normal(0, 0.3, (CLASSES, n)).astype(np.float32),
                    bias=rng.normal(0, 0.1, CLASSES).astype(np.float32))

    if name in ("conv_pool", "if_neuron", "if_as_lif", "ties"):
        return [("conv1", "conv", conv(C, 4, 0.8), ["input"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("pool1", "maxpool", dict(kernel=2, stride=2, padding=0), ["lif1"]),
                ("flat", "flatten", {}, ["pool1"]),
                ("fc", "affine", affine(4 * 4 * 4), ["flat"])]
    if name == "stem_pool":
        return [("conv1", "conv", conv(C, 4, 0.8, stride=2), ["input"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("pool1", "maxpool", dict(kernel=3, stride=2, padding=1), ["lif1"]),
                ("flat", "flatten", {}, ["pool1"]),
                ("fc", "affine", affine(4 * 2 * 2), ["flat"])]
    if name == "grouped":
        return [("conv1", "conv", conv(C, 4, 0.8), ["input"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("conv2", "conv", conv(4, 4, 0.8, groups=2), ["lif1"]),
                ("lif2", "lif", {}, ["conv2"]),
                ("flat", "flatten", {}, ["lif2"]),
                ("fc", "affine", affine(4 * 8 * 8), ["flat"])]
    if name == "resnet":
        return [("conv0", "conv", conv(C, 4, 0.8), ["input"]),
                ("lif0", "lif", {}, ["conv0"]),
                ("conv1", "conv", conv(4, 4, 1.0), ["lif0"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("conv2", "conv", conv(4, 4, 0.6), ["lif1"]),
                ("lif2", "lif", {}, ["conv2", "lif0"]),
                ("pool", "avgpool", dict(kernel=2), ["lif2"]),
                ("flat", "flatten", {}, ["pool"]),
                ("fc", "affine", affine(4 * 4 * 4), ["flat"])]
    if name == "sew_add":
        return [("conv0", "conv", conv(C, 4, 0.8), ["input"]),
                ("lif0", "lif", {}, ["conv0"]),
                ("conv1", "conv", conv(4, 4, 0.6), ["lif0"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("conv2", "conv", conv(4, 4, 0.6), ["lif1"]),
                ("lif2", "lif", {}, ["conv2"]),
                ("conv3", "conv", conv(4, 4, 0.5), ["lif2", "lif0"]),  # SEW ADD: two edges
                ("lif3", "lif", {}, ["conv3"]),
                ("flat", "flatten", {}, ["lif3"]),
                ("fc", "affine", affine(4 * 8 * 8), ["flat"])]
    if name == "sew_and":
        return [("conv0", "conv", conv(C, 4, 0.8), ["input"]),
                ("lif0", "lif", {}, ["conv0"]),
                ("conv1", "conv", conv(4, 4, 0.6), ["lif0"]),
                ("lif1", "lif", {}, ["conv1"]),
                ("and1", "sew_and", {}, ["lif1", "lif0"]),
                ("conv2", "conv", conv(4, 4, 0.8), ["and1"]),
                ("lif2", "lif", {}, ["conv2"]),
                ("iand2", "sew_iand", {}, ["lif2", "and1"]),
                ("flat", "flatten", {}, ["iand2"]),
                ("fc", "affine", affine(4 * 8 * 8), ["flat"])]
    raise SystemExit(f"unknown example {name!r}")


def torch_forward(layers, x, decay, v_th, v_reset):
    """SwiftSNN's semantics straight from the layer list: x [N,T,C,H,W] -> readout [N,T,K]."""
    outputs = []
    for sample in torch.from_numpy(x):
        v, per_step = {}, []
        for t in range(sample.shape[0]):
            values = {"input": sample[t][None]}
            for node, op, p, ins in layers:
                a = sum(values[i] for i in ins)  # fan-in: summed
                if op == "conv":
                    y = F.conv2d(a, torch.from_numpy(p["weight"]), torch.from_numpy(p["bias"]),
                                 stride=p["stride"], padding=p["padding"], groups=p["groups"])
                elif op == "lif":
                    h = v.get(node, torch.zeros_like(a)) * decay + a
                    s = (h > v_th).float()
                    v[node] = torch.where(s > 0, torch.full_like(h, v_reset), h)
                    y = s
                elif op == "maxpool":
                    y = F.max_pool2d(a, p["kernel"], p["stride"], p["padding"])
                elif op == "avgpool":
                    y = F.avg_pool2d(a, p["kernel"])
                elif op == "flatten":
                    y = a.flatten(1)
                elif op == "affine":
                    y = a @ torch.from_numpy(p["weight"]).T + torch.from_numpy(p["bias"])
                elif op == "sew_and":
                    y = values[ins[0]] * values[ins[1]]
                elif op == "sew_iand":
                    y = (1 - values[ins[0]]) * values[ins[1]]
                values[node] = y
            per_step.append(y[0])
        outputs.append(torch.stack(per_step))
    return torch.stack(outputs).numpy()


def shapes(layers):
    """The output shape ([C,H,W] or [n], no batch) of each node, from one torch pass on zeros."""
    values = {"input": torch.zeros(1, C, H, W)}
    out = {"input": (C, H, W)}
    for node, op, p, ins in layers:
        a = values[ins[0]]
        if op == "conv":
            a = F.conv2d(a, torch.from_numpy(p["weight"]), torch.from_numpy(p["bias"]), stride=p["stride"],
                         padding=p["padding"], groups=p["groups"])
        elif op == "maxpool":
            a = F.max_pool2d(a, p["kernel"], p["stride"], p["padding"])
        elif op == "avgpool":
            a = F.avg_pool2d(a, p["kernel"])
        elif op == "flatten":
            a = a.flatten(1)
        elif op == "affine":
            a = a @ torch.from_numpy(p["weight"]).T
        values[node], out[node] = a, tuple(a.shape[1:])
    return out


def spike_bound(v_th):
    """SwiftSNN's test h - v_th > 0 on a float32 h is h > (the largest float32 <= v_th)."""
    bound = np.float32(v_th)
    return float(np.nextafter(bound, np.float32(-np.inf)) if float(bound) > v_th else bound)


def to_nir(layers, tau, dt, v_th, v_reset, if_as_lif=False, portable=False):
    """The exporter's mapping (scripts/check_nir_simulators.py's docstring); `portable` replaces the
    node types no importer maps (Threshold, Scale, padded SumPool2d) by LIF and Conv2d nodes."""
    import nir
    f32 = np.float32
    shape = shapes(layers)
    nodes = {"input": nir.Input(input_type={"input": np.array([C, H, W])})}
    edges = []

    def full(s, v):
        return np.full(s, v, dtype=f32)

    def lif(s, beta, threshold, reset):
        return nir.LIF(tau=full(s, dt / (1 - beta)), r=full(s, 1 / (1 - beta)), v_leak=full(s, 0),
                       v_threshold=full(s, threshold), v_reset=full(s, reset))

    def threshold(s, theta):
        # On sums of spikes (integers) with theta half-way between two of them, a LIF with
        # beta = 2^-10 spikes exactly when x > theta: what it carries over is at most 2^-10 |v|.
        return lif(s, 2.0**-10, theta, 0.0) if portable else nir.Threshold(threshold=full(s, theta))

    def conv(s_in, weight, stride, padding, bias=None):
        return nir.Conv2d(input_shape=s_in[1:], weight=weight, stride=(stride,) * 2, padding=(padding,) * 2,
                          dilation=(1, 1), groups=1, bias=np.zeros(weight.shape[0], f32) if bias is None else bias)

    for node, op, p, ins in layers:
        s = shape[node]
        src = list(ins)
        if op == "conv":
            # nir 1.0.8 types a Conv2d's input as weight.shape[1] channels, which rejects groups > 1:
            # a grouped convolution is written as its block-diagonal dense weight.
            w, g = p["weight"], p["groups"]
            co, cig = w.shape[:2]
            dense = np.zeros((co, cig * g) + w.shape[2:], f32)
            for i in range(g):
                rows = slice(i * co // g, (i + 1) * co // g)
                dense[rows, i * cig:(i + 1) * cig] = w[rows]
            nodes[node] = conv(shape[ins[0]], dense, p["stride"], p["padding"], p["bias"])
        elif op == "lif":
            if tau == 1 and if_as_lif:
                nodes[node] = nir.LIF(tau=full(s, dt * 2.0**26), r=full(s, 2.0**26), v_leak=full(s, 0),
                                      v_threshold=full(s, v_th), v_reset=full(s, v_reset))
            elif tau == 1:
                nodes[node] = nir.IF(r=full(s, 1 / dt), v_threshold=full(s, v_th), v_reset=full(s, v_reset))
            else:
                nodes[node] = lif(s, 1.0 / tau, v_th, v_reset)
        elif op == "maxpool":
            k, st, pad = p["kernel"], p["stride"], p["padding"]
            if portable and pad:  # nirtorch's SumPool2d (LPPool2d) ignores padding
                c = shape[ins[0]][0]
                ones = np.eye(c, dtype=f32)[:, :, None, None] * np.ones((k, k), f32)
                nodes[node + "_sum"] = conv(shape[ins[0]], ones, st, pad)
            else:
                nodes[node + "_sum"] = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([st, st]),
                                                     padding=np.array([pad, pad]))
            edges += [(i, node + "_sum") for i in src]
            src = [node + "_sum"]
            nodes[node] = threshold(s, 0.0 if not portable else 0.5)
        elif op == "avgpool":
            k = np.array([p["kernel"]] * 2)
            nodes[node] = nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0]))
        elif op == "flatten":
            nodes[node] = nir.Flatten(input_type={"input": np.array(shape[ins[0]])}, start_dim=0, end_dim=-1)
        elif op == "affine":
            nodes[node] = nir.Affine(weight=p["weight"], bias=p["bias"])
        elif op == "sew_and":
            nodes[node] = threshold(s, 1.5)
        elif op == "sew_iand":
            if portable:
                minus = -np.eye(s[0], dtype=f32)[:, :, None, None]
                nodes[node + "_not"] = conv(shape[ins[0]], minus, 1, 0)
            else:
                nodes[node + "_not"] = nir.Scale(scale=full(s, -1))
            edges.append((ins[0], node + "_not"))
            src = [node + "_not", ins[1]]
            nodes[node] = threshold(s, 0.5)
        edges += [(i, node) for i in src]
    last = layers[-1][0]
    nodes["output"] = nir.Output(output_type={"output": np.array(shape[last])})
    edges.append((last, "output"))
    metadata = {"dt": dt, "integration": "forward-euler", "source": "scripts/make_nir_examples.py",
                "tau": tau, "v_threshold": v_th, "v_reset": v_reset, "portable": int(portable)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--tau", type=float, default=2.0, help="tau_ref (beta = 1/tau); 1 makes IF nodes")
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--v_threshold", type=float, default=1.0)
    parser.add_argument("--v_reset", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--portable", action="store_true",
                        help="write Threshold as LIF (beta = 2^-10), Scale(-1) and padded SumPool2d as Conv2d")
    parser.add_argument("--only", default="conv_pool,resnet,sew_add,sew_and,if_neuron,if_as_lif,ties,"
                                          "stem_pool,grouped")
    args = parser.parse_args()

    import nir
    from safetensors.numpy import save_file
    os.makedirs(args.outdir, exist_ok=True)
    for name in args.only.split(","):
        rng = np.random.default_rng([args.seed, sum(map(ord, name))])
        tau = 1.0 if name in ("if_neuron", "if_as_lif") else args.tau
        ties = name == "ties"
        layers = layers_for(name, rng, ties=ties)
        if ties:  # binary event frames, one per step
            x = (rng.random((N, T, C, H, W)) < 0.4).astype(np.float32)
        else:  # a static, normalised image
            x = rng.normal(0, 1, (N, C, H, W)).astype(np.float32)
        x_steps = np.repeat(x[:, None], T, axis=1) if x.ndim == 4 else x
        decay = float(np.float32(1 / tau))
        v_th = spike_bound(args.v_threshold)  # exported as is: h > v_th in float32 is SwiftSNN's test
        expected = torch_forward(layers, x_steps, decay, v_th, args.v_reset)
        graph = to_nir(layers, tau, args.dt, v_th, args.v_reset, if_as_lif=name == "if_as_lif",
                       portable=args.portable)
        path = os.path.join(args.outdir, name)
        nir.write(path + ".nir", graph)
        save_file({"input": x}, path + "_input.safetensors")
        save_file({"output": expected.astype(np.float32)}, path + "_expected.safetensors")
        print(f"{path}.nir: {len(graph.nodes)} nodes, input {list(x.shape)}, expected {list(expected.shape)}")


if __name__ == "__main__":
    main()
