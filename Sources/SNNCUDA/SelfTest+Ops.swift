import Foundation
import SNNTensor

/// The per-op part of `snn selftest`: each op called through its public front end on the GPU
/// and on the reference backend from the same inputs, forward and backward (one seeded output
/// gradient), on shapes of several blocks with a partial last one.
extension CUDASelfTest {
    /// One op: its inputs (float32, reference device), which take gradients, and the function.
    struct OpCase {
        let name: String
        let inputs: [Tensor]
        let tolerance: Double
        var spikes = false
        let f: ([Tensor]) -> Tensor
    }

    /// Inputs drawn from the engine's generator, seed by seed.
    private static func normal(_ shape: [Int], _ seed: UInt64, mean: Double = 0, std: Double = 1) -> Tensor {
        Tensor.normal(shape, mean: mean, std: std, generator: RandomGenerator(seed: seed), device: .reference)
    }

    private static func uniform(_ shape: [Int], _ seed: UInt64, _ low: Double, _ high: Double) -> Tensor {
        Tensor.uniform(shape, low: low, high: high, generator: RandomGenerator(seed: seed), device: .reference)
    }

    /// The cases: tolerances relative to the reference's largest magnitude, 1e-5 for
    /// elementwise results and 1e-4 where values accumulate.
    static var opCases: [OpCase] {
        let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .hard(0), surrogate: .sigmoid(alpha: 4))
        let soft = NeuronParameters(tau: 1.5, threshold: 1, reset: .soft, surrogate: .triangle(gamma: 1))
        return [
            OpCase(name: "add, multiply, divide (broadcast)", inputs: [normal([37, 301], 1), uniform([301], 2, 0.5, 2)], tolerance: 1e-4) {
                ($0[0] + $0[1]) * $0[0] / $0[1]
            },
            OpCase(name: "exp, sigmoid, sqrt (permuted view)", inputs: [normal([9, 13, 11], 3)], tolerance: 1e-5) {
                let x = $0[0].permuted([2, 0, 1])
                return x.exp() + x.sigmoid() + (x.square() + 1).sqrt()
            },
            OpCase(name: "sum and max over axes", inputs: [normal([64, 257], 4)], tolerance: 1e-4) {
                $0[0].sum(axes: [0]).reshaped([257]) + $0[0].max(axes: [1]).sum()
            },
            OpCase(name: "matmul (plain and transposed)", inputs: [normal([67, 129], 5), normal([33, 129], 6)], tolerance: 1e-4) {
                matmul($0[0], $0[1].transposed())
            },
            OpCase(name: "conv2d 3x3, padding 1, bias", inputs: [normal([4, 8, 12, 12], 7), normal([16, 8, 3, 3], 8, std: 0.2),
                                                             normal([16], 9)], tolerance: 1e-4) {
                conv2d($0[0], weight: $0[1], bias: $0[2], padding: (1, 1))
            },
            OpCase(name: "conv2d 3x3, stride 2", inputs: [normal([2, 6, 13, 11], 10), normal([5, 6, 3, 3], 11, std: 0.2)],
                   tolerance: 1e-4) {
                conv2d($0[0], weight: $0[1], stride: (2, 2), padding: (1, 1))
            },
            OpCase(name: "max and average pooling 2x2", inputs: [normal([4, 16, 12, 10], 12)], tolerance: 1e-5) {
                maxPool2d($0[0], kernel: (2, 2)) + avgPool2d($0[0], kernel: (2, 2))
            },
            OpCase(name: "batch norm (training)", inputs: [normal([8, 16, 6, 6], 13, mean: 1, std: 2), uniform([16], 14, 0.5, 1.5),
                                                       normal([16], 15)], tolerance: 1e-4) {
                batchNorm($0[0], gamma: $0[1], beta: $0[2], runningMean: Tensor.zeros([16], device: $0[0].device),
                          runningVar: Tensor.ones([16], device: $0[0].device), training: true)
            },
            OpCase(name: "LIF scan, hard reset (spikes)", inputs: [uniform([4, 2000], 16, -0.5, 2)], tolerance: 0, spikes: true) {
                SNNTensor.neuronScan($0[0], neuron)
            },
            OpCase(name: "LIF scan, soft reset (gradient)", inputs: [uniform([6, 1500], 17, -0.5, 2)], tolerance: 1e-5) {
                SNNTensor.neuronScan($0[0], soft) * 1
            },
            // The residual is another LIF scan's spikes, which the backward pass reads as the
            // bytes they are kept in.
            OpCase(name: "batch norm + LIF with residual", inputs: [normal([12, 8, 6, 6], 18, mean: 0.5, std: 1.5),
                                                                uniform([8], 19, 0.5, 1.5), normal([8], 21, mean: 0.5, std: 0.3),
                                                                normal([3, 1152], 20, mean: 0.6, std: 1)], tolerance: 1e-4) {
                let residual = SNNTensor.neuronScan($0[3], soft).reshaped([12, 8, 6, 6])
                return batchNormNeuronScan($0[0], steps: 3, gamma: $0[1], beta: $0[2],
                                           runningMean: Tensor.zeros([8], device: $0[0].device),
                                           runningVar: Tensor.ones([8], device: $0[0].device), residual: residual, neuron: neuron)
            },
            // 294,912 neurons a step: more than an H200 runs threads at once (132 × 2,048), so the
            // backward pass's cooperative grid strides over them.
            OpCase(name: "batch norm + LIF, more neurons than resident threads",
                   inputs: [normal([32, 32, 24, 24], 25, mean: 0.5, std: 1.5), uniform([32], 26, 0.5, 1.5), normal([32], 27, mean: 0.5, std: 0.3)],
                   tolerance: 1e-4) {
                batchNormNeuronScan($0[0], steps: 2, gamma: $0[1], beta: $0[2], runningMean: Tensor.zeros([32], device: $0[0].device),
                                    runningVar: Tensor.ones([32], device: $0[0].device), neuron: soft)
            },
            // Drawn on the GPU: the engine's Philox words, so the reference's numbers (a normal
            // draw's last bit aside, where the GPU's log or cos rounds otherwise than the host's).
            OpCase(name: "dropout, uniform and normal draws", inputs: [normal([5, 1001], 28)], tolerance: 1e-5) {
                let noise = Tensor.normal($0[0].shape, mean: 0.5, std: 2, generator: RandomGenerator(seed: 30), device: $0[0].device)
                    * Tensor.uniform($0[0].shape, low: -1, high: 1, generator: RandomGenerator(seed: 31), device: $0[0].device)
                return dropout($0[0], p: 0.25, training: true, generator: RandomGenerator(seed: 29)) + noise
            },
            OpCase(name: "cross entropy", inputs: [normal([16, 10], 22, std: 3)], tolerance: 1e-4) {
                crossEntropy(logits: $0[0], labels: Tensor(doubles: (0..<16).map { Double($0 % 10) }, shape: [16], dtype: .int64,
                                                           device: $0[0].device))
            },
            OpCase(name: "TRT penalty", inputs: [normal([16, 8, 3, 3], 23, std: 0.1), normal([300], 24, std: 0.1)], tolerance: 1e-4) {
                trtRegularization($0, lambda: 5e-3, decay: 0.5, steps: 6, epsilon: 1e-5)
            },
        ]
    }

    /// Batch norm + LIF with its backward pass as three launches, where the GPU runs it as one
    /// cooperative launch; and the matrix products and convolutions again, on the paths a GPU
    /// with cuBLAS and cuDNN does not take by default: with cuDNN, each convolution run twice (the same bits: the chosen
    /// algorithms are deterministic), with `--tf32` within TF32's rounding, and as cuBLAS
    /// products; SwiftSNN's own kernels; and `--amp` (bf16, fp16) within the 16-bit type's
    /// rounding, its convolutions through cuDNN and through cuBLAS. Without cuBLAS, the own
    /// kernels were the default path.
    /// Each check goes to `report` as it completes.
    public static func otherPaths(_ backend: CUDABackend, report: (Check) -> Void = { _ in }) -> [Check] {
        var checks: [Check] = []
        if backend.usesCooperativeLaunch {
            backend.usesCooperativeLaunch = false
            checks += ops(on: backend.device, cases: opCases.filter { $0.name.hasPrefix("batch norm + LIF") }, label: "three launches",
                          report: report)
            backend.usesCooperativeLaunch = true
        }
        guard backend.usesCUBLAS else { return checks }
        let dense = opCases.filter { $0.name.hasPrefix("matmul") || $0.name.hasPrefix("conv2d") }
        let cudnn = backend.usesCUDNN
        defer { backend.usesCUDNN = cudnn }
        let convolutions = dense.filter { $0.name.hasPrefix("conv2d") }
        if cudnn {
            checks += repeatability(on: backend.device, cases: convolutions, report: report)
            // TF32 keeps 10 of float32's 23 mantissa bits.
            backend.allowsTF32 = true
            checks += ops(on: backend.device, cases: convolutions.map { OpCase(name: $0.name, inputs: $0.inputs, tolerance: 2e-3, f: $0.f) },
                          label: "--tf32", report: report)
            backend.allowsTF32 = false
        }
        backend.usesCUDNN = false
        if cudnn { checks += ops(on: backend.device, cases: convolutions, label: "cuBLAS", report: report) }
        backend.usesCUBLAS = false
        checks += ops(on: backend.device, cases: dense, label: "own kernels", report: report)
        backend.usesCUBLAS = true
        backend.usesCUDNN = cudnn
        for (half, tolerance) in [(CUDABackend.MixedPrecision.bf16, 2e-2), (.fp16, 3e-3)] {
            backend.mixedPrecision = half
            let within = { (cases: [OpCase]) in cases.map { OpCase(name: $0.name, inputs: $0.inputs, tolerance: tolerance, f: $0.f) } }
            checks += ops(on: backend.device, cases: within(dense), label: "--amp \(half.rawValue)", report: report)
            if cudnn {
                backend.usesCUDNN = false
                checks += ops(on: backend.device, cases: within(convolutions), label: "--amp \(half.rawValue), cuBLAS",
                              report: report)
                backend.usesCUDNN = true
            }
        }
        backend.mixedPrecision = nil
        return checks
    }

    /// One check per case: its output and input gradients computed twice on `device` are the
    /// same bits.
    static func repeatability(on device: Device, cases: [OpCase], report: (Check) -> Void = { _ in }) -> [Check] {
        cases.map { c in
            func run() -> [Float] {
                let r = evaluate(c, on: device)
                return r.output.toFloats() + r.gradients.flatMap { $0?.toFloats() ?? [] }
            }
            let (first, second) = (run(), run())
            let differences = zip(first, second).map { Double(Swift.abs($0 - $1)) }
            let same = first.count == second.count && zip(first, second).allSatisfy { $0.bitPattern == $1.bitPattern }
            let check = Check(name: "\(c.name) (cuDNN): the same bits twice", worst: same ? 0 : Swift.max(differences.max() ?? 1, 1e-30),
                              tolerance: 0)
            report(check)
            return check
        }
    }

    /// Runs every case on `device` and on the reference backend: one check for each output
    /// and one for each input's gradient, each handed to `report` as soon as its case has run.
    public static func ops(on device: Device, report: (Check) -> Void = { _ in }) -> [Check] {
        ops(on: device, cases: opCases, label: nil, report: report)
    }

    /// A case's output and its inputs' gradients on `device`, from one seeded output gradient.
    static func evaluate(_ c: OpCase, on device: Device) -> (output: Tensor, gradients: [Tensor?]) {
        let leaves = c.inputs.map { x -> Tensor in
            let leaf = x.detached().to(device)   // a leaf of its own, even on x's device
            leaf.requiresGrad = x.dtype.isFloatingPoint && !c.spikes
            return leaf
        }
        let y = c.f(leaves)
        if y.requiresGrad {
            y.backward(Tensor.normal(y.shape, generator: RandomGenerator(seed: 99), device: .reference).to(device))
        }
        return (y, leaves.map(\.grad))
    }

    static func ops(on device: Device, cases: [OpCase], label: String?, report: (Check) -> Void = { _ in }) -> [Check] {
        cases.flatMap { c -> [Check] in
            let (gpu, reference) = (evaluate(c, on: device), evaluate(c, on: .reference))
            let name = label.map { "\(c.name) (\($0))" } ?? c.name
            var checks = [Check(name: "\(name): output", worst: worst(gpu.output.toFloats(), reference.output.toDoubles()),
                                tolerance: c.tolerance)]
            for (i, (g, r)) in zip(gpu.gradients, reference.gradients).enumerated() {
                guard let r else { continue }
                let worstGradient = g.map { worst($0.toFloats(), r.toDoubles()) } ?? .infinity
                checks.append(Check(name: "\(name): gradient of input \(i)", worst: worstGradient, tolerance: max(c.tolerance, 1e-5)))
            }
            checks.forEach(report)
            return checks
        }
    }
}

extension CUDASelfTest {
    /// The LIF scan's forward bandwidth (reads the input, writes spikes and potentials) and a
    /// device-to-device copy's (reads and writes), in GB/s: medians of 5 runs over a
    /// `[8, 4 Mi]` float32 input (128 MiB), after one warm-up.
    public static func bandwidth(_ backend: CUDABackend, steps: Int = 8, neurons: Int = 1 << 22) throws
        -> (neuron: Double, copy: Double) {
        let x = Tensor.empty([steps, neurons], device: backend.device)
        backend.random(.uniform(low: -0.5, high: 2), into: x, seed: 1, counter: 0)
        let y = Tensor.empty([steps, neurons], device: backend.device)
        let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .hard(0), surrogate: .sigmoid(alpha: 4))
        func median(_ body: () -> Void) throws -> Double {
            body()
            try backend.synchronize()
            var seconds: [Double] = []
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                try backend.synchronize()
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return seconds.sorted()[2]
        }
        let bytes = Double(x.count * 4)
        let scan = try median { _ = backend.neuronScan(x, neuron) }
        let copy = try median { backend.copy(x, into: y) }
        return (3 * bytes / scan / 1e9, 2 * bytes / copy / 1e9)
    }
}
