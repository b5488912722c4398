#!/usr/bin/env python3
"""Golden values for SwiftSNN's PyTorch interoperability tests, computed by the TRT reference code itself.

Usage:
    python3 scripts/make_interop_fixtures.py [OUT_DIR] [--reference /tmp/trt-ref] [--cases small|vggsnn|all]
    python3 scripts/make_interop_fixtures.py --check-load TOPOLOGY C,H,W FILE.safetensors

The reference code (github ZBX05/Temporal-Regularization-Training: model.py, module.py, neuron.py,
function.py) is imported from --reference, never copied. For each case it builds the reference's
`SNN`, moves BatchNorm away from its initial state (random gamma/beta, running statistics from three
training-mode batches), and writes into OUT_DIR/<case>/:

    weights.safetensors   the state dict under the reference's names (what `snn forward --weights` reads)
    weights.pth           the same state dict as torch.save writes it
    expected.safetensors  input, labels, output.<mode> [N, T, K], loss.<mode>.<loss> (scalar) and
                          grad.<mode>.<loss>.<parameter> for modes train/eval and the losses of case.json
    case.json             topology, T, input shape, neuron flags, the `snn forward` flags of every loss,
                          and the smallest distance of a membrane potential from the threshold (a spike
                          that sits closer than float32 rounding could flip in another implementation)

The small cases also get checkpoint.pth (the reference's checkpoint dict around the state dict, with Adam
state), weights_dataparallel.pth (keys prefixed 'module.') and weights_zip64.pth (weights.pth with ZIP64
records, as torch writes past 4 GiB; torch.load reads it back); OUT_DIR/keys.json lists the reference's
state-dict keys and shapes for many topologies. Default OUT_DIR: Tests/SNNTrainingTests/Fixtures/interop.
The VGGSNN case (37 MB of weights) is not committed; the slow tests (SNN_SLOW_TESTS=1) run
`--cases vggsnn` into a temporary folder when torch is available.
"""
import argparse
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

# The losses every case is checked with: (name, `snn forward` flags, reference call).
LOSSES = {
    "sdt": ["--trtloss", "0"],
    "sdt_mse": ["--trtloss", "0", "--criterion", "MSE"],
    "tet": ["--tetloss", "1", "--loss_lambda", "0.1", "--loss_means", "0.8"],
    "tet_mse": ["--trtloss", "0", "--tetloss", "1", "--criterion", "MSE", "--loss_lambda", "0.1", "--loss_means", "0.8"],
    "trt": ["--trtloss", "1", "--loss_lambda", "0.001", "--loss_decay", "0.5", "--loss_epsilon", "1e-5", "--loss_eta", "0.05"],
}

CASES = {
    # The topology on static CIFAR-like images, repeated over T by the model.
    "convnp": dict(topology="CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", T=3, N=4, frame=(3, 8, 8), static=True,
                   neuron=dict(tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate_type="triangle", surrogate_param=1.0),
                   losses=["sdt", "sdt_mse", "tet", "tet_mse", "trt"],
                   grad_modes={"train": ["sdt", "sdt_mse", "tet", "tet_mse", "trt"], "eval": ["trt"]}),
    # Residual, SEW and FC blocks on an event-like sequence, soft reset and the sigmoid surrogate.
    "residual": dict(topology="CONV-8-3-1-1_RES-8-3=3-1=1-1=1_SEWRES~ADD-16-3=3-2=1-1=1_FC-16_L-5", T=3, N=3, frame=(2, 8, 8),
                     static=False,
                     neuron=dict(tau=1.5, v_threshold=0.8, v_reset=-1.0, surrogate_type="sigmoid", surrogate_param=4.0),
                     losses=["sdt", "tet", "trt"], grad_modes={"train": ["sdt", "tet", "trt"], "eval": ["sdt"]}),
    # The paper's CIFAR10-DVS network (not committed: 37 MB of weights).
    "vggsnn": dict(topology="VGGSNN", T=2, N=2, frame=(2, 48, 48), static=False,
                   neuron=dict(tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate_type="triangle", surrogate_param=1.0),
                   losses=["sdt", "tet", "trt"], grad_modes={"train": ["sdt", "tet", "trt"], "eval": ["trt"]}),
}

VGGSNN = "CONVNP-64-3-1-1_CONVAP-128-3-1-1_CONVNP-256-3-1-1_CONVAP-256-3-1-1_CONVNP-512-3-1-1_CONVAP-512-3-1-1_CONVNP-512-3-1-1_CONVAP-512-3-1-1_L-10"
RESNET19 = ("CONVNP-64-3-1-1_RES-128-3=3-1=1-1=1_RES-128-3=3-1=1-1=1_RES-128-3=3-1=1-1=1_RES-256-3=3-2=1-1=1_RES-256-3=3-1=1-1=1_"
            "RES-256-3=3-1=1-1=1_RES-512-3=3-2=1-1=1_RES-512-3=3-1=1-1=1-_FC-256_L-10")

# Topologies whose state-dict key names and shapes keys.json records: (topology, norm, frame).
KEY_TOPOLOGIES = [
    ("CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "tdBN", (3, 8, 8)),
    ("CONVNP-16-3-1-1_CONVAP-32-3-1-1_L-10", "No", (3, 8, 8)),
    ("CONV-8-3-1-1-3-2-1_CONVAP-8-3-2-1_FC-12_FC-7_L-3", "tdBN", (2, 16, 16)),
    ("CONVEN-8-3-1-1_CONV-16-3-1-1_L-4", "tdBN", (3, 8, 8)),
    ("CONVEN-8-3-1-1_CONV-16-3-1-1_L-4", "No", (3, 8, 8)),
    ("CONV-8-3-1-1_RES-8-3=3-1=1-1=1_RES-16-3=3-2=1-1=1_FC-16_L-5", "tdBN", (2, 8, 8)),
    ("CONV-8-3-1-1_RES-16-3=3-2=1-1=1_L-5", "No", (2, 8, 8)),
    ("CONV-8-3-1-1_SEWRES~ADD-8-3=3-1=1-1=1_SEWRES~IAND-16-3=3-2=1-1=1_SEWRES~AND-16-3=3-1=1-1=1_L-5", "tdBN", (2, 8, 8)),
    ("CONV-8-3-1-1_SEWRES~ADD-16-3=3-2=1-1=1_L-5", "No", (2, 8, 8)),
    ("FC-20_L-4", "tdBN", (1, 4, 4)),
    (VGGSNN, "tdBN", (2, 48, 48)),
    (RESNET19, "tdBN", (3, 32, 32)),
]


def import_reference(path):
    sys.path.insert(0, path)
    try:
        import function  # noqa: F401  (tqdm and tensorboardX are only used by its analyses)
    except ImportError:
        import types
        for name in ("tqdm", "tensorboardX"):
            stub = types.ModuleType(name)
            stub.tqdm = lambda x, *a, **k: x
            stub.SummaryWriter = object
            sys.modules.setdefault(name, stub)
    import function
    import model
    import neuron
    return model.SNN, function, neuron


def build(SNN, topology, T, frame, neuron, norm="tdBN", static=True):
    v_reset = None if neuron["v_reset"] < 0 else neuron["v_reset"]
    topology = VGGSNN if topology == "VGGSNN" else topology
    return SNN(topology, T, tuple(frame), 0.0, norm, neuron["v_threshold"], v_reset, neuron["tau"],
               neuron["surrogate_type"], neuron["surrogate_param"], static, True)


def threshold_margin(model, neuron_module, x):
    """The smallest |h_t - v_th| over every neuron, timestep and sample of one forward pass."""
    margins = []

    def hook(module, inputs, output):
        X = inputs[0].detach()
        mem = 0
        for t in range(X.shape[1]):
            mem = mem / module.tau + X[:, t]
            margins.append((mem - module.v_threshold).abs().min().item())
            spike = (mem - module.v_threshold > 0).float()
            mem = mem - spike * module.v_threshold if module.v_reset is None else (1 - spike) * mem + module.v_reset * spike

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, neuron_module.LIFNode)]
    with torch.no_grad():
        model(x, True)
    for h in handles:
        h.remove()
    return min(margins)


def loss_value(function, name, model, output, labels, classes):
    """The reference's loss for `name`, exactly as train.py calls it."""
    if name == "sdt":
        return F.cross_entropy(output.mean(1), labels)
    if name == "sdt_mse":
        return F.mse_loss(output.mean(1), F.one_hot(labels, classes).float())
    flags = dict(zip(LOSSES[name][::2], LOSSES[name][1::2]))
    if name in ("tet", "tet_mse"):
        # train.py passes its criterion; MSE is against one-hot targets.
        criterion = F.cross_entropy if name == "tet" else (lambda o, y: F.mse_loss(o, F.one_hot(y, classes).float()))
        return function.TET_Loss(output, labels, criterion, float(flags["--loss_means"]), float(flags["--loss_lambda"]))
    if name == "trt":
        return function.TRT_Loss(model, output, labels, F.cross_entropy, float(flags["--loss_decay"]),
                                 float(flags["--loss_lambda"]), float(flags["--loss_epsilon"]), float(flags["--loss_eta"]))
    raise ValueError(name)


def make_case(name, spec, out, SNN, function, neuron_module, small):
    from safetensors.torch import save_file
    torch.manual_seed(1234)
    model = build(SNN, spec["topology"], spec["T"], spec["frame"], spec["neuron"], static=spec["static"])
    N, T, frame = spec["N"], spec["T"], spec["frame"]
    classes = model.layers[-1].module.out_features

    def sample():
        if spec["static"]:
            return torch.randn(N, *frame)
        return (torch.rand(N, T, *frame) < 0.3).float() * torch.rand(N, T, *frame) * 2

    # BatchNorm away from its initial state: random affine parameters, running statistics of three batches.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.6, 1.6)
                m.bias.uniform_(-0.3, 0.3)
        model.train()
        for _ in range(3):
            model(sample(), True)
    # An input whose membrane potentials stay clear of the threshold in both modes.
    best = None
    for _ in range(40):
        x = sample()
        labels = torch.randint(0, classes, (N,))
        margin = min(threshold_margin(copy.deepcopy(model).train(), neuron_module, x),
                     threshold_margin(copy.deepcopy(model).eval(), neuron_module, x))
        if best is None or margin > best[0]:
            best = (margin, x, labels)
        if margin > 1e-4:
            break
    margin, x, labels = best

    os.makedirs(out, exist_ok=True)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, "weights.safetensors"))
    # What the reference's train.py saves: the OrderedDict of state_dict() itself, with its _metadata.
    torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
    expected = {"input": x.contiguous(), "labels": labels.to(torch.int64)}
    for mode in ("train", "eval"):
        net = copy.deepcopy(model)
        net.train(mode == "train")
        with torch.no_grad():
            expected[f"output.{mode}"] = net(x, True).contiguous()
        for loss in spec["losses"]:
            net = copy.deepcopy(model)
            net.train(mode == "train")
            net.zero_grad()
            value = loss_value(function, loss, net, net(x, True), labels, classes)
            expected[f"loss.{mode}.{loss}"] = value.detach().reshape(())
            if loss in spec["grad_modes"].get(mode, []):
                value.backward()
                for k, p in net.named_parameters():
                    g = p.grad if p.grad is not None else torch.zeros_like(p)
                    expected[f"grad.{mode}.{loss}.{k}"] = g.contiguous()
    save_file(expected, os.path.join(out, "expected.safetensors"))

    if small:
        # The reference's own checkpoint layout (train.py, --save_checkpoint 1) with Adam state.
        twin = copy.deepcopy(model)
        opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, eta_min=0, T_max=10)
        twin.train()
        step_loss = F.cross_entropy(twin(x), labels)
        step_loss.backward()
        opt.step()
        torch.save({"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                    "scheduler_state_dict": sched.state_dict(), "loss": step_loss.detach(), "scaler": None},
                   os.path.join(out, "checkpoint.pth"))
        torch.save(torch.nn.DataParallel(model).state_dict(), os.path.join(out, "weights_dataparallel.pth"))
        zip64_copy(os.path.join(out, "weights.pth"), os.path.join(out, "weights_zip64.pth"))
        reread = torch.load(os.path.join(out, "weights_zip64.pth"))
        assert all(torch.equal(reread[k], v) for k, v in state.items())

    meta = dict(topology=spec["topology"], T=T, N=N, frame=list(frame), static=spec["static"], classes=classes,
                neuron=spec["neuron"], losses={k: LOSSES[k] for k in spec["losses"]}, grad_modes=spec["grad_modes"],
                threshold_margin=margin, torch=torch.__version__)
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, threshold margin {margin:.2e} -> {out}")


def zip64_copy(source, target):
    """Rewrites a torch.save archive with ZIP64 records (what torch writes past 4 GiB): every central
    directory entry keeps its sizes and offset in a ZIP64 extra field, and a ZIP64 end record and locator
    precede the end record. Local headers and data are unchanged."""
    import struct
    import zipfile
    data = open(source, "rb").read()
    infos = zipfile.ZipFile(source).infolist()
    start = min(i.header_offset for i in infos)
    cd_offset = struct.unpack_from("<I", data, data.rindex(b"PK\x05\x06") + 16)[0]
    body, directory = data[:cd_offset], b""
    assert start == 0
    for i in infos:
        name = i.filename.encode()
        extra = struct.pack("<HHQQQ", 1, 24, i.file_size, i.compress_size, i.header_offset)
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, i.compress_type, 0, 0, i.CRC,
                                 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
    zip64_end = len(body) + len(directory)
    tail = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(infos), len(infos), len(directory), len(body))
    tail += struct.pack("<IIQI", 0x07064B50, 0, zip64_end, 1)
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(target, "wb") as f:
        f.write(body + directory + tail)
    assert [i.filename for i in zipfile.ZipFile(target).infolist()] == [i.filename for i in infos]


def check_load(topology, frame, path, reference):
    """Loads a safetensors file SwiftSNN exported into the reference's SNN, strictly."""
    from safetensors.torch import load_file
    SNN, _, _ = import_reference(reference)
    model = build(SNN, topology, 2, [int(v) for v in frame.split(",")], CASES["convnp"]["neuron"])
    model.load_state_dict(load_file(path), strict=True)
    print(f"{path}: loads into the reference's SNN({topology}) with strict=True")


def make_keys(out, SNN):
    neuron = CASES["convnp"]["neuron"]
    rows = []
    for topology, norm, frame in KEY_TOPOLOGIES:
        static = not topology.startswith("CONVEN")
        model = build(SNN, topology, 2, frame, neuron, norm=norm, static=static)
        rows.append(dict(topology=topology, norm=norm, frame=list(frame),
                         keys=[[k, list(v.shape)] for k, v in model.state_dict().items()],
                         parameters=sum(p.numel() for p in model.parameters())))
    with open(os.path.join(out, "keys.json"), "w") as f:
        json.dump(rows, f, indent=0)
    print(f"keys.json: {len(rows)} topologies")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=os.path.join(HERE, "..", "Tests", "SNNTrainingTests", "Fixtures", "interop"))
    parser.add_argument("--reference", default="/tmp/trt-ref", help="folder holding the reference's model.py")
    parser.add_argument("--cases", default="small", choices=["small", "vggsnn", "all"])
    parser.add_argument("--check-load", nargs=3, metavar=("TOPOLOGY", "C,H,W", "FILE"),
                        help="only load FILE (safetensors) into the reference's SNN strictly, and exit")
    args = parser.parse_args()
    if args.check_load:
        check_load(*args.check_load, args.reference)
        return
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    SNN, function, neuron_module = import_reference(args.reference)
    os.makedirs(args.out, exist_ok=True)
    names = {"small": ["convnp", "residual"], "vggsnn": ["vggsnn"], "all": list(CASES)}[args.cases]
    for name in names:
        make_case(name, CASES[name], os.path.join(args.out, name), SNN, function, neuron_module, small=name != "vggsnn")
    if args.cases != "vggsnn":
        make_keys(args.out, SNN)


if __name__ == "__main__":
    main()
