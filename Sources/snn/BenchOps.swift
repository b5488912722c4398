import ArgumentParser
import Foundation
import SNNCPU
import SNNCUDA
import SNNTensor

/// `snn bench ops`: the throughput of the kernels a training step spends its time in.
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time convolution (3 directions), GEMM, the fused neuron and the fused TRT penalty on the CPU or a GPU.",
        discussion: """
            Shapes: conv N=64 (batch×T), 128→128 channels, 16×16, 3×3, padding 1 (--conv-batch, \
            --conv-channels and --conv-size choose another layer, e.g. VGGSNN's widest at T=10, batch 16: \
            --conv-batch 160 --conv-channels 512 --conv-size 12; --conv-stride 2 a downsampling layer, --conv-kernel 1 a 1×1 shortcut), forward and \
            weight gradient also on spikes with 10% and 20% ones (counted at the dense operations); GEMM 1024³; \
            neuronScan T=6 over 64·128·16·16 neurons (triangle surrogate, hard reset), and batch norm + LIF \
            over the same neurons as [T·64, 128, 16, 16] (on a GPU the backward pass also as three launches \
            beside its one cooperative launch); the TRT \
            penalty with its gradient over VGGSNN's regularised weights (9,265,984 conv, BN γ and \
            linear weights), T=10. \
            Figures are medians over --repeat timed runs after --warmup runs; on a GPU (--device cuda) each \
            run waits for the GPU, and a device-to-device copy's bandwidth is reported beside the neuron's. \
            Build in release mode (`make bench`) for meaningful numbers.
            """)

    @Option(name: .customLong("repeat"), help: "Timed runs per kernel; the median is reported.")
    var repeats: Int = 10

    @Option(help: "Untimed warm-up runs per kernel.")
    var warmup: Int = 2

    @Option(help: "Batch size N of the convolution (batch × T).")
    var convBatch: Int = 64

    @Option(help: "Input and output channels of the convolution: C or C,K.")
    var convChannels: String = "128"

    @Option(help: "Height and width of the convolution's input: H or HxW.")
    var convSize: String = "16"

    @Option(help: "Stride of the convolution, e.g. 2 for ResNet-19's downsampling layers.")
    var convStride: Int = 1

    @Option(help: "Kernel size of the convolution: 3 (padding 1) or 1 (no padding, e.g. a residual block's 1×1 shortcut).")
    var convKernel: Int = 3

    @Option(help: "Comma-separated kernel groups to time: conv, gemm, neuron, trt.")
    var kernels: String = "conv,gemm,neuron,trt"

    @Option(name: .customLong("device"), help: ArgumentHelp(stringLiteral: DeviceFlag.help))
    var device: String = "cpu"

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw FlagError("--repeat must be at least 1, got \(repeats)") }
        guard warmup >= 0 else { throw FlagError("--warmup must be non-negative, got \(warmup)") }
        let unknown = Set(groups).subtracting(["conv", "gemm", "neuron", "trt"])
        guard unknown.isEmpty else { throw FlagError("--kernels accepts conv, gemm, neuron, trt; got \(unknown.sorted().joined(separator: ", "))") }
        guard convBatch >= 1 else { throw FlagError("--conv-batch must be at least 1, got \(convBatch)") }
        guard convStride >= 1 else { throw FlagError("--conv-stride must be at least 1, got \(convStride)") }
        guard convKernel == 1 || convKernel == 3 else { throw FlagError("--conv-kernel takes 1 or 3, got \(convKernel)") }
        _ = try convShape()
        try DeviceFlag.check(device)
    }

    /// Input channels, output channels, height and width from `--conv-channels` and `--conv-size`.
    private func convShape() throws -> (c: Int, o: Int, h: Int, w: Int) {
        func numbers(_ text: String, _ separator: Character, _ flag: String) throws -> [Int] {
            let parts = text.split(separator: separator, omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(parts.count), let values = parts as? [Int], values.allSatisfy({ $0 >= 1 }) else {
                throw FlagError("\(flag) takes one or two positive integers separated by '\(separator)', got '\(text)'")
            }
            return values
        }
        let channels = try numbers(convChannels, ",", "--conv-channels")
        let size = try numbers(convSize, "x", "--conv-size")
        return (channels[0], channels.last!, size[0], size.last!)
    }

    private var groups: [String] { kernels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

    func run() throws {
        SNN.prepare()
        let dev = try DeviceFlag.open(device)
        let backend = dev.backend
        let rng = RandomGenerator(seed: 0)
        /// Normal values on the benchmarked device.
        func normal(_ shape: [Int], mean: Double = 0, std: Double = 1) -> Tensor {
            Tensor.normal(shape, mean: mean, std: std, generator: rng).to(dev)
        }
        var results: [(key: String, value: Double, unit: String)] = []

        // Convolution.
        let (c, o, h, w) = try convShape()
        let n = convBatch
        if groups.contains("conv") {
        let (k, pad) = (convKernel, convKernel / 2)
        let p = Conv2dParameters(stride: (convStride, convStride), padding: (pad, pad))
        let (ho, wo) = (Conv2dParameters.outputSize(h, kernel: k, stride: convStride, padding: pad, dilation: 1),
                        Conv2dParameters.outputSize(w, kernel: k, stride: convStride, padding: pad, dilation: 1))
        let x = normal([n, c, h, w])
        let weight = normal([o, c, k, k], std: 0.05)
        let gy = normal([n, o, ho, wo])
        let convFlops = 2.0 * Double(n * o * c * k * k * ho * wo)
        let fwd = time { _ = backend.conv2d(x, weight: weight, bias: nil, p) }
        let bwdData = time { _ = backend.conv2dBackwardData(gy, weight: weight, inputShape: x.shape, p) }
        let bwdWeight = time { _ = backend.conv2dBackwardWeight(gy, input: x, weightShape: weight.shape, withBias: false, p) }
        results.append(("conv2d_fwd_gflops", convFlops / fwd / 1e9, "GFLOP/s"))
        results.append(("conv2d_bwd_data_gflops", convFlops / bwdData / 1e9, "GFLOP/s"))
        results.append(("conv2d_bwd_weights_gflops", convFlops / bwdWeight / 1e9, "GFLOP/s"))
        // Forward and weight gradient on spikes (a spiking layer's output) with 10% and 20% ones:
        // the sparse paths, counted at the dense product's operations.
        for (percent, z) in [(10, 1.2816), (20, 0.8416)] {
            // A neuron with threshold 1 fires at its first step where N(1 − z, 1) reaches 1.
            let spikes = neuronScan(Tensor.normal([1, n * c * h * w], mean: 1 - z, generator: rng),
                                    NeuronParameters(tau: 1, threshold: 1, reset: .hard(0))).reshaped(x.shape).to(dev)
            let sparse = time { _ = backend.conv2d(spikes, weight: weight, bias: nil, p) }
            let sparseWeights = time { _ = backend.conv2dBackwardWeight(gy, input: spikes, weightShape: weight.shape, withBias: false, p) }
            results.append(("conv2d_fwd_spikes\(percent)_gflops", convFlops / sparse / 1e9, "GFLOP/s"))
            results.append(("conv2d_bwd_weights_spikes\(percent)_gflops", convFlops / sparseWeights / 1e9, "GFLOP/s"))
        }
        }

        // GEMM.
        let m = 1024
        if groups.contains("gemm") {
        let a = normal([m, m]), b = normal([m, m])
        let gemm = time { _ = backend.matmul(a, b, transposeA: false, transposeB: false) }
        results.append(("gemm_gflops", 2.0 * Double(m * m * m) / gemm / 1e9, "GFLOP/s"))
        }

        // Fused neuron: 12 bytes per element per pass (fwd: read x, write s and h; bwd: read
        // the spike gradient and h, write the input gradient).
        let steps = 6, neurons = 64 * 128 * 16 * 16
        if groups.contains("neuron") {
        let neuron = NeuronParameters()
        let current = normal([steps, neurons], mean: 0.8, std: 0.6)
        let (_, saved) = backend.neuronScan(current, neuron)
        let gs = normal([steps, neurons])
        let bytes = 12.0 * Double(steps * neurons)
        let scanFwd = time { _ = backend.neuronScan(current, neuron) }
        let scanBwd = time { _ = backend.neuronScanBackward(gs, saved: saved) }
        results.append(("neuron_scan_fwd_gbps", bytes / scanFwd / 1e9, "GB/s"))
        results.append(("neuron_scan_bwd_gbps", bytes / scanBwd / 1e9, "GB/s"))
        // Batch norm (training) + LIF over the same neurons as [T·64, 128, 16, 16]: forward
        // from the batch statistics (counted as reading x and writing the spikes, 8 bytes), and
        // backward (reading the spikes' gradient and x, writing x's gradient, 12 bytes); on a GPU
        // that runs it as one cooperative launch, also as three launches.
        let bnShape = [steps * 64, 128, 16, 16]
        let bnX = current.reshaped(bnShape), bnGrad = gs.reshaped(bnShape)
        let gamma = normal([128], mean: 1, std: 0.1), beta = normal([128], std: 0.1)
        func bnForward() -> (Tensor, any SavedState) {
            let (mean, variance) = backend.batchNormStatistics(bnX)
            return backend.batchNormNeuronScan(bnX, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: 1e-5,
                                               residual: nil, steps: steps, neuron)
        }
        let bnSaved = bnForward().1
        let bnFwd = time { _ = bnForward() }
        let bnBwd = time { _ = backend.batchNormNeuronScanBackward(bnGrad, saved: bnSaved) }
        results.append(("bn_neuron_fwd_gbps", 8.0 * Double(steps * neurons) / bnFwd / 1e9, "GB/s"))
        results.append(("bn_neuron_bwd_gbps", bytes / bnBwd / 1e9, "GB/s"))
        if let cuda = backend as? CUDABackend, cuda.usesCooperativeLaunch {
            cuda.usesCooperativeLaunch = false
            let threeLaunches = time { _ = backend.batchNormNeuronScanBackward(bnGrad, saved: bnSaved) }
            cuda.usesCooperativeLaunch = true
            results.append(("bn_neuron_bwd_three_launches_gbps", bytes / threeLaunches / 1e9, "GB/s"))
        }
        // Dropout's mask: a Bernoulli draw over the same neurons (4 bytes written each; on a GPU,
        // Philox on the GPU itself).
        let mask = Tensor.empty([steps, neurons], device: dev)
        let draw = time { backend.random(.bernoulli(probability: 0.8), into: mask, seed: 1, counter: 0) }
        results.append(("bernoulli_draw_gbps", 4.0 * Double(steps * neurons) / draw / 1e9, "GB/s"))
        if !dev.isHostMemory {
            // What the memory allows: a device-to-device copy of the input (read and write).
            let target = Tensor.empty(current.shape, device: dev)
            let copy = time { backend.copy(current, into: target) }
            results.append(("copy_gbps", 8.0 * Double(steps * neurons) / copy / 1e9, "GB/s"))
        }
        }

        // Fused TRT penalty: 8 bytes per weight (read the weight, write its gradient), the T
        // timesteps computed in registers.
        let trtSteps = 10, trtShapes = Self.vggsnnRegularizedShapes
        if groups.contains("trt") {
        let weights = trtShapes.map { normal($0, std: 0.05) }
        let coefficients = (0..<trtSteps).map { Foundation.exp(0.5 * Double($0)) - 1 }
        let count = trtShapes.map { $0.reduce(1, *) }.reduce(0, +)
        let trt = time { _ = backend.trtRegularizer(weights, lambda: 5e-5, coefficients: coefficients, epsilon: 1e-5) }
        results.append(("trt_regularizer_gbps", 8.0 * Double(count) / trt / 1e9, "GB/s"))
        results.append(("trt_regularizer_gelem_steps", Double(count * trtSteps) / trt / 1e9, "G(elem·T)/s"))
        }

        let shapes: [String: Any] = [
            "conv2d": ["input": [n, c, h, w], "weight": [o, c, convKernel, convKernel], "stride": convStride,
                       "padding": convKernel / 2],
            "gemm": [m, m, m],
            "neuron_scan": ["T": steps, "neurons": neurons, "surrogate": "triangle(1.0)", "reset": "hard(0)"],
            "bn_neuron": ["input": [steps * 64, 128, 16, 16], "T": steps],
            "trt_regularizer": ["T": trtSteps, "weights": trtShapes.count, "elements": trtShapes.map { $0.reduce(1, *) }.reduce(0, +)],
        ]
        if json {
            let algorithm = ProcessInfo.processInfo.environment["SNN_CONV_ALGORITHM"] ?? "auto"
            var object: [String: Any] = ["shapes": shapes, "repeat": repeats, "warmup": warmup, "device": "\(dev)",
                                         "threads": ProcessInfo.processInfo.activeProcessorCount]
            if dev.isHostMemory { object["conv_algorithm"] = algorithm }
            for r in results { object[r.key] = (r.value * 100).rounded() / 100 }
            try Output.printJSON(object)
        } else {
            print("SwiftSNN ops benchmark on \(dev) (median of \(repeats) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores)")
            let width = results.map(\.key.count).max() ?? 0
            for r in results {
                print(r.key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + String(format: "%9.1f %@", r.value, r.unit))
            }
        }
    }

    /// The weights VGGSNN's TRT penalty covers (CIFAR10-DVS, 10 classes): eight 3×3 convs,
    /// their BN γ and the linear readout; biases and BN β are excluded (TRT-SPEC.md §3, §7).
    static let vggsnnRegularizedShapes: [[Int]] = {
        let channels = [2, 64, 128, 256, 256, 512, 512, 512, 512]
        var shapes: [[Int]] = []
        for i in 1..<channels.count { shapes += [[channels[i], channels[i - 1], 3, 3], [channels[i]]] }
        return shapes + [[10, 512 * 3 * 3]]
    }()

    /// The median wall time of `body` in seconds, each run waiting for the device (a GPU queues its work).
    private func time(_ body: () -> Void) -> Double {
        let backend = (Device(device) ?? .cpu).backend
        return Output.medianSeconds(repeats: repeats, warmup: warmup) {
            body()
            do throws(DeviceError) { try backend.synchronize() } catch { DeviceFailure.report(error, context: "snn bench ops") }
        }
    }
}
