import SNNTensor
import Testing

/// How two devices' results are compared.
public enum Comparison: Sendable, CustomStringConvertible {
    /// Every element within an elementwise tolerance.
    case elementwise(Tolerance)
    /// Every element within `tolerance · max |expected|` (accumulating ops).
    case relativeToMaxMagnitude(Double)

    public var description: String {
        switch self {
        case .elementwise(let t): return t.description
        case .relativeToMaxMagnitude(let t): return "\(t) of max |expected|"
        }
    }

    @discardableResult
    func assert(_ actual: Tensor, _ expected: Tensor, _ comment: String, sourceLocation: SourceLocation) -> Bool {
        switch self {
        case .elementwise(let t): return assertClose(actual, expected, t, comment, sourceLocation: sourceLocation)
        case .relativeToMaxMagnitude(let t):
            return assertClose(actual, expected, relativeToMaxMagnitude: t, comment, sourceLocation: sourceLocation)
        }
    }
}

/// Runs `f` on copies of `inputs` on `device` and on `baseline`, and records an issue at the
/// caller unless the outputs agree and, after `backward` with one random seed tensor (the same
/// values on both), so do the gradients of every input in `wrt`.
///
/// Ops are called through their public front ends, so this tests everything a user sees:
/// validation, views, the backend kernels and the gradient rules.
///
/// - Parameters:
///   - inputs: the inputs, usually float32 (their values are copied to each device).
///   - wrt: inputs that require a gradient (all floating-point inputs when `nil`).
///   - output: how the forward results are compared.
///   - gradients: how the input gradients are compared (defaults to `output`).
public func expectDevicesAgree(
    _ inputs: [Tensor], on device: Device, baseline: Device = .reference, wrt: [Int]? = nil,
    output: Comparison, gradients: Comparison? = nil, seed: UInt64 = 99, _ comment: String = "",
    sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
) {
    let differentiable = Set(wrt ?? inputs.indices.filter { inputs[$0].dtype.isFloatingPoint })
    let label = comment.isEmpty ? "" : "\(comment): "
    func run(on d: Device) -> (Tensor, [Tensor?]) {
        let leaves = inputs.indices.map { inputs[$0].leafCopy(on: d, requiresGrad: differentiable.contains($0)) }
        let y = f(leaves)
        if y.requiresGrad {
            let g = RandomInputs(seed: seed).normal(y.shape, dtype: y.dtype, device: d)
            y.backward(g)
        }
        return (y, leaves.map(\.grad))
    }
    let (yd, gd) = run(on: device)
    let (yb, gb) = run(on: baseline)
    if yd.device != device {
        Issue.record("\(label)output is on \(yd.device), expected \(device)", sourceLocation: sourceLocation)
    }
    if yd.dtype != yb.dtype {
        Issue.record(
            "\(label)output dtype \(yd.dtype) on \(device), \(yb.dtype) on \(baseline)", sourceLocation: sourceLocation)
    }
    output.assert(yd, yb, "\(label)output \(device) vs \(baseline)", sourceLocation: sourceLocation)
    for i in differentiable.sorted() {
        switch (gd[i], gb[i]) {
        case (nil, nil): continue
        case (let a?, let b?):
            (gradients ?? output).assert(
                a, b, "\(label)gradient of input \(i) \(device) vs \(baseline)", sourceLocation: sourceLocation)
        case (let a, _):
            Issue.record(
                "\(label)gradient of input \(i) present on \(a == nil ? baseline : device) only",
                sourceLocation: sourceLocation)
        }
    }
}

/// Batch norm of a seeded `shape` input (training or eval mode, momentum 0.3) on `device` and on
/// `baseline`: the output and the gradients of x, γ and β as ``expectDevicesAgree`` compares
/// them (within 1e-4 of the largest magnitude), and the running statistics each device updated,
/// elementwise.
public func expectBatchNormAgrees(_ shape: [Int], training: Bool, on device: Device, baseline: Device = .reference,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
    let c = shape[1]
    func normal(_ shape: [Int], _ seed: UInt64, mean: Double = 0, std: Double = 1) -> Tensor {
        RandomInputs(seed: seed).normal(shape, mean: mean, std: std, dtype: .float32)
    }
    let inputs = [normal(shape, 27, mean: 1, std: 2), RandomInputs(seed: 28).uniform([c], low: 0.5, high: 1.5, dtype: .float32),
                  normal([c], 29)]
    let (mean0, var0) = (normal([c], 30), RandomInputs(seed: 31).uniform([c], low: 0.5, high: 2, dtype: .float32))
    var stats: [Device: (Tensor, Tensor)] = [:]
    expectDevicesAgree(inputs, on: device, baseline: baseline, output: .relativeToMaxMagnitude(Tolerance.float32Accumulated),
                       "training \(training)", sourceLocation: sourceLocation) { t in
        let (m, v) = (mean0.leafCopy(on: t[0].device), var0.leafCopy(on: t[0].device))
        stats[t[0].device] = (m, v)
        return batchNorm(t[0], gamma: t[1], beta: t[2], runningMean: m, runningVar: v, training: training, momentum: 0.3)
    }
    guard let (dm, dv) = stats[device], let (bm, bv) = stats[baseline] else {
        Issue.record("batchNorm was not run on both devices", sourceLocation: sourceLocation)
        return
    }
    assertClose(dm, bm, .float32Elementwise, "running mean", sourceLocation: sourceLocation)
    assertClose(dv, bv, .float32Elementwise, "running variance", sourceLocation: sourceLocation)
}
