import Foundation
import SNNLibraries
import SNNTensor

/// `snn selftest --device cuda`: SwiftSNN's CUDA kernels compiled by NVRTC for the GPU found,
/// run on it, and compared with the reference backend on the same inputs (shapes of several
/// blocks with a partial last one). Each check is one line; any mismatch fails the run.
public enum CUDASelfTest {
    /// One check's outcome: its name, the worst difference relative to the reference's largest
    /// magnitude, the tolerance, and whether it passed.
    public struct Check: Sendable {
        public let name: String
        public let worst: Double
        public let tolerance: Double
        public var passed: Bool { worst <= tolerance }

        public init(name: String, worst: Double, tolerance: Double) {
            (self.name, self.worst, self.tolerance) = (name, worst, tolerance)
        }
    }

    /// Compiles the kernels for `device` (through `cache`) and runs every check.
    public static func run(device: CUDADevice, architecture: String, nvrtc: NVRTC, cache: KernelCache) throws -> [Check] {
        func module(_ name: String) throws -> CUDAModule {
            guard let source = CUDAKernels.all.first(where: { $0.name == name })?.source else {
                preconditionFailure("[selftest] no kernel source \(name)")
            }
            return try device.loadModule(try cache.cubin(for: source, name: name, architecture: architecture, nvrtc: nvrtc).cubin)
        }
        var checks: [Check] = []
        checks += try neuronScan(device, try module("neuron_scan.cu"))
        checks += try trtRegularizer(device, try module("trt_regularizer.cu"))
        checks += try optimizer(device, try module("optimizer.cu"))
        return checks
    }

    /// `max |got − expected| / max(max |expected|, 1)`.
    static func worst(_ got: [Float], _ expected: [Double]) -> Double {
        let scale = Swift.max(expected.map { Swift.abs($0) }.max() ?? 0, 1)
        return zip(got, expected).map { Swift.abs(Double($0) - $1) }.max().map { $0 / scale } ?? 0
    }

    /// Seeded uniform inputs in [low, high), from the engine's generator.
    static func values(_ count: Int, seed: UInt64, low: Float, high: Float) -> [Float] {
        Tensor.uniform([count], low: Double(low), high: Double(high), generator: RandomGenerator(seed: seed),
                       device: .reference).toFloats()
    }

    static func neuronScan(_ device: CUDADevice, _ module: CUDAModule) throws -> [Check] {
        let (steps, n) = (6, 1000)
        let neuron = NeuronParameters(tau: 2, threshold: 1, reset: .soft, surrogate: .sigmoid(alpha: 4))
        let x = values(steps * n, seed: 1, low: -0.5, high: 2), gs = values(steps * n, seed: 2, low: -1, high: 1)
        let scan = try NeuronScanBuffers(device, forward: try module.function("snn_neuron_scan_forward"),
                                         backward: try module.function("snn_neuron_scan_backward"), x: x, gradSpikes: gs,
                                         steps: steps, neuron)
        let reference = Device.reference.backend
        let (spikes, saved) = reference.neuronScan(Tensor(x, shape: [steps, n]).to(.reference), neuron)
        let gradient = reference.neuronScanBackward(Tensor(gs, shape: [steps, n]).to(.reference), saved: saved)
        return [
            Check(name: "neuron scan forward (spikes)", worst: worst(try device.download(scan.spikes, count: steps * n), spikes.toDoubles()),
                  tolerance: 0),
            Check(name: "neuron scan backward", worst: worst(try device.download(scan.gradient, count: steps * n), gradient.toDoubles()),
                  tolerance: 1e-5),
        ]
    }

    /// The LIF scan forward and backward on `[steps, n]` through raw buffers and launches (blocks
    /// of 128): its five buffers, alive as long as this is.
    struct NeuronScanBuffers {
        let input: DeviceBuffer, spikes: DeviceBuffer, potentials: DeviceBuffer, gradSpikes: DeviceBuffer, gradient: DeviceBuffer

        init(_ device: CUDADevice, forward: CUDAFunction, backward: CUDAFunction, x: [Float], gradSpikes gs: [Float], steps: Int,
             _ neuron: NeuronParameters) throws {
            let n = x.count / steps, bytes = x.count * 4
            (input, spikes, potentials, gradSpikes, gradient) = (try device.allocate(bytes: bytes), try device.allocate(bytes: bytes),
                                                                 try device.allocate(bytes: bytes), try device.allocate(bytes: bytes),
                                                                 try device.allocate(bytes: bytes))
            try device.upload(x, to: input)
            try device.upload(gs, to: gradSpikes)
            let grid = UInt32((n + 127) / 128)
            let sizes: [KernelArgument] = [.int64(Int64(n)), .int32(Int32(steps))]
            let parameters = CUDAKernels.NeuronArguments(neuron)
            try device.launch(forward, grid: grid, block: 128,
                              [.buffer(input), .buffer(spikes), .buffer(potentials)] + sizes + parameters.kernelArguments(backward: false))
            try device.launch(backward, grid: grid, block: 128,
                              [.buffer(gradSpikes), .buffer(potentials), .buffer(gradient)] + sizes + parameters.kernelArguments(backward: true))
        }
    }

    static func trtRegularizer(_ device: CUDADevice, _ module: CUDAModule) throws -> [Check] {
        let n = 5000
        let w = values(n, seed: 3, low: -0.1, high: 0.1)
        let coefficients = (0..<10).map { Foundation.exp(0.5 * Double($0)) - 1 }
        let (lambda, epsilon) = (5e-3, 1e-5)
        let grid = (n + 255) / 256
        let (dw, dgrad, dpartials, dcoefficients, dvalue) = (try device.allocate(bytes: n * 4), try device.allocate(bytes: n * 4),
                                                             try device.allocate(bytes: grid * 8),
                                                             try device.allocate(bytes: coefficients.count * 4),
                                                             try device.allocate(bytes: 4))
        try device.upload(w, to: dw)
        try device.upload(coefficients.map(Float.init), to: dcoefficients)
        try device.launch(try module.function("snn_trt_regularizer"), grid: UInt32(grid), block: 256,
                          [.buffer(dw), .buffer(dgrad), .buffer(dpartials), .int64(Int64(n)), .buffer(dcoefficients),
                           .int32(Int32(coefficients.count)), .float(Float(lambda)), .float(Float(epsilon))])
        try device.launch(try module.function("snn_sum_partials"), grid: 1, block: 256,
                          [.buffer(dpartials), .buffer(dvalue), .int32(Int32(grid))])
        let expected = Device.reference.backend.trtRegularizer([Tensor(w, shape: [n]).to(.reference)], lambda: lambda,
                                                               coefficients: coefficients, epsilon: epsilon)
        let value = expected.value.toDoubles()[0]
        return [
            Check(name: "TRT penalty value", worst: Swift.abs(Double(try device.download(dvalue, count: 1)[0]) - value)
                    / Swift.max(Swift.abs(value), 1e-30), tolerance: 1e-5),
            Check(name: "TRT penalty gradient", worst: worst(try device.download(dgrad, count: n), expected.gradients[0].toDoubles()),
                  tolerance: 1e-5),
        ]
    }

    /// Three Adam steps with weight decay, against the same arithmetic in Double.
    static func optimizer(_ device: CUDADevice, _ module: CUDAModule) throws -> [Check] {
        let n = 3000
        let (lr, decay, beta1, beta2, eps) = (0.01, 0.05, 0.9, 0.999, 1e-8)
        var p = values(n, seed: 4, low: -0.2, high: 0.2).map(Double.init)
        var (m, v) = ([Double](repeating: 0, count: n), [Double](repeating: 0, count: n))
        let (dp, dg, dm, dv) = (try device.allocate(bytes: n * 4), try device.allocate(bytes: n * 4), try device.allocate(bytes: n * 4),
                                try device.allocate(bytes: n * 4))
        try device.upload(p.map(Float.init), to: dp)
        try device.upload([Float](repeating: 0, count: n), to: dm)
        try device.upload([Float](repeating: 0, count: n), to: dv)
        let step = try module.function("snn_optimizer_step")
        for t in 1...3 {
            let g = values(n, seed: 10 + UInt64(t), low: -1, high: 1)
            try device.upload(g, to: dg)
            let (c1, c2) = (1 - Foundation.pow(beta1, Double(t)), 1 - Foundation.pow(beta2, Double(t)))
            try device.launch(step, grid: UInt32((n + 255) / 256), block: 256,
                              [.buffer(dp), .buffer(dg), .buffer(dm), .buffer(dv), .int64(Int64(n)), .int32(1), .float(Float(lr)),
                               .float(Float(decay)), .float(Float(beta1)), .float(Float(beta2)), .float(Float(1 - beta1)),
                               .float(Float(1 - beta2)), .float(Float(eps)), .float(0.9), .float(Float(c1)),
                               .float(Float(c2.squareRoot()))])
            for i in 0..<n {
                let grad = Double(g[i]) + p[i] * decay
                m[i] = m[i] * beta1 + grad * (1 - beta1)
                v[i] = v[i] * beta2 + grad * grad * (1 - beta2)
                p[i] -= m[i] * (lr / c1) / (v[i].squareRoot() / c2.squareRoot() + eps)
            }
        }
        return [Check(name: "Adam step (3 steps)", worst: worst(try device.download(dp, count: n), p), tolerance: 1e-6)]
    }
}
