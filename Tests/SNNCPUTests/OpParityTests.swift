import SNNCPU
import SNNTensor
import SNNTestSupport
import Testing

/// Every op, called through its public front end, gives the same outputs and the same input
/// gradients on `.cpu` as on `.reference` for the same float32 inputs.
///
/// Tolerances: elementwise results within `Tolerance.float32Elementwise` (rtol 1e-4); results
/// that accumulate many terms (reductions, matmul, convolution, batch norm, and the gradients
/// of broadcast operands, which are sums) within 1e-4 of the largest output magnitude; spikes
/// exactly.
@Suite("CPU backend agrees with the reference backend, op by op (outputs and gradients)")
struct OpParityTests {
    init() { CPUBackend.register() }

    private static let elementwise = Comparison.elementwise(.float32Elementwise)
    private static let accumulated = Comparison.relativeToMaxMagnitude(Tolerance.float32Accumulated)

    /// Float32 inputs on the reference device (copied to each device by the check).
    private static func normal(_ shape: [Int], _ seed: UInt64, mean: Double = 0, std: Double = 1) -> Tensor {
        RandomInputs(seed: seed).normal(shape, mean: mean, std: std, dtype: .float32)
    }

    private static func uniform(_ shape: [Int], _ seed: UInt64, _ low: Double, _ high: Double) -> Tensor {
        RandomInputs(seed: seed).uniform(shape, low: low, high: high, dtype: .float32)
    }

    private func check(
        _ inputs: [Tensor], wrt: [Int]? = nil, output: Comparison = OpParityTests.elementwise,
        gradients: Comparison? = nil, _ comment: String = "",
        sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
    ) {
        expectDevicesAgree(
            inputs, on: .cpu, baseline: .reference, wrt: wrt, output: output, gradients: gradients,
            comment, sourceLocation: sourceLocation, f)
    }

    @Test("the cpu device computes with its own backend; to(device) carries gradients back")
    func deviceTransfer() {
        #expect(Device.cpu.backend !== Device.reference.backend, "CPUBackend.register() took effect")
        let x = Tensor([1, 2, 3], shape: [3], device: .reference)
        x.requiresGrad = true
        let y = x.to(.cpu)
        #expect(y.device == .cpu)
        // L = Σ y², computed on the cpu: dL/dx = 2x, delivered on the reference device.
        let loss = (y * y).sum()
        #expect(loss.device == .cpu)
        loss.backward()
        #expect(x.grad?.device == .reference)
        assertClose(x.grad ?? x, [2, 4, 6], shape: [3], .float32Elementwise)
    }

    // MARK: - Elementwise

    /// Shape pairs: equal, row and column broadcasts, a scalar, odd sizes, and one large enough
    /// (over 65 536 elements) for the parallel paths.
    static let shapePairs = [
        ShapePair([7, 13], [7, 13]), ShapePair([5, 7], [7]), ShapePair([3, 1, 9], [4, 1]), ShapePair([], [13]),
        ShapePair([3, 137, 173], [173]), ShapePair([3, 137, 173], [3, 137, 173]),
    ]

    @Test("binary ops, with broadcasting", arguments: BinaryCase.allCases, shapePairs)
    func binary(op: BinaryCase, pair: ShapePair) {
        let r = RandomInputs(seed: 1)
        let inputs = op.inputs(pair, r).map(\.float32Copy)
        // Broadcast operands' gradients are sums over the broadcast axes.
        let grads = pair.a == pair.b ? OpParityTests.elementwise : OpParityTests.accumulated
        check(inputs, gradients: grads, "\(op) \(pair)") { op.apply($0[0], $0[1]) }
    }

    @Test("binary ops on strided (transposed, sliced) operands", arguments: BinaryCase.allCases)
    func binaryStrided(op: BinaryCase) {
        let r = RandomInputs(seed: 2)
        let inputs = op.inputs(ShapePair([29, 31], [31, 33]), r).map(\.float32Copy)
        check(inputs, "\(op)") { op.apply($0[0].transposed(), $0[1].sliced(axis: 1, 2..<31)) }
    }

    @Test("unary ops", arguments: UnaryCase.allCases, [[7, 13], [3, 137, 173]])
    func unary(op: UnaryCase, shape: [Int]) {
        let x = op.input(shape, RandomInputs(seed: 3))
        check([x.float32Copy], "\(op)") { op.apply($0[0]) }
    }

    @Test("unary ops on a permuted view", arguments: UnaryCase.allCases)
    func unaryStrided(op: UnaryCase) {
        let x = op.input([5, 6, 7], RandomInputs(seed: 4))
        check([x.float32Copy], "\(op)") { op.apply($0[0].permuted([2, 0, 1])) }
    }

    @Test("sign and comparisons, including ties (forward only)")
    func comparisons() {
        // Small integers so that equal elements occur.
        let a = Tensor(
            doubles: RandomInputs(seed: 5).uniformValues(300).map { ($0 * 5).rounded(.down) - 2 }, shape: [20, 15],
            dtype: .float32)
        let b = Tensor(
            doubles: RandomInputs(seed: 6).uniformValues(15).map { ($0 * 5).rounded(.down) - 2 }, shape: [15],
            dtype: .float32)
        let ops: [(String, (Tensor, Tensor) -> Tensor)] = [
            ("==", { $0 == $1 }), ("!=", { $0 != $1 }), ("<", { $0 < $1 }), ("<=", { $0 <= $1 }),
            (">", { $0 > $1 }), (">=", { $0 >= $1 }), ("sign", { a, _ in a.sign() }),
        ]
        for (name, op) in ops {
            check([a, b], wrt: [], output: .elementwise(.exact), name) { op($0[0], $0[1]) }
        }
    }

    @Test("argmaxMatches on 20000 rows with ties: the CPU's count is the reference's, and argmaxRows' against the labels")
    func argmaxMatches() {
        let r = RandomInputs(seed: 10)
        let (rows, k) = (20_000, 10)
        let logits = Tensor(doubles: r.uniformValues(rows * k).map { ($0 * 4).rounded(.down) }, shape: [rows, k], dtype: .float32)
        let labels = r.uniformValues(rows).map { Int($0 * Double(k)) }
        let expected = zip(logits.argmaxRows(), labels).filter { $0 == $1 }.count
        for device in [Device.reference, .cpu] {
            let count = logits.to(device).argmaxMatches(Tensor(labels: labels, device: device),
                                                        indices: Tensor.argmaxIndices(k, device: device)).item()
            #expect(count == Double(expected), "\(device): \(count) against \(expected)")
        }
    }

    @Test("Tensor.read: several tensors of several dtypes, empty ones too, in one read, each as toDoubles gives it")
    func readTogether() {
        let r = RandomInputs(seed: 11)
        let tensors = [OpParityTests.normal([300, 7], 12).to(.cpu), Tensor(labels: [3, 1, 4], device: .cpu),
                       Tensor.zeros([0, 5], device: .cpu), r.normal([2, 3], dtype: .bfloat16).to(.cpu)]
        let before = Tensor.hostReadCount
        let read = Tensor.read(tensors)
        #expect(Tensor.hostReadCount - before == 1)
        #expect(read == tensors.map { $0.toDoubles() })
        // A float64 among them: every value travels as float64, exactly.
        let precise = Tensor(doubles: [1 + 0x1p-40, -3], shape: [2], dtype: .float64, device: .cpu)
        #expect(Tensor.read([tensors[0], precise]) == [tensors[0].toDoubles(), [1 + 0x1p-40, -3]])
    }

    @Test("where, with a broadcast condition")
    func whereSelect() {
        let condition = Tensor(
            doubles: RandomInputs(seed: 7).uniformValues(41).map { $0 < 0.5 ? 1 : 0 }, shape: [41], dtype: .float32)
        check(
            [OpParityTests.normal([3, 29, 41], 8), OpParityTests.normal([29, 1], 9)],
            gradients: OpParityTests.accumulated
        ) {
            `where`(condition, $0[0], $0[1])
        }
    }

    // MARK: - Reductions

    /// Axes that exercise inner, outer, middle and full reductions.
    static let reduceAxes: [[Int]?] = [nil, [0], [1], [2], [0, 2], [1, 2], [0, 1]]

    @Test("sum, mean and max over axes", arguments: reduceAxes, [[4, 37, 29], [3, 5, 4099], [2, 300, 115]])
    func reductions(axes: [Int]?, shape: [Int]) {
        let seed = UInt64(shape[2])
        let x = OpParityTests.normal(shape, seed)
        check([x], output: OpParityTests.accumulated, "sum \(shape)") { $0[0].sum(axes: axes) }
        check([x], output: OpParityTests.accumulated, "mean \(shape)") { $0[0].mean(axes: axes, keepDims: true) }
        // Distinct values: a tie would split the max gradient.
        let distinct = RandomInputs(seed: seed).distinct(shape, spacing: 1.0 / 1024, dtype: .float32)
        check([distinct], "max \(shape)") { $0[0].max(axes: axes) }
    }

    @Test("reductions of strided views")
    func stridedReductions() {
        let x = OpParityTests.normal([9, 31, 17], 10)
        check([x], output: OpParityTests.accumulated) { $0[0].permuted([2, 0, 1]).sum(axes: [1]) }
        check([x], output: OpParityTests.accumulated) { $0[0].sliced(axis: 2, 3..<14).mean(axes: [0, 2]) }
        check([x], output: OpParityTests.accumulated) { $0[0].expanded(to: [2, 9, 31, 17]).sum(axes: [0, 3]) }
    }

    // MARK: - Movement

    @Test("reshape, permute, transpose, slice, expand, contiguous, repeat, concat and stack")
    func movement() {
        let x = OpParityTests.normal([3, 17, 11], 11)
        let ops: [(String, (Tensor) -> Tensor)] = [
            ("reshape", { $0.reshaped([17, -1]) }),
            ("permute+contiguous", { $0.permuted([2, 0, 1]).contiguous() }),
            ("transpose+reshape", { $0.transposed().reshaped([3, 187]) }),
            ("slice+contiguous", { $0.sliced(axis: 1, 2..<15).contiguous() }),
            ("select", { $0.selected(axis: 2, 5) * 1 }),
            ("expand+contiguous", { $0.sliced(axis: 0, 1..<2).expanded(to: [4, 17, 11]).contiguous() }),
            ("repeat", { $0.repeated([2, 1, 3]) }),
            ("repeat new axis", { $0.repeated([2, 1, 1, 2]) }),
            ("concat", { concat([$0, $0.sliced(axis: 1, 0..<5), $0 * 2], axis: 1) }),
            ("stack", { stack([$0, $0.transposed(0, 1).transposed(0, 1) * 3], axis: -1) }),
        ]
        for (name, op) in ops { check([x], name) { op($0[0]) } }
        // A copy big enough for the parallel copy kernels.
        check([OpParityTests.normal([65, 33, 37], 12)], "large permute") { $0[0].permuted([1, 2, 0]).contiguous() }
    }

    // MARK: - Matmul

    @Test("matmul (plain, transposed operands, batched) and linear")
    func matmulAndLinear() {
        let acc = OpParityTests.accumulated
        check([OpParityTests.normal([33, 47], 13), OpParityTests.normal([47, 29], 14)], output: acc) {
            matmul($0[0], $0[1])
        }
        check([OpParityTests.normal([47, 33], 15), OpParityTests.normal([29, 47], 16)], output: acc, "transposed") {
            matmul($0[0].transposed(), $0[1].transposed())
        }
        check([OpParityTests.normal([3, 17, 19], 17), OpParityTests.normal([3, 19, 23], 18)], output: acc, "batched") {
            matmul($0[0], $0[1])
        }
        check(
            [
                OpParityTests.normal([2, 5, 64], 19), OpParityTests.normal([32, 64], 20),
                OpParityTests.normal([32], 21),
            ],
            output: acc, "linear"
        ) { linear($0[0], weight: $0[1], bias: $0[2]) }
        check(
            [OpParityTests.normal([1, 7], 22), OpParityTests.normal([1, 7], 23)], output: acc, "linear to one output"
        ) {
            linear($0[0], weight: $0[1])
        }
    }

    // MARK: - Convolution

    static let convCases = [
        // Shaped like real use: a 3x3 block of a small CNN.
        ConvCase(input: [4, 8, 8, 8], weight: [16, 8, 3, 3], padding: (1, 1)),
        ConvCase(input: [4, 8, 8, 8], weight: [16, 8, 3, 3], stride: (2, 2), padding: (1, 1)),
        ConvCase(input: [4, 8, 8, 8], weight: [16, 8, 3, 3], padding: (1, 1), bias: false),
        ConvCase(input: [2, 3, 9, 7], weight: [5, 3, 3, 2], stride: (2, 1), padding: (1, 0)),
        ConvCase(input: [2, 4, 9, 9], weight: [6, 2, 3, 3], padding: (2, 2), dilation: (2, 2), groups: 2),
        ConvCase(input: [2, 6, 7, 7], weight: [6, 1, 3, 3], padding: (1, 1), groups: 6),
        ConvCase(input: [3, 8, 5, 5], weight: [4, 8, 1, 1]),
    ]

    @Test("conv2d: output and gradients of input, weight and bias", arguments: convCases)
    func conv(c: ConvCase) {
        let r = RandomInputs(seed: 24)
        let inputs = c.inputs(r).map(\.float32Copy)
        check(inputs, output: OpParityTests.accumulated, "\(c)") { c.apply($0) }
    }

    // MARK: - Pooling

    static let poolCases: [PoolCase] = [Pool2dParameters.Kind.max, .average].flatMap { kind in
        [
            PoolCase(kind: kind, input: [2, 3, 7, 9], kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
            PoolCase(kind: kind, input: [2, 3, 7, 7], kernel: (2, 2)),
            PoolCase(kind: kind, input: [1, 4, 9, 5], kernel: (3, 2), stride: (1, 1)),
            PoolCase(kind: kind, input: [4, 16, 8, 8], kernel: (2, 2)),
            PoolCase(kind: kind, input: [1, 2, 5, 11], kernel: (2, 4), stride: (3, 2), padding: (1, 2)),
        ]
    }

    @Test("max and average pooling on odd sizes (distinct values)", arguments: poolCases)
    func pool(c: PoolCase) {
        let x = RandomInputs(seed: 25).distinct(c.input, spacing: 1.0 / 256, dtype: .float32)
        check([x], "\(c)") { c.apply($0[0]) }
        // The same problem on a strided input: stored [N, C, W, H], pooled through a transpose.
        let s = c.input
        let xt = RandomInputs(seed: 26).distinct([s[0], s[1], s[3], s[2]], spacing: 1.0 / 256, dtype: .float32)
        check([xt], "\(c) on a transposed view") { c.apply($0[0].transposed()) }
    }

    @Test("adaptive average pooling")
    func adaptivePool() {
        check([OpParityTests.normal([3, 5, 7, 9], 26)], output: OpParityTests.accumulated) {
            adaptiveAvgPool2dTo1($0[0])
        }
    }

    // MARK: - Batch norm

    @Test(
        "batchNorm, training and eval: output, gradients and running statistics",
        // C >= 16 takes oneDNN's blocked layouts (nChw16c with AVX-512, nChw8c with AVX2), with
        // a partial last block when C is not a multiple of 16 (24, 40) or of 8 (21).
        arguments: [[4, 8, 5, 5], [16, 6], [2, 3, 7], [4, 24, 5, 3], [3, 40, 3, 5], [32, 24], [2, 21, 4, 4]],
        [true, false])
    func batchNormParity(shape: [Int], training: Bool) {
        expectBatchNormAgrees(shape, training: training, on: .cpu)
    }

    // MARK: - Losses

    @Test("logSoftmax, crossEntropy, mse and dropout")
    func losses() {
        let acc = OpParityTests.accumulated
        check(
            [OpParityTests.normal([6, 11], 32, std: 3)], output: OpParityTests.elementwise, gradients: acc, "logSoftmax"
        ) {
            logSoftmax($0[0])
        }
        check([OpParityTests.normal([4, 5, 3], 33, std: 3)], gradients: acc, "logSoftmax axis 1") {
            logSoftmax($0[0], axis: 1)
        }
        let labels = RandomInputs(seed: 34).labels(6, classes: 11)
        check([OpParityTests.normal([6, 11], 35, std: 3), labels], output: acc, "crossEntropy") {
            crossEntropy(logits: $0[0], labels: $0[1])
        }
        check([OpParityTests.normal([7, 9], 36), OpParityTests.normal([9], 37)], output: acc, "mse") {
            mse($0[0], $0[1])
        }
        check([OpParityTests.normal([13, 17], 38)], "dropout") {
            dropout($0[0], p: 0.3, training: true, generator: RandomGenerator(seed: 39))
        }
    }

    // MARK: - Neurons

    @Test(
        "neuronScan and neuronLoop, every reset and surrogate, inputs > 1e-3 from the threshold and kinks",
        arguments: [ResetMode.hard(0), .hard(0.3), .soft],
        [Surrogate.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)])
    func neuron(reset: ResetMode, surrogate: Surrogate) {
        // The last shape has 13 403 neurons per step, enough for the parallel blocked kernel.
        for (steps, shape) in [(1, [37]), (4, [3, 5, 7]), (4, [2, 8, 9, 9]), (6, [13, 1031])] {
            for tau in shape.count > 2 || steps == 1 ? [2.0, 1.5] : [2.0] {
                let neuron = NeuronParameters(tau: tau, threshold: 1, reset: reset, surrogate: surrogate)
                let x = neuronCurrents([steps] + shape, neuron, seed: UInt64(steps * 1000 + shape.count))
                let label = "T=\(steps) \(shape) tau \(tau) \(reset) \(surrogate)"
                // Spikes exactly; gradients elementwise.
                check([x], output: .elementwise(.exact), gradients: OpParityTests.elementwise, "scan \(label)") {
                    neuronScan($0[0], neuron)
                }
                // The composite loop is slow on the reference backend: small problems only.
                if ShapeUtil.count(shape) <= 1000 {
                    check([x], output: .elementwise(.exact), gradients: OpParityTests.elementwise, "loop \(label)") {
                        neuronLoop($0[0], neuron)
                    }
                }
            }
        }
    }

    @Test(
        "heaviside backward is the surrogate derivative on both devices",
        arguments: [Surrogate.triangle(gamma: 1), .sigmoid(alpha: 4), .rectangle(width: 1)])
    func heavisideParity(surrogate: Surrogate) {
        // Away from u = 0 and the surrogate's kinks (±1 for the triangle, ±0.5 for the rectangle).
        let u = RandomInputs(seed: 40).awayFromKinks(
            [67, 5], kinks: [-1, -0.5, 0, 0.5, 1], margin: 1e-3, dtype: .float32)
        check([u], output: .elementwise(.exact), gradients: OpParityTests.elementwise) {
            heaviside($0[0], surrogate: surrogate)
        }
    }
}
