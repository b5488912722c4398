import Foundation
@testable import SNNCUDA
import SNNTensor
import SNNTestSupport
import SNNTraining
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SwiftSNN's CUDA kernels run on the host through the launch-grid emulation
/// (`Emulation/cuda_emulation.h`) against the reference backend, on shapes of several blocks
/// with a partial last one; and every kernel compiles with NVRTC for the GPU architectures the
/// backend targets.
@Suite("CUDA kernels, emulated on the CPU and compiled by NVRTC")
struct KernelEmulationTests {
    typealias Forward = @convention(c) (UInt32, UInt32, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                        UnsafeMutablePointer<Float>, Int64, Int32, Float, Float, Int32, Float) -> Void
    typealias Backward = @convention(c) (UInt32, UInt32, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                         Int64, Int32, Float, Float, Int32, Float, Int32, Float) -> Void

    /// Compiles `harness` (in `Emulation/`) with the kernel sources written beside it and opens
    /// it, once per process. The libraries stay on disk while loaded: a deleted one's inode can
    /// be reused by the next, which the loader would then take for the library already open.
    static func emulated(_ harness: String) throws -> UnsafeMutableRawPointer {
        try EmulatedLibraries.shared.open(harness)
    }

    static let neurons: [NeuronParameters] = [
        NeuronParameters(),
        NeuronParameters(tau: 1.5, threshold: 0.8, reset: .soft, surrogate: .sigmoid(alpha: 4)),
        NeuronParameters(tau: 1, threshold: 1, reset: .hard(0.3), surrogate: .rectangle(width: 1)),
        NeuronParameters(tau: 3, threshold: 0.5, reset: .hard(-0.2), surrogate: .triangle(gamma: 0.5)),
    ]

    @Test("the LIF scan forward and backward: the emulated kernels against the reference backend",
          arguments: neurons)
    func neuronScan(neuron: NeuronParameters) throws {
        let handle = try Self.emulated("neuron_scan_harness.cpp")
        let forward = unsafeBitCast(try #require(dlsym(handle, "emulate_neuron_scan_forward")), to: Forward.self)
        let backward = unsafeBitCast(try #require(dlsym(handle, "emulate_neuron_scan_backward")), to: Backward.self)
        // 300 neurons in blocks of 64: four full blocks and a partial fifth; 6 steps.
        let (steps, n, block) = (6, 300, 64)
        let r = RandomInputs(seed: 31)
        let x = r.normalValues(steps * n, mean: 0.7, std: 0.8).map(Float.init)
        let gs = r.normalValues(steps * n).map(Float.init)
        var (spikes, potentials, gradInput) = ([Float](repeating: -7, count: x.count), [Float](repeating: -7, count: x.count),
                                               [Float](repeating: -7, count: x.count))
        let grid = UInt32((n + block - 1) / block)
        let a = CUDAKernels.NeuronArguments(neuron)
        forward(grid, UInt32(block), x, &spikes, &potentials, Int64(n), Int32(steps), a.decay, a.threshold, a.softReset, a.vReset)
        backward(grid, UInt32(block), gs, potentials, &gradInput, Int64(n), Int32(steps), a.decay, a.threshold, a.softReset,
                 a.vReset, a.surrogate, a.parameter)

        let reference = Device.reference.backend
        let input = Tensor(x, shape: [steps, n]).to(.reference)
        let (expectedSpikes, saved) = reference.neuronScan(input, neuron)
        let expectedPotentials = (saved as! SavedPotentials).potentials.toDoubles()
        let expectedGradient = reference.neuronScanBackward(Tensor(gs, shape: [steps, n]).to(.reference), saved: saved).toDoubles()
        #expect(spikes.map(Double.init) == expectedSpikes.toDoubles(), "\(neuron): spikes differ")
        #expect(spikes.filter { $0 == 1 }.count > n / 4, "the inputs must make the neurons fire")
        let worst = CUDASelfTest.worst
        #expect(worst(potentials, expectedPotentials) <= 1e-6, "\(neuron): potentials")
        #expect(worst(gradInput, expectedGradient) <= 1e-5, "\(neuron): input gradient")
    }

    struct BatchNormCase: CustomStringConvertible, Sendable {
        let neuron: NeuronParameters
        let residual: Bool
        var description: String { "\(neuron)\(residual ? " + residual" : "")" }
    }

    static let batchNormCases = [
        BatchNormCase(neuron: NeuronParameters(), residual: false),
        BatchNormCase(neuron: NeuronParameters(tau: 1.5, threshold: 0.8, reset: .soft, surrogate: .sigmoid(alpha: 4)), residual: true),
    ]

    @Test("batch norm fused with the LIF scan: statistics, spikes, and every gradient against the reference backend",
          arguments: batchNormCases)
    func batchNormNeuron(c: BatchNormCase) throws {
        typealias Statistics = @convention(c) (Int32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                               Int32, Int64, Int32) -> Void
        // x is float32, or bfloat16/half storage, as `form` says (0 float32; 1, 2 float32 read as bfloat16 or half; 3, 4 storage).
        typealias Forward = @convention(c) (UInt32, UInt32, UnsafeRawPointer, Int32, UnsafePointer<Float>?, UnsafePointer<Float>,
                                            UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Float,
                                            UnsafeMutablePointer<Float>, Int64, Int32, Int32, Int64, Float, Float, Int32,
                                            Float) -> Void
        // The residual: float32 (quantum 0) or bytes, each code · quantum.
        typealias Backward = @convention(c) (UInt32, UInt32, UnsafePointer<Float>, UnsafeRawPointer, Int32, UnsafeRawPointer?, Float,
                                             UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                             Float, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?,
                                             UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int32, Int32, Int64,
                                             Float, Float, Int32, Float, Int32, Float) -> Void
        typealias ChannelSums = @convention(c) (Int32, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                                                UnsafeMutablePointer<Float>, Int32, Int64) -> Void
        typealias InputGradient = @convention(c) (UInt32, UInt32, UnsafeRawPointer, Int32, UnsafeMutablePointer<Float>,
                                                  UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Float,
                                                  UnsafePointer<Float>, UnsafePointer<Float>, Float, Int64, Int32, Int64) -> Void
        let handle = try Self.emulated("batch_norm_neuron_harness.cpp")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { unsafeBitCast(try #require(dlsym(handle, name)), to: type) }
        let statistics = try function("emulate_bn_statistics", Statistics.self)
        let forward = try function("emulate_bn_neuron_forward", Forward.self)
        let backward = try function("emulate_bn_neuron_backward", Backward.self)
        let channelSums = try function("emulate_bn_channel_sums", ChannelSums.self)
        let inputGradient = try function("emulate_bn_input_gradient", InputGradient.self)

        // T = 3 steps of N = 4 samples, 5 channels of 7×9: 1,260 neurons a step, in blocks of 128
        // (nine full and a partial tenth); 315 values per channel and step in the reductions.
        let (steps, samples, channels, plane, block) = (3, 4, 5, 63, 128)
        let shape = [steps * samples, channels, 7, 9]
        let total = shape.reduce(1, *), n = total / steps
        let r = RandomInputs(seed: 41)
        let x = r.normalValues(total, mean: 0.3, std: 1.5).map(Float.init)
        let gamma = r.uniformValues(channels, low: 0.5, high: 1.5).map(Float.init)
        let beta = r.normalValues(channels, mean: 0.6, std: 0.3).map(Float.init)
        let residual = c.residual ? r.normalValues(total, mean: 0.2, std: 0.5).map(Float.init) : nil
        let gs = r.normalValues(total).map(Float.init)
        let epsilon: Float = 1e-5
        let neuron = c.neuron
        let a = CUDAKernels.NeuronArguments(neuron)

        // The statistics from the 12 frames in one part, and in parts of 5 (the last of 2) and of 1:
        // the same within rounding.
        var (mean, variance) = ([Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
        statistics(Int32(channels), x, &mean, &variance, Int32(steps * samples), Int64(plane), Int32(steps * samples))
        for span in [5, 1] {
            var (m, v) = ([Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
            statistics(Int32(channels), x, &m, &v, Int32(steps * samples), Int64(plane), Int32(span))
            #expect(CUDASelfTest.worst(m, mean.map(Double.init)) <= 1e-6 && CUDASelfTest.worst(v, variance.map(Double.init)) <= 1e-6,
                    "\(c): statistics in parts of \(span) frames")
        }
        var spikes = [Float](repeating: .nan, count: total)
        let grid = UInt32((n + block - 1) / block)
        forward(grid, UInt32(block), x, 0, residual, gamma, beta, mean, variance, epsilon, &spikes, Int64(n), Int32(steps),
                Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset)
        var gradInput = [Float](repeating: .nan, count: total)
        var gradResidual = [Float](repeating: .nan, count: total)
        var (sumG, sumGX) = ([Float](repeating: .nan, count: n), [Float](repeating: .nan, count: n))
        gradResidual.withUnsafeMutableBufferPointer { gr in
            backward(grid, UInt32(block), gs, x, 0, residual, 0, gamma, beta, mean, variance, epsilon, &gradInput,
                     c.residual ? gr.baseAddress : nil, &sumG, &sumGX, Int64(n), Int32(steps), Int32(channels), Int64(plane),
                     a.decay, a.threshold, a.softReset, a.vReset, a.surrogate, a.parameter)
        }
        var (gradBeta, gradGamma) = ([Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
        channelSums(Int32(channels), sumG, sumGX, &gradBeta, &gradGamma, Int32(samples), Int64(plane))
        inputGradient(UInt32((total + block - 1) / block), UInt32(block), x, 0, &gradInput, gamma, mean, variance, epsilon,
                      gradGamma, gradBeta, Float(total / channels), Int64(total), Int32(channels), Int64(plane))

        let reference = Device.reference.backend
        let (tx, tg, tb) = (Tensor(x, shape: shape).to(.reference), Tensor(gamma, shape: [channels]).to(.reference),
                            Tensor(beta, shape: [channels]).to(.reference))
        let tr = residual.map { Tensor($0, shape: shape).to(.reference) }
        let (em, ev) = reference.batchNormStatistics(tx)
        func worst(_ a: [Float], _ e: Tensor) -> Double { CUDASelfTest.worst(a, e.toDoubles()) }
        #expect(worst(mean, em) <= 1e-6 && worst(variance, ev) <= 1e-6, "\(c): statistics")
        // The scan starts from the kernels' statistics, so both sides normalise alike.
        let (tm, tv) = (Tensor(mean, shape: [channels]).to(.reference), Tensor(variance, shape: [channels]).to(.reference))
        let (expectedSpikes, saved) = reference.batchNormNeuronScan(tx, gamma: tg, beta: tb, mean: tm, variance: tv,
                                                                    epsilon: Double(epsilon), residual: tr, steps: steps, neuron)
        #expect(spikes.map(Double.init) == expectedSpikes.toDoubles(), "\(c): spikes differ")
        let fired = spikes.filter { $0 == 1 }.count
        #expect(fired > total / 10 && fired < total * 9 / 10, "the neurons must fire sometimes: \(fired) of \(total)")
        let g = reference.batchNormNeuronScanBackward(Tensor(gs, shape: shape).to(.reference), saved: saved)
        #expect(worst(gradInput, g.input) <= 1e-5, "\(c): input gradient")
        #expect(worst(gradGamma, g.gamma) <= 1e-5, "\(c): γ gradient")
        #expect(worst(gradBeta, g.beta) <= 1e-5, "\(c): β gradient")
        if c.residual, let expected = g.residual {
            #expect(worst(gradResidual, expected) <= 1e-5, "\(c): residual gradient")
        }
        // --amp: reading the input as bfloat16 (form 1) or half (2) would hold it gives the spikes of
        // the input rounded beforehand; the backward pass reads the 16-bit copy itself (3, 4) and
        // gives the gradients of that rounded input.
        for (form, dtype) in [(Int32(1), DType.bfloat16), (2, .float16)] {
            let rounded = reference.cast(reference.cast(tx, to: dtype), to: .float32).toFloats()
            #expect(rounded != x, "\(dtype) rounding changes the input")
            // The 16-bit patterns of the rounded values (exact in the type).
            let bits = rounded.map { dtype == .bfloat16 ? UInt16($0.bitPattern >> 16) : Float16($0).bitPattern }
            var (direct, beforehand) = ([Float](repeating: .nan, count: total), [Float](repeating: .nan, count: total))
            forward(grid, UInt32(block), x, form, residual, gamma, beta, mean, variance, epsilon, &direct, Int64(n), Int32(steps),
                    Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset)
            forward(grid, UInt32(block), rounded, 0, residual, gamma, beta, mean, variance, epsilon, &beforehand, Int64(n), Int32(steps),
                    Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset)
            #expect(direct == beforehand, "\(c): spikes of the input read as \(dtype)")
            var stored = [Float](repeating: .nan, count: total)
            forward(grid, UInt32(block), bits, form + 2, residual, gamma, beta, mean, variance, epsilon, &stored, Int64(n), Int32(steps),
                    Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset)
            #expect(stored == beforehand, "\(c): spikes of the input stored as \(dtype)")
            func gradients(_ input: UnsafeRawPointer, _ inputForm: Int32) -> [Float] {
                var (gi, sg, sgx) = ([Float](repeating: .nan, count: total), [Float](repeating: .nan, count: n), [Float](repeating: .nan, count: n))
                backward(grid, UInt32(block), gs, input, inputForm, residual, 0, gamma, beta, mean, variance, epsilon, &gi, nil, &sg, &sgx,
                         Int64(n), Int32(steps), Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset, a.surrogate,
                         a.parameter)
                inputGradient(UInt32((total + block - 1) / block), UInt32(block), input, inputForm, &gi, gamma, mean, variance, epsilon,
                              gradGamma, gradBeta, Float(total / channels), Int64(total), Int32(channels), Int64(plane))
                return gi + sg + sgx
            }
            #expect(gradients(bits, form + 2) == gradients(rounded, 0), "\(c): gradients from the \(dtype) copy")
        }

        // The three kernels as one cooperative launch: the same numbers, bit for bit, from grids
        // smaller than the work (each block strides over neurons, channels and elements) and
        // from one block, with the barrier's word used again without a reset.
        typealias Fused = @convention(c) (UInt32, UnsafePointer<Float>, UnsafeRawPointer, Int32, UnsafeRawPointer?, Float,
                                          UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                          Float, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?,
                                          UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                          UnsafeMutablePointer<Float>, UnsafeMutablePointer<UInt32>, Int64, Int32, Int32, Int64,
                                          Float, Float, Int32, Float, Int32, Float) -> Void
        let fused = try function("emulate_bn_neuron_backward_fused", Fused.self)
        var arrived: UInt32 = 0
        for blocks in [3, 1, 2] {
            var (gi, gr) = ([Float](repeating: .nan, count: total), [Float](repeating: .nan, count: total))
            var (sg, sgx) = ([Float](repeating: .nan, count: n), [Float](repeating: .nan, count: n))
            var (gb, gg) = ([Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
            gr.withUnsafeMutableBufferPointer { gr in
                fused(UInt32(blocks), gs, x, 0, residual, 0, gamma, beta, mean, variance, epsilon, &gi, c.residual ? gr.baseAddress : nil,
                      &sg, &sgx, &gb, &gg, &arrived, Int64(n), Int32(steps), Int32(channels), Int64(plane), a.decay, a.threshold,
                      a.softReset, a.vReset, a.surrogate, a.parameter)
            }
            #expect(gi == gradInput && gb == gradBeta && gg == gradGamma, "\(c): one cooperative launch of \(blocks) blocks")
            if c.residual { #expect(gr == gradResidual, "\(c): residual gradient, \(blocks) blocks") }
            #expect(arrived & 0x7fff_ffff == 0)
        }

        // A residual of spikes (quantum 1) or pooled spikes (quantum 1/4), read as the bytes it is
        // saved in: the gradients of the same residual in float32, bit for bit, in three launches
        // and in one.
        guard c.residual else { return }
        for quantum: Float in [1, 0.25] {
            let levels = quantum == 1 ? 2 : 5   // spikes 0, 1; pooled spikes 0, ¼, ..., 1
            let codes: [UInt8] = (0..<total).map { (i: Int) -> UInt8 in UInt8((i * 7919 + i / 13) % levels) }
            let values = codes.map { Float($0) * quantum }
            func gradients(_ residual: UnsafeRawPointer, _ q: Float, fusedBlocks: Int?) -> [Float] {
                var (gi, gr) = ([Float](repeating: .nan, count: total), [Float](repeating: .nan, count: total))
                var (sg, sgx) = ([Float](repeating: .nan, count: n), [Float](repeating: .nan, count: n))
                var (gb, gg) = ([Float](repeating: .nan, count: channels), [Float](repeating: .nan, count: channels))
                if let fusedBlocks {
                    fused(UInt32(fusedBlocks), gs, x, 0, residual, q, gamma, beta, mean, variance, epsilon, &gi, &gr, &sg, &sgx, &gb, &gg,
                          &arrived, Int64(n), Int32(steps), Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset,
                          a.surrogate, a.parameter)
                } else {
                    backward(grid, UInt32(block), gs, x, 0, residual, q, gamma, beta, mean, variance, epsilon, &gi, &gr, &sg, &sgx,
                             Int64(n), Int32(steps), Int32(channels), Int64(plane), a.decay, a.threshold, a.softReset, a.vReset,
                             a.surrogate, a.parameter)
                }
                return gi + gr + sg + sgx
            }
            for blocks in [nil, 3] as [Int?] {
                let fromFloats = gradients(values, 0, fusedBlocks: blocks), fromBytes = gradients(codes, quantum, fusedBlocks: blocks)
                #expect(fromBytes == fromFloats, "\(c): residual as bytes of quantum \(quantum), \(blocks.map { "\($0) blocks" } ?? "three launches")")
                #expect(!fromBytes.contains { $0.isNaN })
            }
        }
    }

    @Test("the TRT penalty and its gradient: the emulated kernels against the reference backend")
    func trtRegularizer() throws {
        typealias Launch = @convention(c) (UInt32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Double>,
                                           Int64, UnsafePointer<Float>, Int32, Float, Float, UnsafeMutablePointer<Float>) -> Void
        let handle = try Self.emulated("trt_regularizer_harness.cpp")
        let launch = unsafeBitCast(try #require(dlsym(handle, "emulate_trt_regularizer")), to: Launch.self)
        // 1,000 weights in blocks of 256 (three full, a partial fourth), zeros included; T = 6.
        let n = 1000
        var w = RandomInputs(seed: 51).normalValues(n, std: 0.05).map(Float.init)
        for i in stride(from: 0, to: n, by: 97) { w[i] = 0 }
        let coefficients = (0..<6).map { Foundation.exp(0.5 * Double($0)) - 1 }
        let (lambda, epsilon) = (5e-3, 1e-5)
        let grid = (n + 255) / 256
        var grad = [Float](repeating: .nan, count: n), partials = [Double](repeating: .nan, count: grid), value: Float = .nan
        launch(UInt32(grid), w, &grad, &partials, Int64(n), coefficients.map(Float.init), Int32(coefficients.count), Float(lambda),
               Float(epsilon), &value)
        let expected = Device.reference.backend.trtRegularizer([Tensor(w, shape: [n]).to(.reference)], lambda: lambda,
                                                               coefficients: coefficients, epsilon: epsilon)
        let expectedValue = expected.value.toDoubles()[0]
        #expect(Swift.abs(Double(value) - expectedValue) <= 1e-5 * expectedValue, "value \(value) against \(expectedValue)")
        let e = expected.gradients[0].toDoubles()
        let scale = e.map { Swift.abs($0) }.max()!
        #expect(zip(grad, e).map { Swift.abs(Double($0) - $1) }.max()! <= 1e-5 * scale)
    }

    @Test("the fused optimiser step: three steps of each kind against SNNTraining's Optimizer on the reference backend",
          arguments: Optimizer.Kind.allCases)
    func optimizer(kind: Optimizer.Kind) throws {
        typealias Launch = @convention(c) (UInt32, UInt32, UnsafeMutablePointer<Float>, UnsafePointer<Float>,
                                           UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int32, Float, Float,
                                           Float, Float, Float, Float, Float, Float, Float, Float) -> Void
        let handle = try Self.emulated("optimizer_harness.cpp")
        let launch = unsafeBitCast(try #require(dlsym(handle, "emulate_optimizer_step")), to: Launch.self)
        // 700 parameters in blocks of 256 (two full, a partial third).
        let (n, block) = (700, 256)
        let r = RandomInputs(seed: 61)
        var p = r.normalValues(n, std: 0.1).map(Float.init)
        let initial = p
        var (s1, s2) = ([Float](repeating: 0, count: n), [Float](repeating: 0, count: n))
        let reference = Optimizer(kind, learningRate: 0.01, weightDecay: 0.05)
        let flat = Tensor(p, shape: [n]).to(.reference)
        let named = [(key: "w", value: flat)]
        let code: Int32 = switch kind {
        case .sgd: 0
        case .adam: 1
        case .adamW: 2
        case .rmsprop: 3
        }
        for step in 1...3 {
            let g = r.normalValues(n, std: 0.5).map(Float.init)
            reference.step(flat: flat, gradients: Tensor(g, shape: [n]).to(.reference), named: named)
            let (c1, c2) = (1 - Foundation.pow(reference.beta1, Double(step)), 1 - Foundation.pow(reference.beta2, Double(step)))
            let epsilon = kind == .rmsprop ? reference.rmsEpsilon : reference.adamEpsilon
            let beta2 = kind == .rmsprop ? reference.rmsAlpha : reference.beta2
            launch(UInt32((n + block - 1) / block), UInt32(block), &p, g, &s1, &s2, Int64(n), code, Float(reference.learningRate),
                   Float(reference.weightDecay), Float(reference.beta1), Float(beta2), Float(1 - reference.beta1), Float(1 - beta2),
                   Float(epsilon), Float(reference.momentum), Float(c1), Float(c2.squareRoot()))
        }
        let expected = flat.toDoubles()
        let worst = zip(p, expected).map { Swift.abs(Double($0) - $1) }.max()!
        #expect(worst <= 1e-6, "\(kind): parameters differ by \(worst)")
        let moved = zip(p, initial).map { Swift.abs($0 - $1) }.max()!
        #expect(moved > 1e-3, "\(kind): the steps must move the parameters (moved \(moved))")
    }

    /// Strided operands over the output shape [6, 7, 9] (378 elements, three blocks of 128 and a
    /// partial): a transposed one, a broadcast one (stride 0) read past an offset, a contiguous one.
    struct Strided {
        static let shape = [6, 7, 9]
        static let count = 378
        /// Storage [9, 7, 6] read as [6, 7, 9].
        static let transposed: [Int64] = [1, 6, 42]
        /// Storage [3 ignored, then 7] read as [6, 7, 9].
        static let broadcast: [Int64] = [0, 1, 0]
        static let contiguous: [Int64] = [63, 9, 1]

        static func at(_ i: Int, _ strides: [Int64], offset: Int = 0) -> Int {
            let (a, b, c) = (i / 63, (i / 9) % 7, i % 9)
            return offset + a * Int(strides[0]) + b * Int(strides[1]) + c * Int(strides[2])
        }
    }

    @Test("elementwise ops over transposed, broadcast and offset operands, and ordered reductions, against the reference backend")
    func elementwise() throws {
        typealias Unary = @convention(c) (Int32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int32,
                                          UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias Binary = @convention(c) (Int32, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64,
                                           Int32, UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias Scalar = @convention(c) (Int32, UnsafePointer<Float>, Float, Int32, UnsafeMutablePointer<Float>, Int64, Int32,
                                           UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias Select = @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                           UnsafeMutablePointer<Float>, Int64, Int32, UnsafePointer<Int64>, UnsafePointer<Int64>,
                                           UnsafePointer<Int64>) -> Void
        typealias Reduce = @convention(c) (Int32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int64, Int32,
                                           UnsafePointer<Int64>, UnsafePointer<Int64>, Int32, UnsafePointer<Int64>,
                                           UnsafePointer<Int64>) -> Void
        let handle = try Self.emulated("elementwise_harness.cpp")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { unsafeBitCast(try #require(dlsym(handle, name)), to: type) }
        let (unary, binary) = (try function("emulate_unary", Unary.self), try function("emulate_binary", Binary.self))
        let (scalar, select) = (try function("emulate_binary_scalar", Scalar.self), try function("emulate_select", Select.self))
        let reduce = try function("emulate_reduce", Reduce.self)

        let n = Strided.count
        let shape = Strided.shape.map(Int64.init)
        let r = RandomInputs(seed: 71)
        // a: multiples of 1/4 in [0.5, 2] (so comparisons meet equal values); b: 3 ignored, then 7.
        let aStorage = r.uniformValues(n, low: 2, high: 8).map { Float(($0).rounded()) / 4 }
        let bStorage: [Float] = [9, 9, 9] + [0.5, 1, -1.25, 1.5, 0.75, -0.5, 1]
        let a = (0..<n).map { aStorage[Strided.at($0, Strided.transposed)] }
        let b = (0..<n).map { bStorage[Strided.at($0, Strided.broadcast, offset: 3)] }
        let strides = [Int64](repeating: 0, count: 3) + Strided.transposed + Strided.broadcast
        let offsets: [Int64] = [0, 0, 3]
        let reference = Device.reference.backend
        let (ta, tb) = (Tensor(a, shape: Strided.shape).to(.reference), Tensor(b, shape: Strided.shape).to(.reference))
        func close(_ got: [Float], _ expected: Tensor, _ what: String) {
            let e = expected.toDoubles()
            let worst = zip(got, e).map { Swift.abs(Double($0) - $1) / Swift.max(Swift.abs($1), 1) }.max()!
            #expect(worst <= 1e-6, "\(what): off by \(worst)")
        }
        for (code, op) in UnaryOp.allCases.enumerated() {
            var y = [Float](repeating: .nan, count: n)
            unary(Int32(code), aStorage, &y, Int64(n), 3, shape, strides, [0, 0, 0])
            close(y, reference.unary(op, ta), "\(op)")
        }
        for (code, op) in BinaryOp.allCases.enumerated() {
            var y = [Float](repeating: .nan, count: n)
            binary(Int32(code), aStorage, bStorage, &y, Int64(n), 3, shape, strides, offsets)
            close(y, reference.binary(op, ta, tb), "\(op)")
            for scalarFirst in [false, true] {
                scalar(Int32(code), aStorage, 1.25, scalarFirst ? 1 : 0, &y, Int64(n), 3, shape, strides, [0, 0, 0])
                close(y, reference.binary(op, ta, scalar: 1.25, scalarFirst: scalarFirst), "\(op) with a scalar")
            }
        }
        typealias Clamp = @convention(c) (UnsafePointer<Float>, Float, Float, UnsafeMutablePointer<Float>, Int64, Int32,
                                          UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        var clamped = [Float](repeating: .nan, count: n)
        try function("emulate_clamp", Clamp.self)(aStorage, 0.75, 1.5, &clamped, Int64(n), 3, shape, strides, [0, 0, 0])
        close(clamped, reference.clamp(ta, low: 0.75, high: 1.5), "clamp")
        // select(a > 1, a, b): the condition contiguous in slot 0.
        let condition = a.map { $0 > 1 ? Float(1) : 0 }
        var selected = [Float](repeating: .nan, count: n)
        select(condition, aStorage, bStorage, &selected, Int64(n), 3, shape, Strided.contiguous + Strided.transposed + Strided.broadcast,
               offsets)
        close(selected, reference.select(Tensor(condition, shape: Strided.shape).to(.reference), ta, tb), "select")
        // Reductions of the transposed operand over [1] and over [0, 2].
        for (code, op) in ReduceOp.allCases.enumerated() {
            for axes in [[1], [0, 2]] {
                let kept = (0..<3).filter { !axes.contains($0) }
                let outputs = kept.map { Strided.shape[$0] }.reduce(1, *), inner = axes.map { Strided.shape[$0] }.reduce(1, *)
                var y = [Float](repeating: .nan, count: outputs)
                reduce(Int32(code), aStorage, &y, Int64(outputs), Int64(inner), Int32(kept.count), kept.map { shape[$0] },
                       kept.map { Strided.transposed[$0] }, Int32(axes.count), axes.map { shape[$0] }, axes.map { Strided.transposed[$0] })
                close(y, reference.reduce(op, ta, axes: axes), "\(op) over \(axes)")
            }
        }
    }

    @Test("copies, float32 ↔ uint8 casts of spike codes, one-hot rows of int64 and int32 labels and int64 counts against the reference backend")
    func copiesCastsOneHot() throws {
        typealias Copy = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int32, UnsafePointer<Int64>,
                                         UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias ToBytes = @convention(c) (UnsafePointer<Float>, UnsafeMutablePointer<UInt8>, Int64, Int32, UnsafePointer<Int64>,
                                            UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias FromBytes = @convention(c) (UnsafePointer<UInt8>, UnsafeMutablePointer<Float>, Int64, Int32, UnsafePointer<Int64>,
                                              UnsafePointer<Int64>, UnsafePointer<Int64>) -> Void
        typealias OneHot = @convention(c) (UnsafeRawPointer, Int32, UnsafeMutablePointer<Float>, Int64, Int32,
                                           UnsafeMutablePointer<Int64>) -> Void
        typealias AddInt64 = @convention(c) (UnsafePointer<Int64>, Int64, UnsafeMutablePointer<Int64>, Int64) -> Void
        let handle = try Self.emulated("elementwise_harness.cpp")
        func function<T>(_ name: String, _ type: T.Type) throws -> T { unsafeBitCast(try #require(dlsym(handle, name)), to: type) }
        let n = Strided.count
        let shape = Strided.shape.map(Int64.init)
        let strides = [Int64](repeating: 0, count: 3) + Strided.transposed + [0, 0, 0]
        // Codes of pooled spikes (0…4) stored transposed, as floats.
        let storage = RandomInputs(seed: 73).uniformValues(n, low: 0, high: 5).map { Float(Int($0)) }
        let logical = (0..<n).map { storage[Strided.at($0, Strided.transposed)] }
        var copied = [Float](repeating: .nan, count: n)
        try function("emulate_copy", Copy.self)(storage, &copied, Int64(n), 3, shape, strides, [0, 0, 0])
        #expect(copied == logical)
        var codes = [UInt8](repeating: 255, count: n)
        try function("emulate_cast_f32_u8", ToBytes.self)(storage, &codes, Int64(n), 3, shape, strides, [0, 0, 0])
        let reference = Device.reference.backend
        let tensor = Tensor(logical, shape: Strided.shape).to(.reference)
        #expect(codes.map(Double.init) == reference.cast(tensor, to: .uint8).toDoubles())
        var restored = [Float](repeating: .nan, count: n)
        try function("emulate_cast_u8_f32", FromBytes.self)(codes, &restored, Int64(n), 3, shape, Strided.contiguous.map { _ in 0 }
            + Strided.contiguous + [0, 0, 0], [0, 0, 0])
        #expect(restored == logical)
        // Values a spike code never holds: truncated toward zero and saturated, NaN giving 0, as
        // every backend casts (C leaves the conversion undefined).
        let odd: [Float] = [-.infinity, -300, -1.5, -0.5, 0.7, 1.999, 254.9, 255.5, 300, 3e9, .infinity, .nan]
        var oddCodes = [UInt8](repeating: 7, count: odd.count)
        let (oddShape, oddStrides) = ([Int64(odd.count), 1, 1], [Int64](repeating: 0, count: 3) + [1, 1, 1] + [0, 0, 0])
        try function("emulate_cast_f32_u8", ToBytes.self)(odd, &oddCodes, Int64(odd.count), 3, oddShape, oddStrides, [0, 0, 0])
        #expect(oddCodes == [0, 0, 0, 0, 0, 1, 254, 255, 255, 255, 255, 0])
        #expect(oddCodes.map(Double.init) == reference.cast(Tensor(odd, shape: [odd.count]).to(.reference), to: .uint8).toDoubles())
        // One-hot rows of 10 classes for 45 labels (450 values: three blocks and a partial fourth).
        let labels = (0..<45).map { Int64(($0 * 7) % 10) }
        var rows = [Float](repeating: .nan, count: 450)
        var bad: [Int64] = [0, 0, 0, 0]
        let emulatedOneHot = try function("emulate_one_hot", OneHot.self)
        // int64 labels, as the backend's own; int32, as datasets give them.
        func oneHot(_ labels: [Int64], wide: Bool, _ rows: inout [Float], _ bad: inout [Int64]) {
            if wide {
                labels.withUnsafeBytes { emulatedOneHot($0.baseAddress!, 1, &rows, Int64(labels.count), 10, &bad) }
            } else {
                labels.map { Int32($0) }.withUnsafeBytes { emulatedOneHot($0.baseAddress!, 0, &rows, Int64(labels.count), 10, &bad) }
            }
        }
        let expected = reference.oneHot(Tensor(labels.map(Float.init), shape: [45]).to(.reference), classes: 10, dtype: .float32)
        for wide in [true, false] {
            (rows, bad) = ([Float](repeating: .nan, count: 450), [0, 0, 0, 0])
            oneHot(labels, wide: wide, &rows, &bad)
            #expect(rows.map(Double.init) == expected.toDoubles() && bad == [0, 0, 0, 0], "wide: \(wide)")
            for (index, label) in [(17, Int64(10)), (44, -1)] {
                bad = [0, 0, 0, 0]
                oneHot(labels.enumerated().map { $0.offset == index ? label : $0.element }, wide: wide, &rows, &bad)
                #expect(bad == [1, label, Int64(index), 10], "a label of \(label) among 10 classes is reported with its index and the classes")
            }
        }
        // Counts: int64 plus a whole number, beyond float32's and float64's exact integers.
        let counts: [Int64] = (0..<300).map { Int64($0) * 1_000_000_007 - (1 << 62) }
        var moved = [Int64](repeating: 0, count: counts.count)
        try function("emulate_add_i64", AddInt64.self)(counts, 3, &moved, Int64(counts.count))
        #expect(moved == counts.map { $0 + 3 })
    }

    @Test("random draws (uniform, Bernoulli, normal into float32, bfloat16 and half) are the engine generator's, bit for bit")
    func randomDraws() throws {
        typealias Draw = @convention(c) (Int32, Double, Double, UInt64, UInt64, UnsafeMutableRawPointer, Int32, Int64) -> Void
        let handle = try Self.emulated("elementwise_harness.cpp")
        let draw = unsafeBitCast(try #require(dlsym(handle, "emulate_random")), to: Draw.self)
        // 1,031 elements: 258 threads of 4 uniform draws (two blocks of 128 and a partial third),
        // 516 of 2 normal ones; the last thread has fewer elements than words.
        let n = 1031
        let cases: [(RandomDistribution, Int32, Double, Double)] = [
            (.uniform(low: -0.5, high: 2.25), 0, -0.5, 2.25), (.bernoulli(probability: 0.3), 1, (0.3 * 0x1p24).rounded(.up), 0),
            (.bernoulli(probability: 0.5), 1, 0x1p23, 0), (.bernoulli(probability: 1e-9), 1, 1, 0), (.normal(mean: 0.5, std: 2), 2, 0.5, 2),
        ]
        for (distribution, code, a, b) in cases {
            for (dtype, dtypeCode) in [(DType.float32, Int32(0)), (.bfloat16, 1), (.float16, 2)] {
                for (seed, counter) in [(UInt64(7), UInt64(0)), (0x9E37_79B9_7F4A_7C15, 4 * 1_000_003)] {
                    let expected = Tensor.empty([n], dtype: dtype, device: .reference)
                    HostMemory.random(distribution, into: expected, seed: seed, counter: counter)
                    let buffer = UnsafeMutableRawPointer.allocate(byteCount: n * dtype.size, alignment: 8)
                    defer { buffer.deallocate() }
                    buffer.initializeMemory(as: UInt8.self, repeating: 0xff, count: n * dtype.size)   // NaN until written
                    draw(code, a, b, seed, counter / 4, buffer, dtypeCode, Int64(n))
                    let got = (0..<n).map { dtype.load(buffer, $0) }
                    let differing = zip(got, expected.toDoubles()).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                    #expect(differing == 0, "\(distribution) into \(dtype), seed \(seed), counter \(counter): \(differing) of \(n) differ")
                }
            }
        }
    }

    @Test("the emulation itself: shared memory and barriers (a tree sum per block; without its barriers, wrong sums), threads that return early")
    func emulationBarriers() throws {
        typealias Launch = @convention(c) (UInt32, UInt32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int32) -> Void
        typealias Sums = @convention(c) (UInt32, UInt32, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int32, Int32) -> Void
        let handle = try Self.emulated("emulation_selftest.cpp")
        let sums = unsafeBitCast(try #require(dlsym(handle, "emulate_block_sums")), to: Sums.self)
        let reverse = unsafeBitCast(try #require(dlsym(handle, "emulate_early_exit")), to: Launch.self)
        let (n, block) = (300, 64)
        let x = (0..<n).map { Float($0 % 17) - 3 }
        var out = [Float](repeating: .nan, count: 5)
        sums(5, UInt32(block), x, &out, Int32(n), 1)
        let expected = (0..<5).map { b in x[(b * block)..<Swift.min((b + 1) * block, n)].reduce(0, +) }
        #expect(out == expected)
        // The test can fail: without the barriers inside the tree, threads read partial sums
        // before they are complete.
        var raced = [Float](repeating: .nan, count: 5)
        sums(5, UInt32(block), x, &raced, Int32(n), 0)
        #expect(raced != expected)
        var y = [Float](repeating: .nan, count: n)
        reverse(5, UInt32(block), x, &y, Int32(n))
        let reversed = (0..<5).flatMap { b in x[(b * block)..<Swift.min((b + 1) * block, n)].reversed() }
        #expect(y == reversed)
    }

    @Test("the emulation runs neither blocks nor threads in index order: an in-place shift, whose result depends on the order, gives neither index order's result nor reversed order's")
    func emulationOrder() throws {
        typealias Shift = @convention(c) (UInt32, UInt32, UnsafeMutablePointer<Float>, Int32, Int32) -> Void
        let shift = unsafeBitCast(try #require(dlsym(try Self.emulated("emulation_selftest.cpp"), "emulate_shift_in_place")), to: Shift.self)
        let n = 1000
        let x = (0..<n).map(Float.init)
        let indexOrder = [Float](repeating: 0, count: n), reversedOrder = [Float(0)] + x.dropLast()
        // Threads of one block, blocks of one thread, both; one after another and as fibers.
        for (grid, block) in [(1, 1024), (1000, 1), (8, 128)] {
            for sequential in [Int32(1), 0] {
                var y = x
                shift(UInt32(grid), UInt32(block), &y, Int32(n), sequential)
                #expect(y != indexOrder && y != reversedOrder, "grid \(grid), blocks of \(block), sequential \(sequential)")
                #expect(y.allSatisfy { $0 >= 0 && $0 < Float(n) }, "grid \(grid), blocks of \(block)")
            }
        }
    }

    @Test("the grid-wide barrier of cooperative launches: blocks see each other's stores, round after round, and the barrier's word is ready for the next launch")
    func gridBarrier() throws {
        typealias Rounds = @convention(c) (UInt32, UInt32, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                           UnsafeMutablePointer<UInt32>, Int32, Int32) -> Void
        let handle = try Self.emulated("emulation_selftest.cpp")
        let rounds = unsafeBitCast(try #require(dlsym(handle, "emulate_grid_rounds")), to: Rounds.self)
        let (blocks, count) = (4, 3)
        // Round r: the slots hold 100r + b, so every block's sum is 400r + 6.
        let expected = (0..<count).flatMap { r in [Float](repeating: Float(400 * r + 6), count: blocks) }
        var arrived: UInt32 = 0
        for launch in 0..<2 {   // the word is used again without being reset
            var (slots, sums) = ([Float](repeating: -1000, count: blocks), [Float](repeating: .nan, count: blocks * count))
            rounds(UInt32(blocks), 32, &slots, &sums, &arrived, Int32(count), 1)
            #expect(sums == expected, "launch \(launch)")
            #expect(arrived & 0x7fff_ffff == 0, "the low bits are zero after every barrier: \(arrived)")
        }
        // The test can fail: without the barriers, block 0 adds up slots the others have not written yet.
        var (slots, sums) = ([Float](repeating: -1000, count: blocks), [Float](repeating: .nan, count: blocks * count))
        var unused: UInt32 = 0
        rounds(UInt32(blocks), 32, &slots, &sums, &unused, Int32(count), 0)
        #expect(sums != expected)
    }

    @Test("every kernel compiles with NVRTC for sm_80, sm_90 and sm_100, without spilling and in at most 64 registers a thread")
    func nvrtcCompiles() throws {
        _ = try #require(CUDAWheels.folder, Comment(rawValue: CUDAWheels.missing))
        let nvrtc = try NVRTC()
        for kernel in CUDAKernels.all {
            let declared = Set(CUDAKernels.kernelNames(in: kernel.source))
            for architecture in ["sm_80", "sm_90", "sm_100"] {
                let (cubin, log) = try nvrtc.compileWithLog(kernel.source, name: kernel.name, architecture: architecture,
                                                            options: ["--ptxas-options=-v"])
                #expect(Array(cubin.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "\(kernel.name) for \(architecture)")
                let resources = KernelResources.parse(log: log)
                #expect(Set(resources.map(\.name)) == declared, "\(kernel.name) for \(architecture): \(log)")
                for r in resources {
                    #expect(Self.resourceProblems(r).isEmpty, "\(kernel.name) for \(architecture): \(Self.resourceProblems(r))")
                }
            }
        }
    }

    /// What is wrong with a kernel's resources: any stack or spilling (local memory, slow), or
    /// more than 64 registers a thread, with which fewer than four blocks of 256 threads fit on a
    /// multiprocessor (65,536 registers).
    static func resourceProblems(_ r: KernelResources) -> [String] {
        var problems: [String] = []
        if r.stackBytes != 0 || r.spillStoreBytes != 0 || r.spillLoadBytes != 0 {
            problems.append("\(r.name): \(r.stackBytes) bytes stack, \(r.spillStoreBytes)/\(r.spillLoadBytes) bytes spilled")
        }
        if !(1...64).contains(r.registers) { problems.append("\(r.name): \(r.registers) registers") }
        return problems
    }

    @Test("ptxas's report is read kernel by kernel, and a kernel that spills or needs many registers is caught")
    func kernelResources() {
        let log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'snn_fast' for 'sm_90'
            ptxas info    : Function properties for snn_fast
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 36 registers, used 1 barriers, 2048 bytes smem
            ptxas info    : Compiling entry function 'snn_spills' for 'sm_90'
            ptxas info    : Function properties for snn_spills
            ptxas         .     48 bytes stack frame, 40 bytes spill stores, 40 bytes spill loads
            ptxas info    : Used 255 registers, used 0 barriers
            ptxas info    : Compile time = 12.0 ms
            """
        let kernels = KernelResources.parse(log: log)
        #expect(kernels == [KernelResources(name: "snn_fast", registers: 36, sharedBytes: 2048),
                            KernelResources(name: "snn_spills", registers: 255, stackBytes: 48, spillStoreBytes: 40, spillLoadBytes: 40)])
        #expect(Self.resourceProblems(kernels[0]).isEmpty)
        #expect(Self.resourceProblems(kernels[1]) == ["snn_spills: 48 bytes stack, 40/40 bytes spilled", "snn_spills: 255 registers"])
    }
}

/// The compiled harnesses of this process, in one temporary folder removed at exit.
final class EmulatedLibraries: @unchecked Sendable {
    static let shared = EmulatedLibraries()
    private let lock = NSLock()
    private var handles: [String: UnsafeMutableRawPointer] = [:]
    private static let folder = NSTemporaryDirectory() + "snn-emulated-\(getpid())"

    private init() {
        atexit { try? FileManager.default.removeItem(atPath: EmulatedLibraries.folder) }
    }

    func open(_ harness: String) throws -> UnsafeMutableRawPointer {
        lock.lock()
        defer { lock.unlock() }
        if let handle = handles[harness] { return handle }
        let folder = Self.folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for kernel in CUDAKernels.all {
            try kernel.source.write(toFile: "\(folder)/\(kernel.name)", atomically: true, encoding: .utf8)
        }
        for (name, source) in CUDAKernels.parts {
            try source.write(toFile: "\(folder)/part_\(name).cu", atomically: true, encoding: .utf8)
        }
        let library = "\(folder)/\((harness as NSString).deletingPathExtension).so"
        try HostCompiler.emulatedCUDA(harness, folder: folder, output: library)
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(harness): \(String(cString: dlerror()))"])
        }
        handles[harness] = handle
        return handle
    }
}
