#!/usr/bin/env python3
"""Runs a NIR graph written by `snn export` in other simulators and compares their per-step readout
and spikes with SwiftSNN's.

Usage:

  python3 scripts/check_nir_simulators.py --nir model.nir --input x.safetensors \\
      --expected y.safetensors [--T 4] [--dt 1e-4] [--simulators numpy,snntorch,spikingjelly] \\
      [--fill-unsupported] [--readout-tolerance 1e-5] [--spike-agreement 0.999] [--json]

  --input     safetensors with the tensor 'input': [N,T,C,H,W] float32, or a static [N,C,H,W]
              image fed at every step.
  --expected  safetensors with the tensor 'output': [N,T,classes], SwiftSNN's per-step readout
              (`snn forward`), before the average over T.
  --T         steps per sample (default: the expected tensor's T, else the input's).
  --dt        the step of the forward-Euler mapping (default: the graph's metadata 'dt', else 1e-4).
  --fill-unsupported
              where an importer has no mapping for a node type this script can supply
              (Threshold, Scale), use this script's module for it, so that the importer's
              neurons can still be checked; the result names the filled types.
  --json      print one JSON object instead of the summary.

The graph is read with `nir.read` (type checking on). Each simulator runs T steps per sample with
batch 1 and its state reset between samples. For each one the script reports max |readout -
expected| over all samples, steps and classes, and the fraction of spikes (outputs of LIF, IF,
CubaLIF and Threshold nodes, every step) equal to those of the reference, the NumPy executor below.
A simulator passes with max |delta| <= 1e-5 and >= 99.9 % equal spikes (both can be set: a large
readout summed in another order may need a looser absolute tolerance).

Exit status: 0 all pass; 1 a check failed (a mismatch, or an importer that cannot express the
graph: that is the simulator's result, reported as such); 2 none failed but a simulator's package
is missing (the message says which one to pip install).

Simulators
----------
numpy: this script's executor of the NIR graph, with SwiftSNN's semantics (the exporter's):
  fan-in is summed; per step, in graph order, a LIF node computes h = v*beta + g*x + (1-beta)*v_leak
  with beta = 1 - dt/tau, g = r*dt/tau (each computed in float64, then rounded to float32: the
  exporter's tau = dt/(1-beta), r = 1/(1-beta) give back beta and g = 1 exactly), then spikes
  s = (h > v_threshold) and resets v = s ? v_reset : h, the same step; v starts at 0. An IF node
  computes h = v + (r*dt)*x the same way. Threshold is (x > threshold); SumPool2d and AvgPool2d
  pad with zeros (the average divides by the full kernel size). All in float32.

snntorch (snntorch.import_nir.import_from_nir, snnTorch 1.0.0, via nirtorch.nir_to_torch):
  - node types: Input, Output, Affine, Linear, Conv2d, Conv1d, Flatten, AvgPool2d, SumPool2d
    (nirtorch's default: torch.nn.LPPool2d(norm_type=1), which ignores padding), LIF, IF, CubaLIF,
    and an RNN subgraph (LIF/CubaLIF <-> Affine/Linear). No Threshold, no Scale, no Delay.
  - LIF -> snn.Leaky(beta = 1 - dt/tau, threshold = v_threshold / (r*dt/tau),
    reset_mechanism="zero", reset_delay=False, init_hidden=True) with dt fixed at 1e-4 whatever
    the graph says. v_leak must be 0; v_threshold and r*dt/tau must be uniform; v_reset is
    ignored (reset to 0). Per step: h = beta*v + x, s = (h - threshold > 0), v = s ? 0 : h: the
    exporter's semantics exactly when dt = 1e-4, v_reset = 0 and v_threshold > 0 (beta is rounded
    again in float32, 1 ulp at most). With another dt, beta and the input gain are wrong.
  - IF -> snn.Leaky(beta=0.9, threshold=v_threshold*r, reset "subtract", init_hidden=False) and
    asserts r == 1: the exporter's IF (r = 1/dt) is refused; with r = 1 it would leak and its
    (spike, mem) tuple output breaks the graph. No IF graph runs in snnTorch 1.0.0.
  - Conv2d: torch.nn.Conv2d(in_channels = weight.shape[1], groups=groups), which fails for
    depthwise convolutions (in_channels = 1 not divisible by groups).
  - Flatten(start_dim, end_dim) is applied to the batched tensor as is (start_dim=0 also flattens
    the batch): fine with batch 1 only.

spikingjelly (spikingjelly.activation_based.nir_exchange.import_from_nir, SpikingJelly 2.0.0, via
nirtorch.nir_to_torch; needs `pip install nirtorch`):
  - node types: Input, Output, Affine, Linear, Conv1d, Conv2d (groups = 1 only), AvgPool2d,
    SumPool2d (nirtorch's LPPool2d), Flatten (start/end dims shifted by one for the batch), IF,
    LIF, CubaLIF. No Threshold, no Scale.
  - LIF -> neuron.LIFNode(tau = tau/dt, decay_input = (r == 1), v_reset, v_threshold), dt given
    to the importer (this script passes --dt). r must be 1 or tau/dt (the exporter's
    r = 1/(1-beta) = tau/dt gives decay_input=False); v_leak must equal v_reset; tau, r,
    v_threshold, v_reset must be uniform. Per step: h = v - (v - v_reset)/tau + x,
    s = (h - v_threshold >= 0), v = s ? v_reset : h; v starts at v_reset.
    Two differences from the exporter's semantics: (1) the spike test is >=, so h == v_threshold
    spikes; (2) v*(1 - 1/tau) is computed as v - v/tau, which can differ by 1 ulp from v*beta.
  - IF -> neuron.IFNode(v_threshold, v_reset): requires r == 1/dt (the exporter's choice);
    h = v + x, s = (h >= v_threshold), hard reset; v starts at v_reset (SwiftSNN: 0).

Both importers (nirtorch 2.6) sum fan-in (several edges into one node) with torch.add, replace
'.' by '_' in node names (so 'a.b' and 'a_b' collide) and prefix Python keywords with 'nir_node_'.
Nodes named 'self', 'is_none' or 'initialized_state' break nirtorch's generated code; a '/' in a
name makes nir.write nest HDF5 groups that nir.read cannot read back.

Measured on scripts/make_nir_examples.py's graphs (4 samples, T = 4, 2x8x8 inputs):
  - with the exporter's mapping at dt = 1e-4, v_reset = 0: every graph both importers can load
    agrees exactly (max |delta readout| 0 against a torch loop, 100 % equal spikes), for
    tau_ref = 1.5, 2 and 3; with --fill-unsupported, the Threshold/Scale graphs too.
  - '>=' (SpikingJelly) only differs on exact ties h == v_threshold: none with float weights;
    with binary inputs and weights in multiples of 1/8 ('ties'), 98.75 % equal spikes and max
    |delta readout| 1.39. Writing v_threshold as the next float32 up makes SpikingJelly exact there
    (a '>' simulator then differs only on h == that value instead).
  - dt = 1e-3 in the file: snnTorch (fixed dt = 1e-4) agrees on 53-80 % of spikes.
  - v_reset = 0.2: snnTorch (resets to 0) 97.6-99.8 % equal spikes; SpikingJelly refuses LIF
    (v_leak != v_reset) and starts IF at v = v_reset: 97.97 %.
"""
import argparse
import contextlib
import copy
import importlib.metadata
import json
import sys

import numpy as np

READOUT_TOLERANCE = 1e-5
SPIKE_AGREEMENT = 0.999
SPIKING_TYPES = ("LIF", "IF", "CubaLIF", "Threshold")
FILLABLE_TYPES = ("Threshold", "Scale")


class Unsupported(Exception):
    """The simulator cannot express the graph."""


class Missing(Exception):
    """The simulator's package is not installed; the message names it."""


def type_name(node):
    return type(node).__name__


def predecessors(graph):
    preds = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        if src not in graph.nodes or dst not in graph.nodes:
            raise ValueError(f"edge ({src!r}, {dst!r}) names a node that is not in the graph")
        if src not in preds[dst]:
            preds[dst].append(src)
    return preds


def topological_order(graph):
    preds = predecessors(graph)
    order, done = [], set()
    while len(order) < len(graph.nodes):
        ready = [n for n in graph.nodes if n not in done and all(p in done for p in preds[n])]
        if not ready:
            raise Unsupported("the graph has a cycle (recurrent edges are not supported)")
        order.extend(ready)
        done.update(ready)
    return order


def sliding_windows(x, kernel, stride, padding, dilation=(1, 1)):
    """[C, H, W] -> [C, OH, OW, kh, kw] views of the zero-padded input."""
    (ph, pw), (kh, kw), (dh, dw) = padding, kernel, dilation
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    extent = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, extent, axis=(1, 2))
    return windows[:, ::stride[0], ::stride[1], ::dh, ::dw]


def pair(value):
    value = np.asarray(value).reshape(-1)
    return (int(value[0]), int(value[-1]))


def conv_padding(node):
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0)
        kh, kw = node.weight.shape[2:]
        dh, dw = pair(node.dilation)
        return ((kh - 1) * dh // 2, (kw - 1) * dw // 2)
    return pair(node.padding)


class NumpyExecutor:
    """The NIR graph in float32 NumPy with SwiftSNN's semantics (see the module docstring)."""

    name = "numpy"

    def __init__(self, graph, dt):
        self.graph, self.dt = graph, dt
        self.order = topological_order(graph)
        self.preds = predecessors(graph)
        self.ops = {}
        for name in self.order:
            node = graph.nodes[name]
            make = getattr(self, "_" + type_name(node), None)
            if make is None:
                raise Unsupported(f"node {name!r}: type {type_name(node)} is not implemented")
            self.ops[name] = make(name, node)
        self.outputs = [n for n in self.order if type_name(graph.nodes[n]) == "Output"]
        if len(self.outputs) != 1:
            raise Unsupported(f"expected one Output node, found {len(self.outputs)}")
        self.spiking = [n for n in self.order if type_name(graph.nodes[n]) in SPIKING_TYPES]
        self.reset()

    def reset(self):
        self.state = {}

    def step(self, x):
        values = {}
        for name in self.order:
            ins = [values[p] for p in self.preds[name]]
            total = None
            for v in ins:
                total = v if total is None else total + v
            values[name] = self.ops[name](x if total is None else total)
        return values[self.outputs[0]].reshape(-1), {n: values[n] for n in self.spiking}

    # One builder per NIR type: returns f(input) -> output.
    def _Input(self, name, node):
        return lambda x: np.asarray(x, dtype=np.float32)

    def _Output(self, name, node):
        return lambda x: x

    def _Affine(self, name, node):
        w, b = node.weight.astype(np.float32), node.bias.astype(np.float32)
        return lambda x: (w @ x.reshape(-1) + b).astype(np.float32)

    def _Linear(self, name, node):
        w = node.weight.astype(np.float32)
        return lambda x: (w @ x.reshape(-1)).astype(np.float32)

    def _Scale(self, name, node):
        s = node.scale.astype(np.float32)
        return lambda x: (x * s).astype(np.float32)

    def _Threshold(self, name, node):
        thr = node.threshold.astype(np.float32)
        return lambda x: (x > thr).astype(np.float32)

    def _Flatten(self, name, node):
        def flatten(x):
            nd = x.ndim
            start, end = node.start_dim % nd, node.end_dim % nd
            return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])
        return flatten

    def _Conv2d(self, name, node):
        w, b = node.weight.astype(np.float32), node.bias.astype(np.float32)
        co, cig, kh, kw = w.shape
        groups, stride, dilation = int(node.groups), pair(node.stride), pair(node.dilation)
        padding = conv_padding(node)
        wg = w.reshape(groups, co // groups, cig, kh, kw)

        def conv(x):
            win = sliding_windows(x, (kh, kw), stride, padding, dilation)
            _, oh, ow, _, _ = win.shape
            win = win.reshape(groups, cig, oh, ow, kh, kw)
            out = np.einsum("gchwij,gocij->gohw", win, wg).reshape(co, oh, ow)
            return (out + b[:, None, None]).astype(np.float32)
        return conv

    def _pool(self, node, average):
        kernel, stride, padding = pair(node.kernel_size), pair(node.stride), pair(node.padding)

        def pool(x):
            total = sliding_windows(x, kernel, stride, padding).sum(axis=(3, 4), dtype=np.float32)
            return (total / np.float32(kernel[0] * kernel[1]) if average else total).astype(np.float32)
        return pool

    def _SumPool2d(self, name, node):
        return self._pool(node, average=False)

    def _AvgPool2d(self, name, node):
        return self._pool(node, average=True)

    def _neuron(self, name, decay, gain, bias, threshold, reset):
        def neuron(x):
            v = self.state.get(name, np.zeros_like(threshold))
            h = v * decay
            h = h + (x if gain is None else gain * x)
            if bias is not None:
                h = h + bias
            s = h > threshold
            self.state[name] = np.where(s, reset, h).astype(np.float32)
            return s.astype(np.float32)
        return neuron

    def _LIF(self, name, node):
        ratio = self.dt / node.tau.astype(np.float64)
        decay = (1 - ratio).astype(np.float32)
        gain = (node.r.astype(np.float64) * ratio).astype(np.float32)
        bias = (ratio * node.v_leak).astype(np.float32)
        return self._neuron(name, decay, None if np.all(gain == 1) else gain,
                            None if np.all(bias == 0) else bias,
                            node.v_threshold.astype(np.float32), node.v_reset.astype(np.float32))

    def _IF(self, name, node):
        gain = (node.r.astype(np.float64) * self.dt).astype(np.float32)
        return self._neuron(name, np.float32(1), None if np.all(gain == 1) else gain, None,
                            node.v_threshold.astype(np.float32), node.v_reset.astype(np.float32))


# Node types each importer maps, read from its source (snntorch 1.0.0 import_nir.import_from_nir's
# node_map plus nirtorch 2.6's DEFAULT_MAP; SpikingJelly's _NodeMapper.map_dict is asked directly).
SNNTORCH_TYPES = {"Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "Flatten", "AvgPool2d",
                  "SumPool2d", "IF", "LIF", "CubaLIF", "NIRGraph"}


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def fill_module(node):
    import torch

    class Elementwise(torch.nn.Module):
        """x > threshold, or x * scale, on inputs whose trailing dimensions are the node's shape."""

        def __init__(self, kind, value):
            super().__init__()
            self.kind = kind
            self.register_buffer("value", torch.from_numpy(value.astype(np.float32)))

        def forward(self, x):
            if tuple(x.shape[x.dim() - self.value.dim():]) != tuple(self.value.shape):
                raise RuntimeError(f"{self.kind} of shape {list(self.value.shape)} got input {list(x.shape)}")
            return (x > self.value).to(x.dtype) if self.kind == "Threshold" else x * self.value

    if type_name(node) == "Threshold":
        return Elementwise("Threshold", node.threshold)
    return Elementwise("Scale", node.scale)


@contextlib.contextmanager
def nirtorch_defaults(types):
    """Adds this script's modules for `types` to nirtorch's default node map while importing."""
    import nir
    from nirtorch import nir_interpreter
    added = [getattr(nir, t) for t in types if getattr(nir, t) not in nir_interpreter.DEFAULT_MAP]
    for cls in added:
        nir_interpreter.DEFAULT_MAP[cls] = fill_module
    try:
        yield
    finally:
        for cls in added:
            del nir_interpreter.DEFAULT_MAP[cls]


def sanitized(name):
    import keyword
    name = name.replace(".", "_")
    return "nir_node_" + name if keyword.iskeyword(name) else name


class TorchImported:
    """A graph imported by a nirtorch-based importer: a torch.fx.GraphModule called per step as
    `output, state = module(x, state)`, with forward hooks recording the spiking nodes."""

    def __init__(self, name, graph, supported, importer, fill, reset_neurons=None):
        import torch
        self.name, self.torch = name, torch
        types = {type_name(n) for n in graph.nodes.values()}
        missing = sorted(types - supported)
        self.filled = sorted(t for t in missing if fill and t in FILLABLE_TYPES)
        left = [t for t in missing if t not in self.filled]
        if left:
            nodes = [n for n, node in graph.nodes.items() if type_name(node) in left]
            raise Unsupported(f"no mapping for node type(s) {', '.join(left)} (nodes {', '.join(nodes)})")
        with nirtorch_defaults(self.filled), contextlib.redirect_stdout(sys.stderr):
            try:
                self.module = importer(copy.deepcopy(graph))
            except (AssertionError, ValueError, NotImplementedError, TypeError, KeyError) as error:
                raise Unsupported(f"import failed: {type(error).__name__}: {error}") from error
        self.module.eval()
        self.reset_neurons = reset_neurons
        self.spiking = [n for n, node in graph.nodes.items() if type_name(node) in SPIKING_TYPES]
        self.recorded = {}
        for node in self.spiking:
            try:
                submodule = self.module.get_submodule(sanitized(node))
            except AttributeError:  # renamed by the importer (snnTorch's RNN subgraphs): not recorded
                continue
            submodule.register_forward_hook(self._recorder(node))
        self.notes = [f"{n}: nirtorch maps SumPool2d to LPPool2d, which ignores its padding {pair(node.padding)}"
                      for n, node in graph.nodes.items()
                      if type_name(node) == "SumPool2d" and any(pair(node.padding))]
        self.reset()

    def _recorder(self, node):
        def hook(module, inputs, output):
            spikes = output[0] if isinstance(output, tuple) else output
            self.recorded[node] = spikes.detach().cpu().numpy().astype(np.float32).reshape(-1)
        return hook

    def reset(self):
        self.state = None
        if self.reset_neurons:
            self.reset_neurons(self.module)

    def step(self, x):
        self.recorded = {}
        with self.torch.no_grad():
            out = self.module(self.torch.from_numpy(np.ascontiguousarray(x))[None], self.state)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Unsupported(f"the module returned {type(out).__name__}, not (output, state)")
        output, self.state = out
        if isinstance(output, tuple):
            output = output[0]
        return output.detach().cpu().numpy().astype(np.float32).reshape(-1), dict(self.recorded)


def build_snntorch(graph, dt, fill):
    if package_version("snntorch") is None:
        raise Missing("snnTorch is not installed: pip install snntorch nirtorch")
    if package_version("nirtorch") is None:
        raise Missing("snnTorch's NIR import needs nirtorch: pip install nirtorch")
    import snntorch
    from snntorch.import_nir import import_from_nir

    def reset_neurons(module):
        for m in module.modules():
            if isinstance(m, snntorch.SpikingNeuron):
                for attr in ("mem", "syn"):
                    value = getattr(m, attr, None)
                    if value is not None and hasattr(value, "shape"):
                        setattr(m, attr, value.new_zeros(0))

    sim = TorchImported("snntorch", graph, SNNTORCH_TYPES, import_from_nir, fill, reset_neurons)
    if not np.isclose(dt, 1e-4, rtol=1e-9, atol=0):
        sim.notes.append(f"snnTorch fixes dt at 1e-4 (graph dt = {dt:g}): its beta and input gain differ")
    for name, node in graph.nodes.items():
        if type_name(node) == "LIF" and np.any(node.v_reset != 0):
            sim.notes.append(f"{name}: snnTorch resets to 0, ignoring v_reset")
    return sim


def build_spikingjelly(graph, dt, fill):
    if package_version("spikingjelly") is None:
        raise Missing("SpikingJelly is not installed: pip install spikingjelly nirtorch")
    try:
        from spikingjelly.activation_based.nir_exchange import from_nir
    except ImportError as error:
        if package_version("nirtorch") is None:
            raise Missing("SpikingJelly's NIR import needs nirtorch: pip install nirtorch") from error
        raise Missing(f"SpikingJelly {package_version('spikingjelly')} has no usable NIR importer "
                      f"(spikingjelly.activation_based.nir_exchange: {error})") from error
    from nirtorch import nir_interpreter
    supported = {t.__name__ for t in from_nir._NodeMapper(dt).map_dict}
    supported |= {t.__name__ for t in nir_interpreter.DEFAULT_MAP}

    def importer(g):
        return from_nir.import_from_nir(g, dt=dt, step_mode="s")

    with contextlib.suppress(Exception):
        from spikingjelly.logger import logger
        logger.remove()
    sim = TorchImported("spikingjelly", graph, supported, importer, fill)
    sim.notes.append("SpikingJelly spikes on h >= v_threshold (NIR and SwiftSNN: h > v_threshold)")
    return sim


def run(sim, inputs, steps):
    """inputs [N,T,...] -> readout [N,T,K], spikes {node: [N,T,n]}."""
    readouts, spikes = [], {}
    for sample in inputs:
        sim.reset()
        per_step, per_node = [], {}
        for t in range(steps):
            out, recorded = sim.step(sample[t])
            per_step.append(out)
            for node, s in recorded.items():
                per_node.setdefault(node, []).append(s.reshape(-1))
        readouts.append(np.stack(per_step))
        for node, s in per_node.items():
            spikes.setdefault(node, []).append(np.stack(s))
    return np.stack(readouts), {node: np.stack(s) for node, s in spikes.items()}


def spike_agreement(a, b):
    """Fraction of equal spikes over the nodes recorded by both, and per node."""
    equal = total = 0
    per_node = {}
    for node in a:
        if node in b and a[node].shape == b[node].shape:
            same = int(np.count_nonzero(a[node] == b[node]))
            per_node[node] = same / a[node].size
            equal, total = equal + same, total + a[node].size
    return (equal / total if total else None), per_node


def load_tensors(args):
    from safetensors.numpy import load_file
    x = load_file(args.input)
    if "input" not in x:
        raise SystemExit(f"{args.input}: no tensor 'input' (found {sorted(x)})")
    y = load_file(args.expected)
    if "output" not in y:
        raise SystemExit(f"{args.expected}: no tensor 'output' (found {sorted(y)})")
    x, y = x["input"].astype(np.float32), y["output"].astype(np.float32)
    if y.ndim != 3:
        raise SystemExit(f"expected 'output' is {list(y.shape)}, not [N,T,classes]")
    steps = args.T or y.shape[1]
    if x.ndim == 4:
        x = np.repeat(x[:, None], steps, axis=1)
    elif x.ndim != 5:
        raise SystemExit(f"'input' is {list(x.shape)}, not [N,T,C,H,W] or [N,C,H,W]")
    if x.shape[1] < steps or y.shape[1] < steps or x.shape[0] != y.shape[0]:
        raise SystemExit(f"input {list(x.shape)} and expected {list(y.shape)} do not fit N and T = {steps}")
    return x[:, :steps], y[:, :steps], steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nir", required=True, help="the NIR file (snn export)")
    parser.add_argument("--input", required=True, help="safetensors with 'input' [N,T,C,H,W] or [N,C,H,W]")
    parser.add_argument("--expected", required=True, help="safetensors with 'output' [N,T,classes]")
    parser.add_argument("--T", type=int, default=None, help="steps (default: the expected tensor's)")
    parser.add_argument("--dt", type=float, default=None, help="default: the graph's metadata dt, else 1e-4")
    parser.add_argument("--simulators", default="numpy,snntorch,spikingjelly",
                        help="comma-separated subset of numpy, snntorch, spikingjelly")
    parser.add_argument("--fill-unsupported", action="store_true",
                        help="supply Threshold and Scale where an importer has no mapping")
    parser.add_argument("--readout-tolerance", type=float, default=READOUT_TOLERANCE,
                        help="largest max |readout - expected| that passes (default 1e-5)")
    parser.add_argument("--spike-agreement", type=float, default=SPIKE_AGREEMENT,
                        help="smallest fraction of equal spikes that passes (default 0.999)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import nir
    try:
        graph = nir.read(args.nir, type_check=True)
    except Exception as error:  # a file nir.read rejects fails the check for every simulator
        print(f"{args.nir}: nir.read failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    metadata = graph.metadata if isinstance(graph.metadata, dict) else {}
    dt = args.dt if args.dt is not None else float(metadata.get("dt", 1e-4))
    inputs, expected, steps = load_tensors(args)

    builders = {"numpy": lambda: NumpyExecutor(graph, dt),
                "snntorch": lambda: build_snntorch(graph, dt, args.fill_unsupported),
                "spikingjelly": lambda: build_spikingjelly(graph, dt, args.fill_unsupported)}
    names = [s.strip() for s in args.simulators.split(",") if s.strip()]
    unknown = [s for s in names if s not in builders]
    if unknown:
        parser.error(f"unknown simulator(s) {unknown}: choose from {sorted(builders)}")

    results, spikes = {}, {}
    for name in names:
        result = {"status": "ok", "version": package_version(name) if name != "numpy" else None}
        try:
            sim = builders[name]()
            result["filled"] = getattr(sim, "filled", [])
            result["notes"] = getattr(sim, "notes", [])
            readout, spikes[name] = run(sim, inputs, steps)
            if readout.shape != expected.shape:
                raise Unsupported(f"readout shape {list(readout.shape)} != expected {list(expected.shape)}")
            result["readout_max_abs_diff"] = float(np.max(np.abs(readout - expected))) if readout.size else 0.0
            result["spike_rate"] = {n: float(s.mean()) for n, s in spikes[name].items()}
        except Missing as error:
            result.update(status="missing", message=str(error))
        except Unsupported as error:
            result.update(status="unsupported", message=str(error))
        except Exception as error:  # an importer's module failing while running is its result too
            result.update(status="error", message=f"{type(error).__name__}: {error}")
        results[name] = result

    ran = [n for n in names if results[n]["status"] == "ok"]
    reference = "numpy" if "numpy" in ran else (ran[0] if ran else None)
    for name in ran:
        result = results[name]
        result["spike_agreement"] = {}
        for other in ran:
            if other != name:
                overall, per_node = spike_agreement(spikes[name], spikes[other])
                result["spike_agreement"][other] = overall
                if other == reference:
                    result["spike_agreement_per_node"] = per_node
        vs = result["spike_agreement"].get(reference) if name != reference else 1.0
        result["spike_agreement_vs_reference"] = vs
        spikes_ok = vs is None or vs >= args.spike_agreement
        result["pass"] = bool(result["readout_max_abs_diff"] <= args.readout_tolerance and spikes_ok)
    for name in names:
        results[name].setdefault("pass", False)

    failed = [n for n in names if results[n]["status"] in ("ok", "unsupported", "error") and not results[n]["pass"]]
    missing = [n for n in names if results[n]["status"] == "missing"]
    code = 1 if failed else 2 if missing else 0
    report = {"nir": args.nir, "dt": dt, "T": steps, "samples": int(inputs.shape[0]),
              "metadata": {k: (v.item() if hasattr(v, "item") else v) for k, v in metadata.items()},
              "nodes": {n: type_name(node) for n, node in graph.nodes.items()},
              "reference": reference, "tolerances": {"readout": args.readout_tolerance, "spikes": args.spike_agreement},
              "simulators": results, "exit_code": code}
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print_summary(report)
    return code


def print_summary(report):
    print(f"{report['nir']}: {len(report['nodes'])} nodes, T = {report['T']}, dt = {report['dt']:g}, "
          f"{report['samples']} samples; spikes compared with {report['reference'] or 'nothing'}")
    for name, r in report["simulators"].items():
        label = name + (f" {r['version']}" if r.get("version") else "")
        if r["status"] != "ok":
            print(f"  {label:20s} {r['status'].upper()}: {r['message']}")
        else:
            vs = r["spike_agreement_vs_reference"]
            spikes = "n/a" if vs is None else f"{100 * vs:.3f} %"
            others = ", ".join(f"{o} {100 * a:.3f} %" for o, a in r["spike_agreement"].items() if a is not None)
            print(f"  {label:20s} {'PASS' if r['pass'] else 'FAIL'}  max |d readout| "
                  f"{r['readout_max_abs_diff']:.3g}, equal spikes {spikes}" + (f" (vs {others})" if others else ""))
        if r.get("filled"):
            print(f"  {'':20s} filled by this script: {', '.join(r['filled'])}")
        for note in r.get("notes", []):
            print(f"  {'':20s} note: {note}")
    verdict = {0: "all pass", 1: "a check failed", 2: "a simulator is missing"}[report["exit_code"]]
    print(f"exit {report['exit_code']}: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
