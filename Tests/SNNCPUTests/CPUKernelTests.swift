@testable import SNNCPU
import SNNTensor
import Testing

/// The Swift kernels of the CPU backend (elementwise, reductions, copies, the fused neuron)
/// agree with the reference backend on contiguous, broadcast, permuted and sliced views, on
/// sizes that are not multiples of any block and on sizes large enough to run in parallel.
@Suite("CPU Swift kernels")
struct CPUKernelTests {
    init() { CPUBackend.register() }

    private let cpu = CPUBackend.shared
    private let ref = ReferenceBackend.shared

    // MARK: - Inputs

    /// Normal floats, optionally mapped.
    static func values(_ count: Int, _ seed: UInt64, _ f: (Float) -> Float = { $0 }) -> [Float] {
        RandomGenerator(seed: seed).normal(count).map(f)
    }

    static func tensor(_ shape: [Int], _ seed: UInt64, _ f: (Float) -> Float = { $0 }) -> Tensor {
        Tensor(values(ShapeUtil.count(shape), seed, f), shape: shape)
    }

    /// `[3, 37, 41]`-shaped operands laid out in every way a backend meets.
    static let shape = [3, 37, 41]

    static func view(_ kind: String, _ seed: UInt64, _ f: (Float) -> Float = { $0 }) -> Tensor {
        let s = shape
        switch kind {
        case "contiguous": return tensor(s, seed, f)
        case "permuted": return tensor([s[2], s[0], s[1]], seed, f).permuted([1, 2, 0])
        case "sliced":
            return tensor([s[0] + 2, s[1], s[2] + 5], seed, f).sliced(axis: 0, 1..<(s[0] + 1)).sliced(axis: 2, 3..<(s[2] + 3))
        case "broadcast": return tensor([s[0], 1, s[2]], seed, f).expanded(to: s)
        case "row": return tensor([s[2]], seed, f).expanded(to: s)
        case "scalar": return tensor([], seed, f).expanded(to: s)
        default: preconditionFailure("unknown view \(kind)")
        }
    }

    static let viewKinds = ["contiguous", "permuted", "sliced", "broadcast", "row", "scalar"]

    // MARK: - Comparisons

    /// Every element within `rtol * |expected| + atol` (NaNs and infinities must match).
    private func expectClose(_ a: Tensor, _ b: Tensor, rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.shape == b.shape, "\(what): shape", sourceLocation: sourceLocation)
        #expect(a.device == .cpu, "\(what): device", sourceLocation: sourceLocation)
        let x = a.toDoubles(), y = b.toDoubles()
        let bad = zip(x, y).enumerated().first { _, p in
            !(p.0 == p.1 || (p.0.isNaN && p.1.isNaN) || Swift.abs(p.0 - p.1) <= rtol * Swift.abs(p.1) + atol)
        }
        #expect(bad == nil, "\(what): element \(bad?.offset ?? -1): \(bad?.element.0 ?? 0) vs \(bad?.element.1 ?? 0)",
                sourceLocation: sourceLocation)
    }

    /// max |a - b| / max |b|: for sums and gradients, whose small entries cancel, the error
    /// relative to the largest expected magnitude. Where every expected value is 0 the error is
    /// absolute (scale 1), so any difference beyond the bound still fails.
    private func scaledError(_ a: Tensor, _ b: Tensor) -> Double {
        let x = a.toDoubles(), y = b.toDoubles()
        let largest = y.map { Swift.abs($0) }.max() ?? 0
        let scale = largest > 0 ? largest : 1
        return zip(x, y).map { Swift.abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    // MARK: - Elementwise

    @Test("unary ops on every view", arguments: UnaryOp.allCases)
    func unary(_ op: UnaryOp) {
        // log and sqrt get positive inputs; the rest see both signs.
        let f: (Float) -> Float = op == .log || op == .sqrt ? { Swift.abs($0) + 0.05 } : { $0 * 2 }
        for kind in ["contiguous", "permuted", "sliced", "broadcast", "scalar"] {
            let x = Self.view(kind, 1, f)
            expectClose(cpu.unary(op, x), ref.unary(op, x), "\(op) \(kind)")
        }
        let big = Self.tensor([70_001], 2, f)  // parallel, odd length
        expectClose(cpu.unary(op, big), ref.unary(op, big), "\(op) large")
    }

    @Test("binary ops on contiguous, broadcast, permuted and sliced operands", arguments: BinaryOp.allCases)
    func binary(_ op: BinaryOp) {
        // Values on a 0.5 grid make comparisons tie often; power gets a positive base.
        let grid: (Float) -> Float = { ($0 * 2).rounded() / 2 }
        let base: (Float) -> Float = op == .power ? { Swift.abs($0) + 0.1 } : grid
        let pairs = [("contiguous", "contiguous"), ("contiguous", "row"), ("row", "contiguous"), ("scalar", "permuted"),
                     ("sliced", "broadcast"), ("permuted", "sliced"), ("broadcast", "scalar")]
        for (ka, kb) in pairs {
            let a = Self.view(ka, 3, base), b = Self.view(kb, 4, grid)
            expectClose(cpu.binary(op, a, b), ref.binary(op, a, b), rtol: op == .power ? 1e-5 : 0, atol: 0, "\(op) \(ka) \(kb)")
        }
    }

    @Test("large binary ops: contiguous and a [C] vector broadcast over NCHW, streamed and not",
          arguments: [false, true])
    func binaryLarge(_ streamed: Bool) {
        // Every path gives the same bits, so changing the threshold is safe while other tests run.
        let saved = StreamingStore.minimumBytes
        if streamed { StreamingStore.minimumBytes = 0 }
        defer { StreamingStore.minimumBytes = saved }
        let x = Self.tensor([4, 33, 23, 25], 5), y = Self.tensor([4, 33, 23, 25], 6)
        expectClose(cpu.unary(.sigmoid, x.permuted([0, 3, 1, 2])), ref.unary(.sigmoid, x.permuted([0, 3, 1, 2])), "sigmoid")
        let c = Self.tensor([33], 7).reshaped([33, 1, 1]).expanded(to: x.shape)
        expectClose(cpu.binary(.add, x, y), ref.binary(.add, x, y), rtol: 0, atol: 0, "add")
        expectClose(cpu.binary(.multiply, x, c), ref.binary(.multiply, x, c), rtol: 0, atol: 0, "multiply by [C]")
        expectClose(cpu.binary(.subtract, c, x.permuted([0, 1, 3, 2]).permuted([0, 1, 3, 2])), ref.binary(.subtract, c, x),
                    rtol: 0, atol: 0, "[C] minus x")
    }

    @Test("clamp and select on every view")
    func clampAndSelect() {
        for kind in Self.viewKinds {
            let x = Self.view(kind, 8)
            expectClose(cpu.clamp(x, low: -0.3, high: 0.7), ref.clamp(x, low: -0.3, high: 0.7), rtol: 0, atol: 0, "clamp \(kind)")
            let cond = Self.view(kind, 9) { $0 > 0 ? 1 : 0 }
            let a = Self.view("permuted", 10), b = Self.view("row", 11)
            expectClose(cpu.select(cond, a, b), ref.select(cond, a, b), rtol: 0, atol: 0, "select \(kind)")
        }
        let big = Self.tensor([300, 257], 12)
        expectClose(cpu.clamp(big, low: 0, high: .infinity), ref.clamp(big, low: 0, high: .infinity), rtol: 0, atol: 0, "clamp large")
    }

    @Test("surrogate gradients", arguments: [Surrogate.triangle(gamma: 1), .triangle(gamma: 0.3), .sigmoid(alpha: 4),
                                              .sigmoid(alpha: 0.7), .rectangle(width: 1)])
    func surrogate(_ s: Surrogate) {
        for kind in ["contiguous", "permuted", "broadcast"] {
            let u = Self.view(kind, 13) { $0 * 1.5 }
            expectClose(cpu.surrogateGradient(u, s), ref.surrogateGradient(u, s), "\(s) \(kind)")
        }
    }

    @Test("empty tensors")
    func empty() {
        let x = Tensor.zeros([0, 3])
        #expect(cpu.unary(.exp, x).shape == [0, 3])
        #expect(cpu.binary(.add, x, x).shape == [0, 3])
        #expect(cpu.reduce(.sum, x, axes: [0]).toDoubles() == [0, 0, 0])
        #expect(cpu.reduce(.max, x, axes: [0]).toDoubles() == [-.infinity, -.infinity, -.infinity])
        #expect(cpu.contiguous(x).shape == [0, 3])
    }
}

// MARK: - Reductions, copies, casts, one-hot

extension CPUKernelTests {
    struct ReduceCase: CustomStringConvertible, Sendable {
        let shape: [Int], axes: [Int], permuted: Bool
        var description: String { "\(shape) over \(axes)\(permuted ? " (permuted view)" : "")" }
    }

    static let reduceCases: [ReduceCase] = [
        ReduceCase(shape: [4, 5, 6, 7], axes: [0, 1, 2, 3], permuted: false),
        ReduceCase(shape: [4, 5, 6, 7], axes: [0], permuted: false),
        ReduceCase(shape: [4, 5, 6, 7], axes: [3], permuted: false),
        ReduceCase(shape: [4, 5, 6, 7], axes: [0, 2, 3], permuted: false),
        ReduceCase(shape: [4, 5, 6, 7], axes: [1, 3], permuted: false),
        ReduceCase(shape: [4, 5, 6, 7], axes: [1, 2], permuted: true),
        ReduceCase(shape: [4, 1, 6, 1], axes: [1, 3], permuted: false),
        ReduceCase(shape: [3, 9, 40], axes: [0, 2], permuted: true),
        ReduceCase(shape: [150_001], axes: [0], permuted: false),  // parallel blocks with a tail
        ReduceCase(shape: [3, 50_001], axes: [1], permuted: false),  // long rows
        ReduceCase(shape: [40_000, 3], axes: [0], permuted: false),  // narrow rows, blocked
        ReduceCase(shape: [20, 5_001], axes: [0], permuted: false),  // wide rows, column split
        ReduceCase(shape: [6, 13, 17, 19], axes: [0, 2, 3], permuted: false),  // NCHW bias gradient
    ]

    @Test("sum and max over axis sets", arguments: reduceCases)
    func reduce(_ c: ReduceCase) {
        var x = Self.tensor(c.shape, 20)
        if c.permuted {
            x = Self.tensor(c.shape.reversed(), 20).permuted(Array((0..<c.shape.count).reversed()))
        }
        #expect(scaledError(cpu.reduce(.sum, x, axes: c.axes), ref.reduce(.sum, x, axes: c.axes)) < 1e-5, "sum \(c)")
        expectClose(cpu.reduce(.max, x, axes: c.axes), ref.reduce(.max, x, axes: c.axes), rtol: 0, atol: 0, "max \(c)")
    }

    @Test("max propagates NaN; sum-all of 10^6 values stays accurate")
    func reduceEdges() {
        var v = Self.values(4 * 37 * 64, 21)
        v[5 * 64 + 3] = .nan  // row 5 of [4*37, 64]
        let x = Tensor(v, shape: [4, 37, 64])
        expectClose(cpu.reduce(.max, x, axes: [2]), ref.reduce(.max, x, axes: [2]), rtol: 0, atol: 0, "max rows")
        expectClose(cpu.reduce(.max, x, axes: [0, 1, 2]), ref.reduce(.max, x, axes: [0, 1, 2]), rtol: 0, atol: 0, "max all")
        expectClose(cpu.reduce(.max, x, axes: [0, 2]), ref.reduce(.max, x, axes: [0, 2]), rtol: 0, atol: 0, "max [0, 2]")
        let u = RandomGenerator(seed: 22).uniform(1_000_000)
        let exact = u.reduce(0.0) { $0 + Double($1) }
        let sum = cpu.reduce(.sum, Tensor(u, shape: [1_000_000]), axes: [0]).item()
        #expect(Swift.abs(sum - exact) / exact < 1e-6)
    }

    @Test("contiguous copies of views for 1-, 2-, 4- and 8-byte dtypes")
    func contiguousCopies() {
        for kind in Self.viewKinds {
            let x = Self.view(kind, 30)
            expectClose(cpu.contiguous(x), ref.contiguous(x), rtol: 0, atol: 0, "float32 \(kind)")
            #expect(cpu.contiguous(x).isContiguous)
        }
        for dtype in [DType.uint8, .float16, .int32, .float64] {
            let base = Tensor(doubles: (0..<(5 * 7 * 3)).map { Double($0 % 200) }, shape: [5, 7, 3], dtype: dtype, device: .cpu)
            let views = [base.permuted([2, 0, 1]), base.sliced(axis: 1, 2..<6), base.sliced(axis: 2, 1..<2).expanded(to: [5, 7, 3])]
            for v in views {
                let c = cpu.contiguous(v)
                #expect(c.dtype == dtype && c.isContiguous && c.toDoubles() == ref.contiguous(v).toDoubles(), "\(dtype)")
            }
        }
    }

    @Test("casts between float32, float64, int32, int64 and uint8")
    func casts() {
        let dtypes: [DType] = [.float32, .float64, .int32, .int64, .uint8]
        let values = Self.values(7 * 9, 31) { ($0 * 40 + 100).rounded(.down) + 0.25 }  // 0..<256 mostly
        for from in dtypes {
            let base = Tensor(doubles: values.map { Double(Swift.min(Swift.max($0, 0), 255)) }, shape: [7, 9], dtype: from, device: .cpu)
            for x in [base, base.permuted([1, 0])] {
                for to in dtypes {
                    let c = cpu.cast(x, to: to)
                    #expect(c.dtype == to && c.toDoubles() == ref.cast(x, to: to).toDoubles(), "\(from) -> \(to)")
                }
            }
        }
    }

    @Test("casts to integers truncate toward zero and saturate, NaN giving 0, on both backends")
    func castsSaturate() {
        let values: [Double] = [-.infinity, -1e19, -3e9, -300, -1.5, -0.5, 0, 0.7, 1.999, 254.9, 255.5, 300,
                                3e9, 1e19, .infinity, .nan]
        func expected(_ to: DType) -> [Double] {
            let (low, high): (Double, Double) = switch to {
            case .uint8: (0, 255)
            case .int32: (Double(Int32.min), Double(Int32.max))
            default: (Double(Int64.min), Double(Int64.max))
            }
            return values.map { $0.isNaN ? 0 : Swift.min(Swift.max($0.rounded(.towardZero), low), high) }
        }
        for from in [DType.float32, .float64] {
            for to in [DType.uint8, .int32, .int64] {
                let x = Tensor(doubles: values, shape: [values.count], dtype: from, device: .cpu)
                let onReference = ref.cast(x.to(.reference), to: to).toDoubles()
                #expect(cpu.cast(x, to: to).toDoubles() == expected(to), "\(from) -> \(to) on the CPU")
                #expect(onReference == expected(to), "\(from) -> \(to) on the reference backend")
            }
        }
        // float32 → uint8 (the spike codes' cast) runs its own vectorised loop over ranges in
        // parallel: a tensor large enough to split, with values in and out of range.
        let large = Self.values(100_003, 32) { $0 * 120 + 100 }
        let x = Tensor(large, shape: [100_003])
        #expect(cpu.cast(x, to: .uint8).toDoubles() == ref.cast(x.to(.reference), to: .uint8).toDoubles())
        #expect(cpu.cast(x.permuted([0]), to: .uint8).toDoubles() == ref.cast(x.to(.reference), to: .uint8).toDoubles())
    }

    @Test("one-hot rows from int32 and int64 labels")
    func oneHot() {
        let labels = [3, 0, 9, 4, 4, 1, 0]
        for dtype in [DType.int32, .int64] {
            let l = Tensor(doubles: labels.map(Double.init), shape: [labels.count], dtype: dtype, device: .cpu)
            for out in [DType.float32, .float64] {
                let c = cpu.oneHot(l, classes: 10, dtype: out)
                #expect(c.dtype == out && c.toDoubles() == ref.oneHot(l, classes: 10, dtype: out).toDoubles())
            }
        }
    }

    @Test("one-hot traps on a label out of range")
    func oneHotOutOfRange() async {
        await #expect(processExitsWith: .failure) {
            _ = CPUBackend.shared.oneHot(Tensor(labels: [1, 5]), classes: 5, dtype: .float32)
        }
    }
}

// MARK: - The fused neuron

extension CPUKernelTests {
    struct NeuronCase: CustomStringConvertible, Sendable {
        let reset: ResetMode, surrogate: Surrogate, tau: Double
        var description: String { "\(reset) \(surrogate) tau \(tau)" }
    }

    static let neuronCases: [NeuronCase] = [ResetMode.hard(0), .hard(-0.25), .soft].flatMap { reset in
        [Surrogate.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)].map {
            NeuronCase(reset: reset, surrogate: $0, tau: reset == .soft ? 1.5 : 2)
        }
    }

    /// Input currents `[T, n]` whose potentials stay 2e-3 away from the threshold and the
    /// surrogate's kinks, so float32 and the reference's Double agree on every spike.
    static func currents(_ steps: Int, _ neurons: Int, _ p: NeuronParameters, seed: UInt64) -> Tensor {
        var x = values(steps * neurons, seed) { 0.6 + 0.8 * $0 }
        let a = p.surrogate.parameter, vth = p.threshold
        let kinks: [Double]
        switch p.surrogate {
        case .triangle: kinks = [vth, vth - a, vth + a]
        case .rectangle: kinks = [vth, vth - a / 2, vth + a / 2]
        case .sigmoid: kinks = [vth]
        }
        for i in 0..<neurons {
            var v = 0.0
            for t in 0..<steps {
                let k = t * neurons + i
                var h = v * p.decay + Double(x[k])
                while kinks.contains(where: { Swift.abs(h - $0) < 2e-3 }) {
                    x[k] += 4e-3
                    h = v * p.decay + Double(x[k])
                }
                let s: Double = h > vth ? 1 : 0
                switch p.reset {
                case .hard(let vr): v = (1 - s) * h + s * vr
                case .soft: v = h - s * vth
                }
            }
        }
        return Tensor(x, shape: [steps, neurons])
    }

    /// Spikes and the potentials a host backend saved.
    private func scanned(_ backend: any Backend, _ x: Tensor, _ p: NeuronParameters) -> (Tensor, Tensor) {
        let (spikes, saved) = backend.neuronScan(x, p)
        return (spikes, SavedPotentials.from(saved, op: "test").potentials)
    }

    /// Forward spikes and potentials, then the backward pass from the same float32 potentials.
    private func checkScan(_ p: NeuronParameters, steps: Int, neurons: Int, seed: UInt64) {
        let x = Self.currents(steps, neurons, p, seed: seed)
        let (s, h) = scanned(cpu, x, p)
        let (sr, hr) = scanned(ref, x, p)
        #expect(s.toDoubles() == sr.toDoubles(), "spikes \(p) T=\(steps) n=\(neurons)")
        #expect(scaledError(h, hr) < 1e-5, "potentials \(p) T=\(steps) n=\(neurons)")
        let gs = Self.tensor([steps, neurons], seed + 1)
        let gx = cpu.neuronScanBackward(gs, saved: SavedPotentials(h, p))
        let gxr = ref.neuronScanBackward(gs, saved: SavedPotentials(h, p))
        #expect(scaledError(gx, gxr) < 1e-5, "gradient \(p) T=\(steps) n=\(neurons)")
    }

    @Test("neuronScan forward and backward for every reset and surrogate", arguments: neuronCases)
    func neuronScan(_ c: NeuronCase) {
        let p = NeuronParameters(tau: c.tau, threshold: 1, reset: c.reset, surrogate: c.surrogate)
        for steps in [1, 5] {
            checkScan(p, steps: steps, neurons: 1_500, seed: 40)  // one full block and a partial one
        }
        checkScan(p, steps: 3, neurons: 7, seed: 41)
    }

    @Test("a neuron spikes only when h - v_th > 0, strictly, whether or not v_th is a float",
          arguments: [1.0, 0.1, 0.7, -0.3])
    func spikeThreshold(_ threshold: Double) {
        // Step 0 starts from v = 0, so h = x exactly: Float(v_th) and its neighbours. For
        // v_th = 0.1 (not a float) Float(0.1) > 0.1 spikes and its nextDown < 0.1 does not.
        // Step 1 (x = 0) makes step 0's gradient run through dv/dh, which depends on the spike.
        let t = Float(threshold)
        let xs: [Float] = [t.nextDown.nextDown, t.nextDown, t, t.nextUp, t.nextUp.nextUp]
        let x = Tensor(xs + xs + [Float](repeating: 0, count: 10), shape: [2, 10])
        for reset in [ResetMode.hard(0), .soft] {
            let p = NeuronParameters(tau: 2, threshold: threshold, reset: reset, surrogate: .triangle(gamma: 1))
            let (spikes, h) = scanned(cpu, x, p)
            let expected = (xs + xs).map { Double($0) - threshold > 0 ? 1.0 : 0.0 }
            #expect(Array(spikes.toDoubles().prefix(10)) == expected, "v_th \(threshold) \(reset)")
            #expect(spikes.toDoubles() == ref.neuronScan(x, p).spikes.toDoubles(), "v_th \(threshold) \(reset) vs reference")
            let gs = Tensor([Float](repeating: 1, count: 20), shape: [2, 10])
            #expect(scaledError(cpu.neuronScanBackward(gs, saved: SavedPotentials(h, p)), ref.neuronScanBackward(gs, saved: SavedPotentials(h, p))) < 1e-6,
                    "gradient, v_th \(threshold) \(reset)")
        }
    }

    @Test("neuronScan on strided inputs, in parallel, with streaming stores")
    func neuronScanLarge() {
        // Every path gives the same bits, so lowering the streaming threshold is safe even
        // while other tests run.
        let saved = StreamingStore.minimumBytes
        StreamingStore.minimumBytes = 0
        defer { StreamingStore.minimumBytes = saved }
        let p = NeuronParameters(tau: 2, threshold: 0.9, reset: .hard(0.1), surrogate: .sigmoid(alpha: 2))
        checkScan(p, steps: 5, neurons: 26_999, seed: 42)
        let x = Self.currents(4, 301, p, seed: 43).reshaped([4, 7, 43]).permuted([0, 2, 1])
        let (s, h) = scanned(cpu, x, p)
        let (sr, hr) = scanned(ref, x, p)
        #expect(s.toDoubles() == sr.toDoubles() && scaledError(h, hr) < 1e-5, "permuted input")
        let hs = h.sliced(axis: 1, 0..<2).sliced(axis: 0, 1..<3)
        let gs = Self.tensor([7], 44).expanded(to: hs.shape)
        #expect(scaledError(cpu.neuronScanBackward(gs, saved: SavedPotentials(hs.contiguous(), p)),
                            ref.neuronScanBackward(gs, saved: SavedPotentials(hs, p))) < 1e-5, "broadcast gradient")
    }
}
