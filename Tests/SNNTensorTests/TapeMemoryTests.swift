import SNNTensor
import SNNTestSupport
import Testing

/// An op whose recorded output must not outlive the last reference to it.
enum TapeOp: String, CaseIterable, Sendable, CustomStringConvertible {
    case square, relu, multiply, add, matmul, conv2d, batchNorm, neuronScan, sum
    case exp, sqrt, sigmoid, divide, power, max, maxPool, avgPool, logSoftmax, crossEntropy

    var description: String { rawValue }

    func apply(_ h: Tensor) -> Tensor {
        switch self {
        case .square: return h.square()
        case .relu: return h.relu()
        case .multiply: return h * h
        case .add: return h + h
        case .matmul: return SNNTensor.matmul(h.reshaped([2, 2]), h.reshaped([2, 2]))
        case .conv2d: return SNNTensor.conv2d(h, weight: h)
        case .batchNorm:
            func constant(_ v: Double) -> Tensor { Tensor.full([1], v, dtype: .float64, device: .reference) }
            return SNNTensor.batchNorm(
                h, gamma: constant(1), beta: constant(0), runningMean: constant(0), runningVar: constant(1),
                training: true)
        case .neuronScan: return SNNTensor.neuronScan(h, NeuronParameters())
        case .sum: return h.sum(axes: [2])
        case .exp: return h.exp()
        case .sqrt: return h.sqrt()
        case .sigmoid: return h.sigmoid()
        case .divide: return h / (h + 1)
        case .power: return SNNTensor.pow(h, 2)
        case .max: return h.max(axes: [3])
        case .maxPool: return SNNTensor.maxPool2d(h, kernel: (2, 2))
        case .avgPool: return SNNTensor.avgPool2d(h, kernel: (2, 2))
        case .logSoftmax: return SNNTensor.logSoftmax(h.reshaped([2, 2]))
        case .crossEntropy:
            return SNNTensor.crossEntropy(
                logits: h.reshaped([2, 2]), labels: Tensor(labels: [0, 1], device: .reference))
        }
    }
}

/// The tape holds activations; it must be freed when the loss goes out of scope, or every
/// training step leaks its whole graph.
@Suite("tape memory")
struct TapeMemoryTests {
    /// Runs `op` on an intermediate `h = 2x` of a leaf `x`, back-propagates, drops every strong
    /// reference, and reports which of the output and `h` survived.
    private func survivors(_ op: TapeOp) -> (output: Bool, input: Bool) {
        weak var weakOutput: Tensor?
        weak var weakInput: Tensor?
        do {
            let x = RandomInputs(seed: 1).uniform([1, 1, 2, 2], low: 0.5, high: 2)
            x.requiresGrad = true
            let h = x * 2
            let y = op.apply(h)
            (weakOutput, weakInput) = (y, h)
            y.sum().backward()
        }
        return (weakOutput != nil, weakInput != nil)
    }

    @Test(
        "an op's output and the graph behind it are freed after backward and the last reference",
        arguments: TapeOp.allCases)
    func freed(op: TapeOp) {
        // Regression test: rules that need their op's result capture a detached alias, so no
        // output -> node -> rule -> output cycle keeps the tape alive (exp, sqrt, sigmoid,
        // divide, power, max and pool2d used to leak).
        let (output, input) = survivors(op)
        #expect(!output, "the output of \(op) is still alive")
        #expect(!input, "the input of \(op) (and everything upstream on the tape) is still alive")
    }

    @Test("withoutGradients records nothing, so nothing is retained")
    func evaluationFreesEverything() {
        weak var weakOutput: Tensor?
        do {
            let x = RandomInputs(seed: 2).uniform([4], low: 0.5, high: 2)
            x.requiresGrad = true
            let y = withoutGradients { x.exp().sqrt().sigmoid() }
            weakOutput = y
            #expect(!y.requiresGrad)
        }
        #expect(weakOutput == nil)
    }
}

/// An op whose rule does not need its input: the input must be freed as soon as the forward
/// pass moves on, not when the loss dies.
enum ForwardFreeOp: String, CaseIterable, Sendable, CustomStringConvertible {
    case addConstant, reshape, sum, avgPool, neuronScan, negate, exp, sigmoid, permute, slice, scaleByConstant
    case matmulConstant, convConstantWeight, concat

    var description: String { rawValue }

    func apply(_ h: Tensor) -> Tensor {
        let constant = Tensor.full([1, 1, 2, 2], 0.5, dtype: .float64, device: .reference)
        switch self {
        case .addConstant: return h + 1
        case .reshape: return h.reshaped([4])
        case .sum: return h.sum(axes: [3])
        case .avgPool: return SNNTensor.avgPool2d(h, kernel: (2, 2))
        case .neuronScan: return SNNTensor.neuronScan(h, NeuronParameters())
        case .negate: return -h
        case .exp: return h.exp()
        case .sigmoid: return h.sigmoid()
        case .permute: return h.permuted([0, 1, 3, 2]).contiguous()
        case .slice: return h.sliced(axis: 3, 0..<1).contiguous()
        case .scaleByConstant: return h * constant
        case .matmulConstant: return SNNTensor.matmul(h.reshaped([2, 2]), constant.reshaped([2, 2]))
        case .convConstantWeight: return SNNTensor.conv2d(h, weight: constant)
        case .concat: return SNNTensor.concat([h, h], axis: 0)
        }
    }
}

@Suite("tape keeps only what rules need")
struct TapeSavedStateTests {
    @Test("an input no rule needs is freed during the forward pass, while the output lives", arguments: ForwardFreeOp.allCases)
    func freedDuringForward(op: ForwardFreeOp) {
        weak var weakInput: Tensor?
        let x = RandomInputs(seed: 3).uniform([1, 1, 2, 2], low: 0.5, high: 2)
        x.requiresGrad = true
        let y: Tensor
        do {
            let h = x * 2
            weakInput = h
            y = op.apply(h)
        }
        #expect(weakInput == nil, "\(op) keeps its input alive although its rule does not use it")
        y.sum().backward()
        #expect(x.grad != nil, "\(op): no gradient reached the leaf")
    }

    @Test("backward frees each node's saved tensors as its rule runs, while the loss still lives")
    func freedDuringBackward() {
        weak var weakSaved: Tensor?
        let x = RandomInputs(seed: 4).uniform([3, 5], low: 0.5, high: 2)
        x.requiresGrad = true
        let loss: Tensor
        do {
            let h = x * 2
            weakSaved = h
            loss = h.square().sum()  // square's rule keeps h
        }
        #expect(weakSaved != nil, "square's rule needs its input until backward")
        loss.backward()
        #expect(weakSaved == nil, "the saved input outlived its rule")
        // 2·(2x)·2 = 8x
        #expect(x.grad?.toDoubles() == x.toDoubles().map { 8 * $0 })
    }

    @Test("retainGraph keeps the rules for a second backward that accumulates")
    func retainGraph() {
        let x = Tensor(doubles: [1, 2, 3], shape: [3])
        x.requiresGrad = true
        let loss = x.square().sum()
        loss.backward(retainGraph: true)
        loss.backward()
        #expect(x.grad?.toDoubles() == [4, 8, 12])  // twice 2x
    }

    @Test("a second backward through a released graph stops with a message")
    func secondBackwardTraps() async {
        await #expect(processExitsWith: .failure) {
            let x = Tensor(doubles: [1, 2, 3], shape: [3])
            x.requiresGrad = true
            let loss = x.square().sum()
            loss.backward()
            loss.backward()
        }
    }

    @Test("a leaf used several times gets the sum of its gradients")
    func leafUsedTwice() {
        let x = Tensor(doubles: [1, -2], shape: [2])
        x.requiresGrad = true
        // d/dx (x² + 3x) = 2x + 3
        (x.square() + x * 3).sum().backward()
        #expect(x.grad?.toDoubles() == [5, -1])
    }

    /// Spikes feeding a convolution (directly, through max pooling, or average pooled 2×2) are
    /// kept as bytes: the float spike tensor is freed after the forward pass, and the weight
    /// gradient equals the one computed from a plain float copy of the same spikes.
    @Test("spikes and pooled spikes saved for a convolution are kept as bytes, gradients unchanged",
          arguments: ["direct", "maxPool", "avgPool"])
    func spikesSavedAsBytes(path: String) {
        let r = RandomInputs(seed: 5)
        let currents = r.normal([2, 2, 3, 4, 4], mean: 0.8, std: 1)  // [T, N, C, H, W]
        let weight = r.normal([4, 3, 3, 3], std: 0.3)
        let projection = r.normal([4, 4, 2, 2])
        weight.requiresGrad = true
        func pooled(_ s: Tensor) -> Tensor {
            switch path {
            case "maxPool": return SNNTensor.maxPool2d(s, kernel: (2, 2))
            case "avgPool": return SNNTensor.avgPool2d(s, kernel: (2, 2))
            default: return s
            }
        }
        weak var weakSpikes: Tensor?
        let output: Tensor
        do {
            let spikes = SNNTensor.neuronScan(currents, NeuronParameters()).reshaped([4, 3, 4, 4])
            #expect(spikes.spikeQuantum == 1)
            let input = pooled(spikes)
            if path == "avgPool" { #expect(input.spikeQuantum == 0.25) }
            weakSpikes = input
            output = SNNTensor.conv2d(input, weight: weight, padding: (1, 1))
        }
        #expect(weakSpikes == nil, "the float spikes outlived the forward pass")
        let sizeMatch = path == "direct" ? [4, 4, 4, 4] : [4, 4, 2, 2]
        let projected = (output * (path == "direct" ? r.normal(sizeMatch) : projection)).sum()
        projected.backward()
        let compactGrad = weight.grad?.toDoubles() ?? []
        weight.grad = nil

        // The same computation from a plain copy that carries no spike mark.
        let spikes = withoutGradients { SNNTensor.neuronScan(currents, NeuronParameters()).reshaped([4, 3, 4, 4]) }
        let plain = Tensor(doubles: pooled(spikes).toDoubles(), shape: pooled(spikes).shape)
        #expect(plain.spikeQuantum == nil)
        let r2 = RandomInputs(seed: 5)
        _ = r2.normal([2, 2, 3, 4, 4], mean: 0.8, std: 1); _ = r2.normal([4, 3, 3, 3], std: 0.3); _ = r2.normal([4, 4, 2, 2])
        let reference = SNNTensor.conv2d(plain, weight: weight, padding: (1, 1))
        (reference * (path == "direct" ? r2.normal(sizeMatch) : projection)).sum().backward()
        #expect(compactGrad == weight.grad?.toDoubles())
    }
}
