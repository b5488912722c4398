import Foundation
@testable import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// Every multi-threaded Swift kernel of the CPU backend agrees with the reference backend when
/// it really splits its work: with ``Parallel/serialThreshold`` lowered for this task only (so
/// tensors of a few thousand elements split into up to 8 chunks whose starts are not multiples
/// of the SIMD width), and, for each kernel family, once at the real threshold on a tensor
/// large enough for several chunks.
///
/// Element counts are odd (e.g. 3·37·41 = 4551 splits into chunks of 569 and 568), so chunk
/// boundaries fall mid-vector and mid-row. Tolerances are those of `OpParityTests`.
@Suite("CPU kernels split across threads agree with the reference backend")
struct ParallelTests {
    init() { CPUBackend.register() }

    private static let elementwise = Comparison.elementwise(.float32Elementwise)
    private static let accumulated = Comparison.relativeToMaxMagnitude(Tolerance.float32Accumulated)

    /// A threshold at which the odd-sized tensors below split into the maximum number of chunks.
    private static let loweredThreshold = 64

    /// Runs `body` with the lowered split threshold (task-local: concurrent tests keep theirs).
    private func split<R>(_ body: () throws -> R) rethrows -> R {
        try Parallel.$serialThresholdOverride.withValue(Self.loweredThreshold, operation: body)
    }

    private func check(
        _ inputs: [Tensor], wrt: [Int]? = nil, output: Comparison = ParallelTests.elementwise,
        gradients: Comparison? = nil, _ comment: String = "",
        sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
    ) {
        expectDevicesAgree(
            inputs, on: .cpu, baseline: .reference, wrt: wrt, output: output, gradients: gradients,
            comment, sourceLocation: sourceLocation, f)
    }

    private static func normal(_ shape: [Int], _ seed: UInt64) -> Tensor {
        RandomInputs(seed: seed).normal(shape, dtype: .float32)
    }

    @Test("the test hook splits work into unaligned chunks, for this task only")
    func hookSplits() async {
        let starts = split { Self.chunkStarts(4551) }
        if Parallel.threadCount > 1 && OpenMP.maxThreads > 1 {
            #expect(starts.count == 8, "\(starts)")
            #expect(starts.contains { $0 % 8 != 0 }, "\(starts)")
        }
        // A detached task does not inherit the override: 4551 elements stay on one thread there.
        let elsewhere = await Parallel.$serialThresholdOverride.withValue(Self.loweredThreshold) {
            await Task.detached { Self.chunkStarts(4551) }.value
        }
        #expect(elsewhere == [0])
        #expect(Parallel.serialThresholdOverride == nil)
    }

    /// The sorted starts of the ranges `Parallel.forEachRange(count)` hands out.
    private static func chunkStarts(_ count: Int) -> [Int] {
        let lock = NSLock()
        var starts: [Int] = []
        Parallel.forEachRange(count) { range in
            lock.lock()
            starts.append(range.lowerBound)
            lock.unlock()
        }
        return starts.sorted()
    }

    // MARK: - Elementwise

    /// Shape pairs: equal, a trailing-row broadcast, a column broadcast, a scalar.
    static let shapePairs = [
        ShapePair([3, 37, 41], [3, 37, 41]), ShapePair([3, 37, 41], [41]), ShapePair([3, 37, 41], [37, 1]),
        ShapePair([3, 37, 41], []),
    ]

    @Test("binary ops with broadcast operands, split", arguments: BinaryCase.allCases, shapePairs)
    func binary(op: BinaryCase, pair: ShapePair) {
        let inputs = op.inputs(pair, RandomInputs(seed: 51)).map(\.float32Copy)
        let grads = pair.a == pair.b ? Self.elementwise : Self.accumulated
        split { check(inputs, gradients: grads, "\(op) \(pair)") { op.apply($0[0], $0[1]) } }
    }

    @Test("binary ops on permuted and sliced operands, split", arguments: BinaryCase.allCases)
    func binaryStrided(op: BinaryCase) {
        let inputs = op.inputs(ShapePair([67, 71], [71, 69]), RandomInputs(seed: 52)).map(\.float32Copy)
        split { check(inputs, "\(op)") { op.apply($0[0].transposed(), $0[1].sliced(axis: 1, 2..<69)) } }
    }

    @Test("unary ops on contiguous and permuted inputs, split", arguments: UnaryCase.allCases)
    func unary(op: UnaryCase) {
        let x = op.input([3, 37, 41], RandomInputs(seed: 53)).float32Copy
        split {
            check([x], "\(op)") { op.apply($0[0]) }
            check([x], "\(op) permuted") { op.apply($0[0].permuted([2, 0, 1])) }
        }
    }

    @Test("comparisons, sign and where with a broadcast condition, split")
    func compareAndSelect() {
        let grid = RandomInputs(seed: 54).uniformValues(4551).map { ($0 * 5).rounded(.down) - 2 }
        let a = Tensor(doubles: grid, shape: [3, 37, 41], dtype: .float32)
        let b = Tensor(doubles: Array(grid.prefix(41)), shape: [41], dtype: .float32)
        let condition = Tensor(doubles: grid.prefix(37 * 41).map { $0 > 0 ? 1 : 0 }, shape: [37, 41], dtype: .float32)
        split {
            check([a, b], wrt: [], output: .elementwise(.exact), "<") { $0[0] < $0[1] }
            check([a, b], wrt: [], output: .elementwise(.exact), ">=") { $0[0] >= $0[1] }
            check([a], wrt: [], output: .elementwise(.exact), "sign") { $0[0].sign() }
            check([Self.normal([3, 37, 41], 55), Self.normal([41], 56)], gradients: Self.accumulated, "where") {
                `where`(condition, $0[0], $0[1])
            }
        }
    }

    @Test("elementwise at the real threshold: 141 159 elements, a [C, 1] vector broadcast")
    func elementwiseLarge() {
        // 2 chunks at the default threshold (work / 65 536 = 2); the second starts at 70 580,
        // mid-vector and mid-row.
        let x = Self.normal([3, 211, 223], 57), c = Self.normal([211, 1], 58)
        check([x, c], gradients: Self.accumulated, "multiply by [C, 1]") { $0[0] * $0[1] }
        check([x], "sigmoid of a permuted view") { $0[0].permuted([0, 2, 1]).sigmoid() }
    }

    // MARK: - Reductions

    /// Axes that exercise inner, outer, middle and full reductions.
    static let reduceAxes: [[Int]?] = [nil, [0], [1], [2], [0, 2], [1, 2], [0, 1]]

    @Test(
        "sum, mean and max over axes, split", arguments: reduceAxes,
        [[5, 67, 43], [3, 9, 1237], [1500, 3, 5]])
    func reductions(axes: [Int]?, shape: [Int]) {
        let x = Self.normal(shape, UInt64(shape[2]))
        let distinct = RandomInputs(seed: 59).distinct(shape, spacing: 1.0 / 1024, dtype: .float32)
        split {
            check([x], output: Self.accumulated, "sum \(shape)") { $0[0].sum(axes: axes) }
            check([x], output: Self.accumulated, "mean \(shape)") { $0[0].mean(axes: axes, keepDims: true) }
            check([distinct], "max \(shape)") { $0[0].max(axes: axes) }
        }
    }

    @Test("reductions of permuted views and with many row blocks, split")
    func stridedReductions() {
        split {
            check([Self.normal([9, 31, 17], 60)], output: Self.accumulated) { $0[0].permuted([2, 0, 1]).sum(axes: [1]) }
            // 20 001 rows of 7: three blocks of 9 362 rows reduced in parallel, then combined.
            check([Self.normal([20_001, 7], 61)], output: Self.accumulated, "narrow rows") { $0[0].sum(axes: [0]) }
            // Rows of 5 001 ≥ 4 096: columns split across threads.
            check([Self.normal([6, 5_001], 62)], output: Self.accumulated, "wide rows") { $0[0].sum(axes: [0]) }
        }
    }

    @Test("reductions at the real threshold: sum of 700 001 values, max over rows of 50 001")
    func reductionsLarge() {
        // 171 blocks of 4 096 in 8 chunks; the tail block holds 3 681 values.
        check([Self.normal([700_001], 63)], output: Self.accumulated, "sum all") { $0[0].sum() }
        let distinct = RandomInputs(seed: 64).distinct([3, 50_001], spacing: 1.0 / 1024, dtype: .float32)
        check([distinct], "max over rows") { $0[0].max(axes: [1]) }
    }

    // MARK: - Copies and casts

    @Test("contiguous copies of permuted, sliced and broadcast views, split; every element size")
    func copies() {
        let x = Self.normal([13, 17, 23], 65)
        split {
            check([x], "permute") { $0[0].permuted([2, 0, 1]).contiguous() }
            check([x], "slice") { $0[0].sliced(axis: 2, 3..<20).contiguous() }
            check([x], "expand") { $0[0].sliced(axis: 0, 1..<2).expanded(to: [4, 17, 23]).contiguous() }
            let cpu = CPUBackend.shared, ref = ReferenceBackend.shared
            for dtype in [DType.uint8, .float16, .int32, .float64] {
                let base = Tensor(
                    doubles: (0..<(13 * 17 * 23)).map { Double($0 % 200) }, shape: [13, 17, 23], dtype: dtype,
                    device: .cpu)
                for v in [base.permuted([2, 0, 1]), base.sliced(axis: 1, 2..<15), base.transposed(0, 2)] {
                    let c = cpu.contiguous(v)
                    #expect(c.isContiguous && c.toDoubles() == ref.contiguous(v).toDoubles(), "\(dtype) \(v.shape)")
                }
            }
        }
    }

    @Test("a permuted copy at the real threshold: 2 chunks of a [37, 61, 67] tensor")
    func copyLarge() {
        check([Self.normal([37, 61, 67], 66)], "permute") { $0[0].permuted([1, 2, 0]).contiguous() }
    }

    @Test("casts between float32, float64, int32, int64 and uint8 of permuted views, split")
    func casts() {
        let dtypes: [DType] = [.float32, .float64, .int32, .int64, .uint8]
        let values = RandomInputs(seed: 67).uniformValues(13 * 17 * 23).map { ($0 * 255).rounded(.down) + 0.25 }
        let cpu = CPUBackend.shared, ref = ReferenceBackend.shared
        split {
            for from in dtypes {
                let base = Tensor(doubles: values, shape: [13, 17, 23], dtype: from, device: .cpu)
                for x in [base, base.permuted([2, 0, 1])] {
                    for to in dtypes {
                        let c = cpu.cast(x, to: to)
                        #expect(c.dtype == to && c.toDoubles() == ref.cast(x, to: to).toDoubles(), "\(from) -> \(to)")
                    }
                }
            }
        }
    }

    // MARK: - Pooling glue

    @Test("pooling of transposed views (copied in parallel before oneDNN), forward and backward, split")
    func pooling() {
        for kind in [Pool2dParameters.Kind.max, .average] {
            let c = PoolCase(kind: kind, input: [3, 7, 19, 23], kernel: (3, 3), stride: (2, 2), padding: (1, 1))
            let x = RandomInputs(seed: 68).distinct([3, 7, 23, 19], spacing: 1.0 / 256, dtype: .float32)
            split { check([x], "\(c) on a transposed view") { c.apply($0[0].transposed()) } }
        }
    }

    @Test("non-overlapping average pooling (SwiftSNN's loop), planes split across threads, forward and backward")
    func windowPooling() {
        // 3·7 = 21 planes of 19×23: 2×2 windows leave a row and a column; 3×3 leave one and two.
        for kernel in [(2, 2), (3, 3), (2, 1)] {
            let c = PoolCase(kind: .average, input: [3, 7, 19, 23], kernel: kernel)
            let x = RandomInputs(seed: 72).distinct(c.input, spacing: 1.0 / 256, dtype: .float32)
            split { check([x], "\(c)") { c.apply($0[0]) } }
        }
    }

    // MARK: - The fused neuron

    @Test(
        "neuronScan forward and backward, every reset and surrogate, blocks split across threads",
        arguments: [ResetMode.hard(0), .hard(0.3), .soft],
        [Surrogate.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)])
    func neuron(reset: ResetMode, surrogate: Surrogate) {
        let neuron = NeuronParameters(tau: 2, threshold: 1, reset: reset, surrogate: surrogate)
        // 1 325 neurons per step: blocks of 512, 512 and 301 (301 = 75 vectors of 4 and 1).
        let x = neuronCurrents([4, 5, 265], neuron, seed: 69)
        split {
            check([x], output: .elementwise(.exact), gradients: Self.elementwise, "scan") { neuronScan($0[0], neuron) }
            // The surrogate map splits vectors of 4 across threads; u stays clear of its kinks.
            let u = RandomInputs(seed: 71).awayFromKinks(
                [5, 1_325], kinks: [-1, -0.5, 0, 0.5, 1], margin: 1e-3, dtype: .float32)
            check([u], output: .elementwise(.exact), gradients: Self.elementwise, "heaviside") {
                heaviside($0[0], surrogate: surrogate)
            }
        }
    }

    @Test("neuronScan at the real threshold: 33 001 neurons, 4 steps")
    func neuronLarge() {
        // 65 blocks of 512 neurons · 4 steps: work 133 120 gives 2 chunks by default.
        let neuron = NeuronParameters(tau: 1.5, threshold: 1, reset: .soft, surrogate: .sigmoid(alpha: 4))
        let x = neuronCurrents([4, 33_001], neuron, seed: 70)
        check([x], output: .elementwise(.exact), gradients: Self.elementwise) { neuronScan($0[0], neuron) }
    }
}
